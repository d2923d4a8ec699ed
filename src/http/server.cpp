// Connection handling. Every request is bounded before the handler sees it: header
// size (431), body size (413, from Content-Length before any of the body is read),
// the time a request may take to arrive (a slow-loris client is dropped, not
// answered), and the number of open connections. A connection's first request must
// arrive within read_timeout of the accept; later ones on a keep-alive connection
// may wait idle_timeout for their first byte, then have read_timeout to arrive.
//
// At max_connections a new connection does not wait for a slot: the connection
// that has waited longest for (or on) a request of its own is cut to make room
// (evicted), so thousands of idle or slow clients cannot lock a PayEx callback
// out. Only when every connection is being answered is the new one closed at once
// (over_limit). Both are logged at most once a second, with counts.
//
// Closing: after an answer with Connection: close we shut down our side and read
// (and discard) for a short bound before closing, because closing a socket with
// unread request bytes makes the kernel send a reset that can destroy the answer
// (a 413) before the client has read it.
#include "http/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace payorch::http {
namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;  // "http" is this namespace
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Bounds on the lingering close (see the top of this file).
constexpr std::chrono::milliseconds kMaxDrainTime{1000};
constexpr std::size_t kMaxDrainBytes = 1 << 20;
// The first read of a connection: a callback or an ordinary request in one go.
constexpr std::size_t kFirstReadBytes = 4096;

namespace {

// A log value: bare when harmless, else quoted with escapes, so a hostile path
// cannot break or forge a log line.
std::string LogValue(std::string_view v) {
  bool bare = !v.empty();
  for (unsigned char c : v)
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=') bare = false;
  if (bare) return std::string(v);
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  return beast::iequals(a, b);
}

bool IsParseError(const boost::system::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

Response Problem(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.body.push_back('\n');
  return r;
}

std::string Millis(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", std::chrono::duration<double, std::milli>(d).count());
  return buf;
}

// Where a Reply delivers its Response; the session waits on the timer, which the
// delivery cancels.
struct ReplySlot {
  explicit ReplySlot(const asio::any_io_executor& ex)
      : timer(ex, asio::steady_timer::time_point::max()) {}
  void Set(Response r) {
    if (response) return;  // first answer wins
    response = std::move(r);
    timer.cancel();
  }
  asio::steady_timer timer;
  std::optional<Response> response;
  bool dropped = false;  // the Reply was destroyed uncalled
};

// Shared by every copy of one Reply: answers 500 when the last copy goes away
// uncalled, so a handler bug costs one request, not a connection hung forever.
class ReplyGuard {
 public:
  explicit ReplyGuard(std::shared_ptr<ReplySlot> slot) : slot_(std::move(slot)) {}
  ~ReplyGuard() {
    if (called_.exchange(true)) return;
    asio::dispatch(slot_->timer.get_executor(), [slot = slot_] {
      if (slot->response) return;
      slot->dropped = true;
      slot->Set(Problem(500, "internal error"));
    });
  }
  ReplyGuard(const ReplyGuard&) = delete;
  ReplyGuard& operator=(const ReplyGuard&) = delete;
  void Call(Response r) {
    if (called_.exchange(true)) return;
    asio::dispatch(slot_->timer.get_executor(),
                   [slot = slot_, r = std::move(r)]() mutable { slot->Set(std::move(r)); });
  }

 private:
  std::shared_ptr<ReplySlot> slot_;
  std::atomic<bool> called_{false};
};

}  // namespace

class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(asio::any_io_executor executor, ServerOptions options, Handler handler)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        handler_(std::move(handler)),
        acceptor_(executor_) {}

