#include "bus/amqp_link.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "domain/safe_text.hpp"

namespace payorch::bus::detail {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

std::string ErrorString(int status) {
  return amqp_error_string2(status);
}

FieldValue FromAmqpValue(const amqp_field_value_t& v) {
  FieldValue out;
  out.kind = static_cast<char>(v.kind);
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: out.i = v.value.boolean ? 1 : 0; break;
    case AMQP_FIELD_KIND_I8: out.i = v.value.i8; break;
    case AMQP_FIELD_KIND_U8: out.u = v.value.u8; break;
    case AMQP_FIELD_KIND_I16: out.i = v.value.i16; break;
    case AMQP_FIELD_KIND_U16: out.u = v.value.u16; break;
    case AMQP_FIELD_KIND_I32: out.i = v.value.i32; break;
    case AMQP_FIELD_KIND_U32: out.u = v.value.u32; break;
    case AMQP_FIELD_KIND_I64: out.i = v.value.i64; break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: out.u = v.value.u64; break;
    case AMQP_FIELD_KIND_F32: out.f = v.value.f32; break;
    case AMQP_FIELD_KIND_F64: out.f = v.value.f64; break;
    case AMQP_FIELD_KIND_DECIMAL:
      out.decimals = v.value.decimal.decimals;
      out.u = v.value.decimal.value;
      break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: out.s = ToString(v.value.bytes); break;
    case AMQP_FIELD_KIND_ARRAY:
      for (int i = 0; i < v.value.array.num_entries; ++i)
        out.array.push_back(FromAmqpValue(v.value.array.entries[i]));
      break;
    case AMQP_FIELD_KIND_TABLE: out.table = FromAmqp(v.value.table); break;
    default: break;  // void
  }
  return out;
}

}  // namespace

// --- URL -------------------------------------------------------------------

UrlParts ParseUrl(const std::string& url) {
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK)
    throw std::invalid_argument("bad AMQP URL \"" + RedactUrl(url) +
                                "\": expected amqp://user:password@host:port/vhost (or amqps://)");
  UrlParts parts;
  parts.tls = info.ssl != 0;
  parts.host = info.host;
  parts.port = info.port;
  parts.user = info.user;
  parts.password = info.password;
  // "amqp://host/" names the empty vhost by the letter of the URI spec; nobody
  // means that, so it is the default vhost "/" here, as most clients do.
  parts.vhost = (info.vhost && *info.vhost) ? info.vhost : "/";
  return parts;
}

std::string RedactUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

// --- TLS -------------------------------------------------------------------

namespace {

// A TLS socket that verifies the broker's certificate chain (against bus.tls_ca_file,
// else the system's trust store) and that it names the URL's host.
amqp_socket_t* NewTlsSocket(amqp_connection_state_t conn, const BusConfig& config) {
  amqp_socket_t* s = amqp_ssl_socket_new(conn);
  if (!s) throw AmqpError("cannot create a TLS socket");
  amqp_ssl_socket_set_verify_peer(s, 1);
  amqp_ssl_socket_set_verify_hostname(s, 1);
  if (!config.tls_ca_file.empty()) {
    if (amqp_ssl_socket_set_cacert(s, config.tls_ca_file.c_str()) != AMQP_STATUS_OK)
      throw AmqpError::Tls("cannot read CA certificates from bus.tls_ca_file " +
                           config.tls_ca_file + " (PEM expected)");
  } else {
    auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(s));
    if (!ctx || SSL_CTX_set_default_verify_paths(ctx) != 1)
      throw AmqpError::Tls("cannot load the system's trust store: set bus.tls_ca_file");
  }
  if (!config.tls_cert_file.empty() &&
      amqp_ssl_socket_set_key(s, config.tls_cert_file.c_str(), config.tls_key_file.c_str()) !=
          AMQP_STATUS_OK)
    throw AmqpError::Tls("cannot use the client certificate bus.tls_cert_file " +
                         config.tls_cert_file + " with bus.tls_key_file " + config.tls_key_file +
                         " (PEM, an unencrypted key that matches the certificate)");
  return s;
}

