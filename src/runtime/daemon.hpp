// payorchd's engine on its production ports: the store's three connections (the
// engine thread's reads, the writer thread, the checkpointer), the bus library's
// consumer and publisher, the PayEx client, and Asio's clock and timers, all built
// from the daemon's configuration. Thread: the io_context's one thread, plus the
// writer, checkpointer and bus threads behind the ports.
// Errors: the constructor throws (store, topology, TLS refused, bad configuration) with a
// message naming what to fix; afterwards the engine's contract (engine.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "config/config.hpp"
#include "engine/engine.hpp"

namespace payorch::metrics {
class Registry;
}

namespace payorch::runtime {

// The engine's options from the daemon's configuration.
engine::Options EngineOptions(const config::Config& config);

class Daemon {
 public:
  // `partition`: which of config.bus.topology.partitions the store holds; the store
  // is bound to it at the first start and refused under any other (BindPartition).
  Daemon(boost::asio::any_io_executor executor, const config::Config& config,
         metrics::Registry& metrics, uint32_t partition = 0);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void Start(std::function<void()> on_stopped);
  void Drain();
  engine::Engine& engine();

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
  boost::asio::any_io_executor executor_;
  std::string store_path_;
  bool check_store_ = true;
};

}  // namespace payorch::runtime