  uint16_t Start();
  void Stop();
  uint16_t port() const { return port_; }
  Server::Stats stats() const {
    Server::Stats s = stats_;
    s.open_connections = conns_.size();
    return s;
  }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosing };
  struct Conn {
    explicit Conn(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    State state = State::kReading;
    std::string remote;
    Clock::time_point since = Clock::now();  // when the current state began
    bool evicted = false;                    // cut to make room; closing
  };
  // The connection waiting longest for or on a request (idle or reading), not yet
  // evicted; nullptr when every connection is being answered.
  Conn* OldestWaiting() const;
  // Cuts the oldest waiting connection; false when there is none.
  bool Evict();
  // "http.over_limit" / "http.evicted" at most once a second, with the count since.
  void LogThrottled(const char* event, uint64_t& unlogged, Clock::time_point& last);

  // `self` keeps the core alive for as long as the coroutine frame exists.
  asio::awaitable<void> Accept(std::shared_ptr<ServerCore> self);
  asio::awaitable<void> Session(std::shared_ptr<ServerCore> self, std::shared_ptr<Conn> conn);
  asio::awaitable<Response> Invoke(Request request, const std::string& method,
                                   const std::string& path);
  void Log(const std::string& line) const {
    if (options_.log) {
      options_.log(line);
    } else {
      std::cerr << line << '\n';
    }
  }
  std::string Event(std::string_view event) const {
    return "event=" + std::string(event) + " server=" + LogValue(options_.name);
  }
  void Spawn(asio::awaitable<void> work, const char* where) {
    asio::co_spawn(
        executor_, std::move(work), [self = shared_from_this(), where](std::exception_ptr e) {
          if (!e) return;
          std::string what = "unknown";
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            what = ex.what();
          } catch (...) {
          }
          self->Log(self->Event("http.error") + " where=" + where + " error=" + LogValue(what));
        });
  }

  asio::any_io_executor executor_;
  ServerOptions options_;
  Handler handler_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  Server::Stats stats_;
  std::unordered_set<Conn*> conns_;
  size_t evicting_ = 0;  // evicted connections still open (closing)
  uint64_t unlogged_over_limit_ = 0, unlogged_evicted_ = 0;
  Clock::time_point last_over_limit_log_{}, last_evicted_log_{};
};

ServerCore::Conn* ServerCore::OldestWaiting() const {
  Conn* oldest = nullptr;
  for (Conn* c : conns_)
    if (!c->evicted && (c->state == State::kIdle || c->state == State::kReading) &&
        (!oldest || c->since < oldest->since))
      oldest = c;
  return oldest;
}

bool ServerCore::Evict() {
  Conn* victim = OldestWaiting();
  if (!victim) return false;
  victim->evicted = true;
  ++evicting_;
  ++stats_.evicted;
  victim->stream.cancel();
  ++unlogged_evicted_;
  LogThrottled("http.evicted", unlogged_evicted_, last_evicted_log_);
  return true;
}

void ServerCore::LogThrottled(const char* event, uint64_t& unlogged, Clock::time_point& last) {
  const auto now = Clock::now();
  if (now - last < std::chrono::seconds(1)) return;
  last = now;
  Log(Event(event) + " count=" + std::to_string(unlogged) +
      " open_connections=" + std::to_string(conns_.size()) +
      " max_connections=" + std::to_string(options_.max_connections));
  unlogged = 0;
}

uint16_t ServerCore::Start() {
  if (started_ || stopping_)
    throw std::runtime_error("http server " + options_.name + ": already started or stopped");
  std::string where = options_.address + ":" + std::to_string(options_.port);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options_.address, ec);
  if (ec)
    throw std::runtime_error("http server " + options_.name + ": cannot listen on " + where +
                             ": bad address (" + ec.message() + ")");
  tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error("http server " + options_.name + ": cannot listen on " + where + ": " +
                             ec.message());
  }
  started_ = true;
  Log(Event("http.listening") + " address=" + LogValue(options_.address) +
      " port=" + std::to_string(port_));
  Spawn(Accept(shared_from_this()), "accept");
  return port_;
}

void ServerCore::Stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  // Cancelling wakes the session with operation_aborted and it closes; sessions
  // handling or answering a request see stopping_ and close after the answer.
  for (Conn* conn : conns_)
    if (conn->state != State::kHandling && conn->state != State::kWriting) conn->stream.cancel();
  if (started_) Log(Event("http.stop") + " open_connections=" + std::to_string(conns_.size()));
}

