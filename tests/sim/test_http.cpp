#include "test_http.hpp"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace payorch::testing {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

template <typename Serve>
asio::awaitable<void> AcceptEach(asio::io_context& io, tcp::acceptor& acceptor, Serve serve) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) co_return;
    asio::co_spawn(io, serve(std::move(socket)), asio::detached);
  }
}

// Listens on 127.0.0.1:0 and runs `serve(socket)` for each connection on `io`, on `thread`.
template <typename Serve>
void StartListening(asio::io_context& io, tcp::acceptor& acceptor, std::thread& thread,
                    Serve serve) {
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  acceptor.open(ep.protocol());
  acceptor.bind(ep);
  acceptor.listen();
  asio::co_spawn(io, AcceptEach(io, acceptor, std::move(serve)), asio::detached);
  thread = std::thread([&io] { io.run(); });
}

void StopListening(asio::io_context& io, tcp::acceptor& acceptor, std::thread& thread) {
  asio::post(io, [&io, &acceptor] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    io.stop();
  });
  thread.join();
}
}  // namespace

HttpReply Fetch(uint16_t port, const std::string& method, const std::string& target,
                const std::string& body, const Headers& headers,
                std::chrono::milliseconds timeout) {
  asio::io_context io;
  HttpReply out;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        auto [cec] = co_await stream.async_connect(
            tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), kTuple);
        if (cec) {
          out.error = "connect: " + cec.message();
          co_return;
        }
        http::request<http::string_body> req;
        req.method_string(method);
        req.target(target);
        req.version(11);
        req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
        bool has_ct = false;
        for (const auto& [k, v] : headers) {
          req.set(k, v);
          if (Lower(k) == "content-type") has_ct = true;
        }
        if (!body.empty() && !has_ct) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
        if (wec) {
          out.error = "write: " + wec.message();
          co_return;
        }
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (rec) {
          out.error = "read: " + rec.message();
          co_return;
        }
        auto& res = parser.get();
        out.status = static_cast<int>(res.result_int());
        out.content_type = std::string(res[http::field::content_type]);
        out.body = res.body();
        for (const auto& f : res)
          out.headers.emplace_back(Lower(f.name_string()), std::string(f.value()));
      },
      asio::detached);
  io.run_for(timeout + 1s);
  if (out.status == 0 && out.error.empty()) out.error = "no answer in time";
  return out;
}

RawReply RawExchange(uint16_t port, const std::string& bytes, std::chrono::milliseconds bound) {
  asio::io_context io;
  RawReply out;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::socket sock(io);
        auto [cec] = co_await sock.async_connect(
            tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), kTuple);
        if (cec) {
          out.reset = true;
          done = true;
          co_return;
        }
        if (!bytes.empty()) co_await asio::async_write(sock, asio::buffer(bytes), kTuple);
        char buf[4096];
        for (;;) {
          auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kTuple);
          out.data.append(buf, n);
          if (ec == asio::error::eof) {
            out.closed = true;
            break;
          }
          if (ec) {
            if (ec == asio::error::connection_reset)
              out.reset = true;
            else
              out.closed = true;
            break;
          }
        }
        done = true;
      },
      asio::detached);
  io.run_for(bound);
  if (!done) out.timed_out = true;
  return out;
}

bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds bound) {
  auto end = std::chrono::steady_clock::now() + bound;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return pred();
    std::this_thread::sleep_for(5ms);
  }
}

std::string WriteTempFile(const std::string& content, const std::string& suffix) {
  const char* dir = std::getenv("TMPDIR");
  std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/payorch-test-XXXXXX" + suffix;
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkstemps(name.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw std::runtime_error("mkstemps failed");
  ::close(fd);
  std::ofstream f(name.data(), std::ios::binary);
  f << content;
  return name.data();
}

// ---- callback receiver ---------------------------------------------------------

struct CallbackReceiver::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<Received> received;
  std::vector<int> statuses;
  int then = 200;
  size_t answered = 0;

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      stream.expires_after(10s);
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(stream, buffer, req, kTuple);
      if (ec) break;
      int status;
      {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(Received{std::string(req.method_string()), std::string(req.target()),
                                    std::string(req[http::field::content_type]), req.body(),
                                    std::chrono::steady_clock::now()});
        status = answered < statuses.size() ? statuses[answered] : then;
        ++answered;
      }
      cv.notify_all();
      http::response<http::string_body> res{static_cast<http::status>(status), 11};
      res.body() = "{}";
      res.set(http::field::content_type, "application/json");
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (wec || !req.keep_alive()) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
};

CallbackReceiver::CallbackReceiver() : impl_(std::make_unique<Impl>()) {
  StartListening(
      impl_->io, impl_->acceptor, impl_->thread,
      [impl = impl_.get()](tcp::socket socket) { return impl->Serve(std::move(socket)); });
}

CallbackReceiver::~CallbackReceiver() {
  StopListening(impl_->io, impl_->acceptor, impl_->thread);
}

uint16_t CallbackReceiver::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::string CallbackReceiver::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port()) + path;
}

void CallbackReceiver::SetStatuses(std::vector<int> first, int then) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->statuses = std::move(first);
  impl_->then = then;
  impl_->answered = 0;
}

std::vector<CallbackReceiver::Received> CallbackReceiver::Requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received;
}

size_t CallbackReceiver::Count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->received.size();
}

bool CallbackReceiver::WaitFor(size_t count, std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, bound, [&] { return impl_->received.size() >= count; });
}

// ---- TLS --------------------------------------------------------------------------

CertPair MakeSelfSigned(const std::string& dns_name, const std::string& ip) {
  EVP_PKEY* key = EVP_EC_gen("prime256v1");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600 * 24);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  std::string san = "DNS:" + dns_name + (ip.empty() ? "" : ",IP:" + ip);
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_EXTENSION* ext =
          X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE")) {
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  CertPair out;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  out.cert_pem.assign(data, static_cast<size_t>(len));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  len = BIO_get_mem_data(b, &data);
  out.key_pem.assign(data, static_cast<size_t>(len));
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

struct TlsStub::Impl {
  asio::io_context io{1};
  ssl::context ctx{ssl::context::tls_server};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::string body;
  std::atomic<size_t> served{0};

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), ctx);
    beast::get_lowest_layer(stream).expires_after(10s);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kTuple);
    if (hec) co_return;
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(stream, buffer, req, kTuple);
      if (ec) break;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      ++served;
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (wec || !req.keep_alive()) break;
    }
  }
};

TlsStub::TlsStub(const CertPair& cert, std::string body) : impl_(std::make_unique<Impl>()) {
  impl_->body = std::move(body);
  impl_->ctx.use_certificate_chain(asio::buffer(cert.cert_pem));
  impl_->ctx.use_private_key(asio::buffer(cert.key_pem), ssl::context::pem);
  StartListening(
      impl_->io, impl_->acceptor, impl_->thread,
      [impl = impl_.get()](tcp::socket socket) { return impl->Serve(std::move(socket)); });
}

TlsStub::~TlsStub() {
  StopListening(impl_->io, impl_->acceptor, impl_->thread);
}

uint16_t TlsStub::port() const {
  return impl_->acceptor.local_endpoint().port();
}
size_t TlsStub::Served() const {
  return impl_->served.load();
}

}  // namespace payorch::testing