// Why a TLS connect failed, in words that say what to fix.
std::string TlsWhy(int status, const BusConfig& config, const std::string& host) {
  const std::string trusted = config.tls_ca_file.empty()
                                  ? "the system's trust store (or set bus.tls_ca_file)"
                                  : "bus.tls_ca_file " + config.tls_ca_file;
  const unsigned long err = ERR_peek_last_error();
  char detail[256] = "";
  if (err != 0) ERR_error_string_n(err, detail, sizeof detail);
  if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
      (err != 0 && ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED))
    return "the broker's certificate is not trusted: not signed by a CA in " + trusted +
           ", or expired, or not yet valid" +
           (*detail ? std::string(" (") + detail + ")" : std::string());
  if (status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)
    return "the broker's certificate does not name the host '" + host +
           "' of bus.url: connect by a name its certificate carries";
  return std::string("the TLS handshake failed: ") + (*detail ? detail : ErrorString(status)) +
         " (does the broker listen for TLS on this port? does it require a client "
         "certificate, bus.tls_cert_file?)";
}

}  // namespace

// --- Connection ------------------------------------------------------------

Connection::Connection(const BusConfig& config, const std::string& name) {
  // The nodes of a cluster in turn: each new connection starts at the next one (the
  // links of a process spread over the nodes), and a node that cannot be reached is
  // passed over for the one after it.
  static std::atomic<size_t> next{0};
  const std::vector<std::string> urls = BrokerUrls(config.url);
  if (urls.empty()) throw AmqpError("no broker URL");
  const size_t first = next.fetch_add(1);
  std::string errors;
  bool all_tls = true;
  for (size_t i = 0; i < urls.size(); ++i) {
    try {
      Open(config, ParseUrl(urls[(first + i) % urls.size()]), name);
      return;
    } catch (const AmqpError& e) {
      if (urls.size() == 1) throw;
      errors += std::string(errors.empty() ? "" : "; ") + e.what();
      all_tls = all_tls && e.tls();
    }
  }
  const std::string what =
      "no broker of " + std::to_string(urls.size()) + " reachable: " + errors;
  if (all_tls) throw AmqpError::Tls(what);
  throw AmqpError(what);
}

