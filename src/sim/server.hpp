// payex-sim's HTTP server: Beast on one io_context thread, loopback by default.
// It moves bytes between sockets and the Model (which holds every rule), applies
// the connection-level faults (latency, drops, hangs, truncation), drives the
// simulated clock and delivers callbacks. Start/Stop/port may be called from any
// thread; everything else runs on the server's thread. Start throws
// std::runtime_error when the address cannot be bound.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sim/config.hpp"

namespace payorch::sim {

class Server {
 public:
  explicit Server(SimConfig config);
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (port 0 picks a free port) and serves on a thread of its own.
  void Start();
  // Binds and serves on the calling thread until SIGINT or SIGTERM; `on_listening`
  // runs once the port is known.
  void Run(const std::function<void(uint16_t port)>& on_listening);
  void Stop();

  uint16_t port() const;
  std::string base_url() const;  // http://<listen>:<port>

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::sim
