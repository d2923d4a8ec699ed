// A small HTTP/1.1 server (Beast) for PayEx callbacks, health and metrics: keep-alive,
// bounded requests (header and body sizes, the time a request may take to arrive,
// the number of connections) answered by the server itself, everything else handed
// to one Handler. Runs on the given executor (the engine's single io_context thread):
// every member must be called there; no locks. Start throws std::runtime_error when
// it cannot listen; after that nothing throws: a handler's exception becomes a 500.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "http/message.hpp"

namespace payorch::http {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port, read it back from Start()
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_header_bytes = 8 * 1024;  // request line and fields
  // A request (headers and body) must arrive within this after its first byte (after
  // the accept, for a connection's first request); slower clients are dropped. It
  // also bounds writing each answer.
  std::chrono::milliseconds read_timeout{10000};
  // How long a keep-alive connection may sit between requests.
  std::chrono::milliseconds idle_timeout{30000};
  // At this many open connections a new one evicts the connection that has waited
  // longest for or on a request (idle, or slow to send it); only when all are being
  // answered is the new one closed at once (Stats::over_limit).
  std::size_t max_connections = 1024;
  std::string name = "http";           // server=<name> in log lines
  // One structured line per event; never carries a query string. Empty: stderr.
  std::function<void(std::string_view line)> log;
  // One line per request answered (http.request); off, the line is not even built.
  bool log_requests = true;
};

namespace detail {
class ServerCore;
}

class Server {
 public:
  Server(boost::asio::any_io_executor executor, ServerOptions options, Handler handler);
  ~Server();  // Stop(); must not outlive the executor's io_context (nor may a Reply)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens synchronously; returns the bound port. Throws
  // std::runtime_error naming address:port and the OS error, or when called again
  // after a successful Start() or after Stop().
  uint16_t Start();
  // Stops accepting and closes connections that are idle or still receiving a
  // request; requests being handled get their reply (with Connection: close), then
  // their connection closes.
  void Stop();
  uint16_t port() const;

  struct Stats {
    uint64_t accepted = 0;    // connections served (not counting over_limit)
    uint64_t requests = 0;    // requests handed to the handler
    uint64_t rejected = 0;    // 4xx answered by the server itself (400, 413, 431)
    uint64_t timeouts = 0;    // connections dropped for a slow request or response
    uint64_t over_limit = 0;  // new connections closed at once: max_connections all being answered
    uint64_t evicted = 0;     // waiting connections cut to make room for a new one
    std::size_t open_connections = 0;
  };
  Stats stats() const;

 private:
  std::shared_ptr<detail::ServerCore> core_;
};

}  // namespace payorch::http