asio::awaitable<void> ServerCore::Accept(std::shared_ptr<ServerCore> self) {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
    if (stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // e.g. EMFILE: keep serving the connections we have, free a descriptor by
      // cutting the longest-waiting one, and retry shortly.
      Log(Event("http.accept_error") + " error=" + LogValue(ec.message()));
      if (ec == asio::error::no_descriptors) Evict();
      asio::steady_timer pause(executor_, std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    if (conns_.size() - evicting_ >= options_.max_connections && !Evict()) {
      ++stats_.over_limit;
      ++unlogged_over_limit_;
      LogThrottled("http.over_limit", unlogged_over_limit_, last_over_limit_log_);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++stats_.accepted;
    auto conn = std::make_shared<Conn>(std::move(socket));
    // Registered here, not in the session, so max_connections counts connections
    // whose session has not started yet.
    conns_.insert(conn.get());
    Spawn(Session(self, std::move(conn)), "session");
  }
}

asio::awaitable<Response> ServerCore::Invoke(Request request, const std::string& method,
                                             const std::string& path) {
  auto slot = std::make_shared<ReplySlot>(executor_);
  {
    auto guard = std::make_shared<ReplyGuard>(slot);
    Reply reply = [guard](Response r) { guard->Call(std::move(r)); };
    guard.reset();
    try {
      handler_(std::move(request), std::move(reply));
    } catch (const std::exception& e) {
      Log(Event("http.handler_error") + " method=" + method + " path=" + path +
          " error=" + LogValue(e.what()));
      slot->dropped = false;  // the unwinding dropped the Reply; logged above already
      slot->Set(Problem(500, "internal error"));
    } catch (...) {
      Log(Event("http.handler_error") + " method=" + method + " path=" + path + " error=unknown");
      slot->dropped = false;
      slot->Set(Problem(500, "internal error"));
    }
    // Our copies end here: a handler that kept none has answered or is answered 500.
  }
  while (!slot->response) co_await slot->timer.async_wait(kTuple);
  if (slot->dropped) Log(Event("http.reply_dropped") + " method=" + method + " path=" + path);
  co_return std::move(*slot->response);
}

asio::awaitable<void> ServerCore::Session(std::shared_ptr<ServerCore> self,
                                          std::shared_ptr<Conn> conn) {
  struct Unregister {
    ServerCore* core;
    Conn* conn;
    ~Unregister() {
      if (conn->evicted) --core->evicting_;
      core->conns_.erase(conn);
    }
  } unregister{this, conn.get()};

  boost::system::error_code ignored;
  auto& stream = conn->stream;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  auto remote = stream.socket().remote_endpoint(ignored);
  conn->remote = remote.address().to_string();

  const auto read_timeout = options_.read_timeout;
  const auto accepted_at = Clock::now();
  // Room for a whole ordinary request at once: Beast reads at most the free capacity
  // (at least 512 bytes), so an empty buffer took a callback in two reads or more.
  beast::flat_buffer buffer;
  buffer.reserve(kFirstReadBytes);
  bool first = true;
  bool linger = false;  // closing after an answer: drain before closing

  while (!stopping_) {
    Clock::time_point deadline;
    if (first) {
      deadline = accepted_at + read_timeout;
    } else if (buffer.size() > 0) {
      deadline = Clock::now() + read_timeout;
    } else {
      conn->state = State::kIdle;
      conn->since = Clock::now();
      stream.expires_after(options_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(1024), kTuple);
      if (ec) break;  // idle too long, closed by the peer, or Stop()
      buffer.commit(n);
      deadline = Clock::now() + read_timeout;
    }
    first = false;
    if (stopping_ || conn->evicted) break;

    if (conn->state != State::kReading) conn->since = Clock::now();  // (the accept's, first)
    conn->state = State::kReading;
    const auto started = Clock::now();
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(
        std::min<std::size_t>(options_.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    // No body limit while the header is read: Beast would refuse a large
    // Content-Length before the header is complete, and the 413 could not be logged
    // with its method and path. The limit is checked just below and set for the body.
    parser.body_limit(boost::none);
    stream.expires_at(deadline);
    auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
    boost::system::error_code ec = hec;
    if (!ec) {
      // Refuse by the declared length, before reading any of the body.
      auto length = parser.content_length();
      if (length && *length > options_.max_body_bytes) ec = bhttp::error::body_limit;
      parser.body_limit(options_.max_body_bytes);  // chunked bodies
    }
    if (!ec && !parser.is_done()) {
      auto expect = parser.get()[bhttp::field::expect];
      if (parser.get().version() >= 11 && IEquals(expect, "100-continue")) {
        bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, 11};
        auto [cec, cn] = co_await bhttp::async_write(stream, go_on, kTuple);
        ec = cec;
      }
      if (!ec) {
        auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
        ec = bec;
      }
    }
    if (stopping_ || conn->evicted) break;

    std::string method = "-";
    std::string path = "-";
    if (parser.is_header_done()) {
      method = LogValue(parser.get().method_string());
      // The raw path only: the query carries the callback token and is never logged.
      std::string_view raw = RawPath(parser.get().target());
      path = LogValue(raw.empty() ? std::string_view("-") : raw);
    }

    std::optional<Response> early;  // the server's own answer
    std::string reason;             // ... and why, for the log
    if (ec == bhttp::error::body_limit) {
      early = Problem(
          413, "request body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
      reason = "body_too_large";
    } else if (ec == bhttp::error::header_limit) {
      early = Problem(431, "request header larger than " +
                               std::to_string(options_.max_header_bytes) + " bytes");
      reason = "header_too_large";
    } else if (ec == beast::error::timeout) {
      ++stats_.timeouts;
      Log(Event("http.timeout") + " phase=request remote=" + LogValue(conn->remote) +
          " method=" + method + " path=" + path);
      break;
    } else if (ec && IsParseError(ec)) {
      early = Problem(400, "malformed request: " + ec.message());
      reason = "malformed_request";
    } else if (ec) {
      break;  // closed or reset by the peer
    }

    Request request;
    if (!early && !ParseTarget(parser.get().target(), request)) {
      early = Problem(400, "malformed request target");
      reason = "malformed_target";
    }

    unsigned version = parser.is_header_done() ? parser.get().version() : 11;
    bool head = parser.is_header_done() && parser.get().method() == bhttp::verb::head;
    Response response;
    if (early) {
      ++stats_.rejected;
      response = std::move(*early);
    } else {
      auto& message = parser.get();
      request.method = std::string(message.method_string());
      request.content_type = std::string(message[bhttp::field::content_type]);
      request.body = std::move(message.body());
      request.remote_address = conn->remote;
      ++stats_.requests;
      conn->state = State::kHandling;
      response = co_await Invoke(std::move(request), method, path);
    }
    // Decided after the handler: a Stop() meanwhile closes after this answer.
    bool keep_alive = !early && parser.get().keep_alive() && !stopping_;

    bhttp::response<bhttp::string_body> res;
    res.version(version == 10 ? 10 : 11);
    if (response.status < 200 || response.status > 599) {
      Log(Event("http.bad_status") + " method=" + method + " path=" + path +
          " status=" + std::to_string(response.status));
      response = Problem(500, "internal error");
    }
    res.result(static_cast<unsigned>(response.status));
    if (!response.content_type.empty()) res.set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) {
      if (IEquals(name, "content-length") || IEquals(name, "connection") ||
          IEquals(name, "transfer-encoding"))
        continue;
      // A CR or LF would let a header value inject a header (or a response).
      if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos)
        continue;
      res.insert(name, value);
    }
    if (response.status == 204 || response.status == 304) response.body.clear();
    if (head) {
      res.content_length(response.body.size());
    } else {
      res.body() = std::move(response.body);
      res.prepare_payload();
    }
    res.keep_alive(keep_alive);
    if (!keep_alive) res.set(bhttp::field::connection, "close");

    conn->state = State::kWriting;
    stream.expires_after(read_timeout);
    auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
    if (options_.log_requests)
      Log(Event("http.request") + " method=" + method + " path=" + path +
          " status=" + std::to_string(response.status) + " ms=" + Millis(Clock::now() - started) +
          " remote=" + LogValue(conn->remote) + (reason.empty() ? "" : " reason=" + reason));
    if (wec) {
      if (wec == beast::error::timeout) {
        ++stats_.timeouts;
        Log(Event("http.timeout") + " phase=response remote=" + LogValue(conn->remote) +
            " method=" + method + " path=" + path);
      }
      break;
    }
    if (!keep_alive) {
      linger = true;
      break;
    }
  }

  if (linger && !stopping_) {
    conn->state = State::kClosing;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(std::min<std::chrono::milliseconds>(read_timeout, kMaxDrainTime));
    std::array<char, 4096> sink;
    std::size_t drained = 0;
    while (drained < kMaxDrainBytes && !stopping_) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
      if (ec) break;
      drained += n;
    }
  } else {
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  stream.socket().close(ignored);
}

}  // namespace detail

Server::Server(boost::asio::any_io_executor executor, ServerOptions options, Handler handler)
    : core_(std::make_shared<detail::ServerCore>(std::move(executor), std::move(options),
                                                 std::move(handler))) {}

Server::~Server() {
  if (core_) core_->Stop();
}

uint16_t Server::Start() {
  return core_->Start();
}

void Server::Stop() {
  core_->Stop();
}

uint16_t Server::port() const {
  return core_->port();
}

Server::Stats Server::stats() const {
  return core_->stats();
}

}  // namespace payorch::http