void Connection::Open(const BusConfig& config, const UrlParts& url, const std::string& name) {
  std::string where = url.host + ":" + std::to_string(url.port);
  conn_ = amqp_new_connection();
  if (!conn_) throw AmqpError("out of memory creating an AMQP connection");
  amqp_socket_t* socket = nullptr;
  try {
    socket = url.tls ? NewTlsSocket(conn_, config) : amqp_tcp_socket_new(conn_);
  } catch (const AmqpError&) {
    amqp_destroy_connection(conn_);
    throw;
  }
  ERR_clear_error();
  if (!socket) {
    amqp_destroy_connection(conn_);
    throw AmqpError("cannot create a TCP socket");
  }
  timeval connect_timeout = ToTimeval(config.connect_timeout);
  errno = 0;
  int status = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &connect_timeout);
  if (url.tls && status != AMQP_STATUS_OK) {
    // The broker's certificate refused is a configuration problem; anything else (a
    // name not resolving yet, a reset while the broker restarts) is waited out.
    const unsigned long err = ERR_peek_last_error();
    const bool refused = status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
                         status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
                         (err != 0 && ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED);
    if (refused || status == AMQP_STATUS_SSL_CONNECTION_FAILED) {
      const std::string what = "TLS to " + where + " failed: " + TlsWhy(status, config, url.host);
      amqp_destroy_connection(conn_);
      if (refused) throw AmqpError::Tls(what);
      throw AmqpError(what);
    }
  }
  if (status != AMQP_STATUS_OK) {
    // rabbitmq-c says only "a socket error occurred"; errno tells refused from unreachable.
    std::string why = ErrorString(status);
    // (A non-blocking connect leaves EINPROGRESS behind, which says nothing.)
    if (status == AMQP_STATUS_SOCKET_ERROR && errno != 0 && errno != EINPROGRESS)
      why += " (" + std::string(std::strerror(errno)) + ")";
    else if (status == AMQP_STATUS_SOCKET_ERROR)
      why += " (refused or unreachable: is the broker running?)";
    amqp_destroy_connection(conn_);
    throw AmqpError("cannot connect to " + where + ": " + why);
  }
  amqp_set_handshake_timeout(conn_, &connect_timeout);
  // RPCs (declare, qos, consume, close) must not hang a thread on a stuck broker.
  timeval rpc_timeout =
      ToTimeval(std::max(config.connect_timeout, std::chrono::milliseconds(10'000)));
  amqp_set_rpc_timeout(conn_, &rpc_timeout);

  // connection_name shows in the broker's UI; connection.blocked lets the broker
  // tell a publisher that it stopped reading (memory or disk alarm).
  amqp_table_entry_t capabilities[] = {
      {amqp_cstring_bytes("connection.blocked"), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}},
      {amqp_cstring_bytes("consumer_cancel_notify"), {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}},
  };
  amqp_table_entry_t entries[2];
  entries[0].key = amqp_cstring_bytes("connection_name");
  entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[0].value.value.bytes = Bytes(name);
  entries[1].key = amqp_cstring_bytes("capabilities");
  entries[1].value.kind = AMQP_FIELD_KIND_TABLE;
  entries[1].value.value.table = amqp_table_t{2, capabilities};
  amqp_table_t client_properties{2, entries};

  amqp_rpc_reply_t reply = amqp_login_with_properties(
      conn_, url.vhost.c_str(), 0, static_cast<int>(kFrameMax), config.heartbeat_seconds,
      &client_properties,
      AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str());
  try {
    try {
      Check(reply, "login to " + where + " vhost " + url.vhost + " as " + url.user);
    } catch (const AmqpError& e) {
      // TLS 1.3: a broker that wants a client certificate says so after the handshake.
      if (url.tls && std::string(e.what()).find("SSL") != std::string::npos)
        throw AmqpError(std::string(e.what()) +
                        " (the broker closed the TLS connection: does it require a client "
                        "certificate, bus.tls_cert_file?)");
      throw;
    }
    // Messages are sized against kFrameMax (Unpublishable, the dead letters): a
    // broker that grants less would fail their publishes on every attempt.
    const int granted = amqp_get_frame_max(conn_);
    if (granted < static_cast<int>(kFrameMax))
      throw AmqpError("the broker at " + where + " grants frames of " + std::to_string(granted) +
                     " bytes; payorch needs " + std::to_string(kFrameMax) +
                     " (RabbitMQ's default): raise frame_max in rabbitmq.conf");
  } catch (...) {
    amqp_destroy_connection(conn_);
    conn_ = nullptr;
    throw;
  }
}

Connection::~Connection() {
  if (!conn_) return;
  if (!broken_) {
    timeval short_timeout{2, 0};
    amqp_set_rpc_timeout(conn_, &short_timeout);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
}

int Connection::fd() const {
  return amqp_get_sockfd(conn_);
}

void Connection::OpenChannel(amqp_channel_t channel) {
  amqp_channel_open(conn_, channel);
  Check("opening channel " + std::to_string(channel));
}

void Connection::ThrowServerClose(const amqp_method_t& method, const std::string& context) {
  if (method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* close = static_cast<amqp_connection_close_t*>(method.decoded);
    uint16_t code = close->reply_code;
    std::string text = ToString(close->reply_text);
    amqp_connection_close_ok_t ok{};
    amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    broken_ = true;
    throw AmqpError(
        context + ": the broker closed the connection: " + std::to_string(code) + " " + text, code,
        false);
  }
  if (method.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* close = static_cast<amqp_channel_close_t*>(method.decoded);
    // The channel is dead; the owner drops the whole connection (a graceful
    // connection.close still works, so the connection is not marked broken).
    throw AmqpError(context + ": the broker closed the channel: " +
                        std::to_string(close->reply_code) + " " + ToString(close->reply_text),
                    close->reply_code, true);
  }
  broken_ = true;
  throw AmqpError(context + ": unexpected method " + amqp_method_name(method.id));
}

void Connection::Check(const amqp_rpc_reply_t& reply, const std::string& context) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return;
    case AMQP_RESPONSE_NONE:
      broken_ = true;
      throw AmqpError(context + ": no reply from the broker");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      broken_ = true;
      throw AmqpError(context + ": " + ErrorString(reply.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION: ThrowServerClose(reply.reply, context);
  }
}

void Connection::CheckStatus(int status, const std::string& context) {
  if (status == AMQP_STATUS_OK) return;
  broken_ = true;
  throw AmqpError(context + ": " + ErrorString(status));
}

bool Connection::NextFrame(amqp_frame_t& frame, std::chrono::milliseconds timeout) {
  timeval tv = ToTimeval(timeout);
  int status = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
  if (status == AMQP_STATUS_TIMEOUT) return false;
  if (status != AMQP_STATUS_OK) {
    broken_ = true;
    throw AmqpError("connection lost: " + ErrorString(status));
  }
  if (frame.frame_type == AMQP_FRAME_METHOD &&
      (frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
       frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD))
    ThrowServerClose(frame.payload.method, "channel " + std::to_string(frame.channel));
  return true;
}

bool Connection::HasBuffered() const {
  return amqp_frames_enqueued(conn_) || amqp_data_in_buffer(conn_);
}

void Connection::ReadContent(amqp_channel_t channel, Properties& properties, std::string& body) {
  amqp_message_t message;
  amqp_rpc_reply_t reply = amqp_read_message(conn_, channel, &message, 0);
  Check(reply, "reading message content");
  properties = FromAmqp(message.properties);
  body = ToString(message.body);
  amqp_destroy_message(&message);
}

// --- Values ----------------------------------------------------------------

AmqpValues::AmqpValues() {
  init_amqp_pool(&pool_, 4096);
}
AmqpValues::~AmqpValues() {
  empty_amqp_pool(&pool_);
}

amqp_bytes_t AmqpValues::Dup(const std::string& s) {
  amqp_bytes_t out;
  if (s.empty()) return amqp_empty_bytes;
  amqp_pool_alloc_bytes(&pool_, s.size(), &out);
  if (!out.bytes) throw std::bad_alloc();
  std::memcpy(out.bytes, s.data(), s.size());
  return out;
}

amqp_field_value_t AmqpValues::MakeValue(const FieldValue& v) {
  amqp_field_value_t out{};
  out.kind = static_cast<uint8_t>(v.kind);
  switch (v.kind) {
    case 't': out.value.boolean = v.i != 0; break;
    case 'b': out.value.i8 = static_cast<int8_t>(v.i); break;
    case 'B': out.value.u8 = static_cast<uint8_t>(v.u); break;
    case 's': out.value.i16 = static_cast<int16_t>(v.i); break;
    case 'u': out.value.u16 = static_cast<uint16_t>(v.u); break;
    case 'I': out.value.i32 = static_cast<int32_t>(v.i); break;
    case 'i': out.value.u32 = static_cast<uint32_t>(v.u); break;
    case 'l': out.value.i64 = v.i; break;
    case 'L':
    case 'T': out.value.u64 = v.u; break;
    case 'f': out.value.f32 = static_cast<float>(v.f); break;
    case 'd': out.value.f64 = v.f; break;
    case 'D':
      out.value.decimal.decimals = v.decimals;
      out.value.decimal.value = static_cast<uint32_t>(v.u);
      break;
    case 'S':
    case 'x': out.value.bytes = Dup(v.s); break;
    case 'A': {
      auto n = static_cast<int>(v.array.size());
      auto* entries = static_cast<amqp_field_value_t*>(
          amqp_pool_alloc(&pool_, sizeof(amqp_field_value_t) * std::max(n, 1)));
      if (!entries) throw std::bad_alloc();
      for (int i = 0; i < n; ++i) entries[i] = MakeValue(v.array[i]);
      out.value.array = amqp_array_t{n, entries};
      break;
    }
    case 'F': out.value.table = MakeTable(v.table); break;
    default: out.kind = AMQP_FIELD_KIND_VOID; break;
  }
  return out;
}

amqp_table_t AmqpValues::MakeTable(const Table& table) {
  if (table.empty()) return amqp_empty_table;
  auto n = static_cast<int>(table.size());
  auto* entries =
      static_cast<amqp_table_entry_t*>(amqp_pool_alloc(&pool_, sizeof(amqp_table_entry_t) * n));
  if (!entries) throw std::bad_alloc();
  int i = 0;
  for (const auto& [key, value] : table) {
    entries[i].key = Dup(key);
    entries[i].value = MakeValue(value);
    ++i;
  }
  return amqp_table_t{n, entries};
}

amqp_basic_properties_t AmqpValues::MakeProperties(const Properties& p) {
  amqp_basic_properties_t out{};
  auto set_string = [&](const std::optional<std::string>& v, amqp_bytes_t& field, uint32_t flag) {
    if (!v) return;
    field = Dup(*v);
    out._flags |= flag;
  };
  set_string(p.content_type, out.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG);
  set_string(p.content_encoding, out.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG);
  if (!p.headers.empty()) {
    out.headers = MakeTable(p.headers);
    out._flags |= AMQP_BASIC_HEADERS_FLAG;
  }
  if (p.delivery_mode) {
    out.delivery_mode = *p.delivery_mode;
    out._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
  }
  if (p.priority) {
    out.priority = *p.priority;
    out._flags |= AMQP_BASIC_PRIORITY_FLAG;
  }
  set_string(p.correlation_id, out.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG);
  set_string(p.reply_to, out.reply_to, AMQP_BASIC_REPLY_TO_FLAG);
  set_string(p.expiration, out.expiration, AMQP_BASIC_EXPIRATION_FLAG);
  set_string(p.message_id, out.message_id, AMQP_BASIC_MESSAGE_ID_FLAG);
  if (p.timestamp) {
    out.timestamp = *p.timestamp;
    out._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
  }
  set_string(p.type, out.type, AMQP_BASIC_TYPE_FLAG);
  set_string(p.user_id, out.user_id, AMQP_BASIC_USER_ID_FLAG);
  set_string(p.app_id, out.app_id, AMQP_BASIC_APP_ID_FLAG);
  return out;
}

Table FromAmqp(const amqp_table_t& table) {
  Table out;
  for (int i = 0; i < table.num_entries; ++i)
    out.emplace(ToString(table.entries[i].key), FromAmqpValue(table.entries[i].value));
  return out;
}

Properties FromAmqp(const amqp_basic_properties_t& p) {
  Properties out;
  auto get_string = [&](amqp_bytes_t field, uint32_t flag, std::optional<std::string>& v) {
    if (p._flags & flag) v = ToString(field);
  };
  get_string(p.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, out.content_type);
  get_string(p.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, out.content_encoding);
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) out.headers = FromAmqp(p.headers);
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) out.delivery_mode = p.delivery_mode;
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) out.priority = p.priority;
  get_string(p.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG, out.correlation_id);
  get_string(p.reply_to, AMQP_BASIC_REPLY_TO_FLAG, out.reply_to);
  get_string(p.expiration, AMQP_BASIC_EXPIRATION_FLAG, out.expiration);
  get_string(p.message_id, AMQP_BASIC_MESSAGE_ID_FLAG, out.message_id);
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out.timestamp = p.timestamp;
  get_string(p.type, AMQP_BASIC_TYPE_FLAG, out.type);
  get_string(p.user_id, AMQP_BASIC_USER_ID_FLAG, out.user_id);
  get_string(p.app_id, AMQP_BASIC_APP_ID_FLAG, out.app_id);
  return out;
}

