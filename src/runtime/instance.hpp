// One payorchd's share of the partitions (issue 13): a Daemon (engine, store,
// consumer, publisher, PayEx client) per partition it holds.
//
// Unpartitioned (bus.topology.partitions 1, the default) it is one Daemon on
// store.path consuming the orders queue, and the store's lock must be free at start,
// as before. Partitioned, for each partition it may serve (instance.partitions) it
// takes the lock of that partition's store (runtime::StoreLock) and only then starts
// an engine on it, consuming the partition's queue; each partition held elsewhere is
// tried again every instance.poll_interval. When its holder dies (the kernel drops a
// dead process's flock) or drains, this instance takes it over and resumes it as
// after a restart: in-doubt calls are read back, unsent events published. Partitions
// outside instance.prefer are taken only after instance.standby_delay, so instances
// started together share the partitions as configured. A bus::Router moves order
// events from the orders queue to the partition queues; one instance's router works
// at a time (single active consumer), the others stand by.
//
// Thread: the io_context's one thread (the daemons' own threads behind them).
// Errors: Start throws for what stops start-up (the unpartitioned store's lock held
// elsewhere, a store or topology error). Unpartitioned, an engine that stops on a
// fatal error stops the instance (Fatal(); exit 1, the supervisor restarts it).
// Partitioned, one partition's failure is that partition's alone: a partition that
// cannot be opened (a damaged or foreign store, a topology error) or whose engine
// stops on a fatal error is released (its lock freed, so another instance may take
// it) and tried again after a backoff (1 s doubling to 5 min), while the instance
// goes on serving its other partitions; Failures() lists them. An engine that
// throws while starting (no thread or descriptor to be had) stops the instance.
//
// A takeover builds the partition's daemon on this thread: the store is opened (and
// quick-checked when smaller than store.quick_check_first_mib; a larger one is checked
// beside) and the topology declared, so the instance's other partitions wait for it
// (tens of milliseconds on a local disk, see the README's figures).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "config/config.hpp"
#include "engine/engine.hpp"

namespace payorch::metrics {
class Registry;
}

namespace payorch::runtime {

class Instance {
 public:
  Instance(boost::asio::any_io_executor executor, const config::Config& config,
           metrics::Registry& metrics);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Takes what it can and starts serving; `on_stopped` runs once every engine has
  // stopped after Drain() or a fatal error.
  void Start(std::function<void()> on_stopped);
  // SIGTERM: stops taking partitions and routing, drains every engine. Idempotent.
  void Drain();

  // The engine of the order's partition, or nullptr when another instance holds it.
  engine::Engine* EngineFor(const std::string& order_id);
  std::vector<engine::Engine*> Engines();
  uint32_t partitions() const;
  std::vector<uint32_t> Held() const;  // serving, ascending
  // Ready: at least one partition held, every held engine ready, the router's links up.
  engine::EngineStatus Status() const;
  bool Fatal() const;
  bool Draining() const;

  // Partitions released after a failure, waiting for their next attempt.
  struct Failure {
    uint32_t partition = 0;
    int attempts = 0;
    std::string error;
    double retry_in_s = 0;
  };
  std::vector<Failure> Failures() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::runtime