// --- Waker, waiting, backoff -------------------------------------------------

Waker::Waker() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}
Waker::~Waker() {
  close(fd_);
}

void Waker::Notify() {
  uint64_t one = 1;
  // EAGAIN only when the counter is saturated, i.e. already signalled.
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof one);
}

void Waker::Drain() {
  uint64_t value;
  [[maybe_unused]] ssize_t n = read(fd_, &value, sizeof value);
}

bool WaitReadable(int socket_fd, Waker& waker, std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{socket_fd, POLLIN, 0}, {waker.fd(), POLLIN, 0}};
  int n = poll(fds, 2, static_cast<int>(timeout.count()));
  if (n <= 0) return false;
  if (fds[1].revents & POLLIN) waker.Drain();
  return (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : min_(std::max(min, std::chrono::milliseconds(1))),
      max_(std::max(max, min_)),
      current_(min_),
      rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::Next() {
  auto d = current_;
  current_ = std::min(current_ * 2, max_);
  std::uniform_int_distribution<int64_t> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng_));
}

// --- Status and logs ----------------------------------------------------------

void StatusKeeper::Connected(uint64_t generation) {
  LinkStatus copy;
  {
    std::lock_guard lock(mutex_);
    status_.connected = true;
    status_.generation = generation;
    ++status_.connects;
    status_.since = std::chrono::system_clock::now();
    copy = status_;
  }
  Changed(copy);
}

void StatusKeeper::Disconnected(const std::string& error) {
  LinkStatus copy;
  {
    std::lock_guard lock(mutex_);
    bool was = status_.connected;
    status_.connected = false;
    status_.last_error = error;
    if (was) status_.since = std::chrono::system_clock::now();
    copy = status_;
  }
  Changed(copy);
}

void StatusKeeper::Problem(const std::string& error) {
  LinkStatus copy;
  {
    std::lock_guard lock(mutex_);
    status_.last_error = error;
    copy = status_;
  }
  Changed(copy);
}

LinkStatus StatusKeeper::Get() const {
  std::lock_guard lock(mutex_);
  return status_;
}

void StatusKeeper::Changed(const LinkStatus& status) {
  if (on_change_) on_change_(status);
}

namespace {
std::mutex g_sink_mutex;
std::function<void(std::string_view)> g_sink;
}  // namespace

std::string Quoted(std::string_view text) {
  const std::string safe = domain::SafeDetail(text);
  std::string out = "\"";
  for (char ch : safe) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + '"';
}

void Log(const std::string& event, const std::string& fields) {
  std::string line = "event=" + event + (fields.empty() ? "" : " " + fields);
  {
    std::lock_guard lock(g_sink_mutex);
    if (g_sink) {
      g_sink(line);
      return;
    }
  }
  line = "bus: " + line + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace payorch::bus::detail

namespace payorch::bus {

void SetLogSink(std::function<void(std::string_view line)> sink) {
  std::lock_guard lock(detail::g_sink_mutex);
  detail::g_sink = std::move(sink);
}

}  // namespace payorch::bus
