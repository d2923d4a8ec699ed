// What the engine's rooms share: the options, the ports, the engine thread's store
// connection (reads), the metrics, and whether the engine is draining, stopped or
// broken. Internal to src/engine. Thread: the engine thread only.
// Errors: a store read that throws makes the engine fatal (StoreBroken): it stops,
// and the supervisor restarts it on the consistent file.
#pragma once

#include <functional>
#include <string>

#include "engine/gauges.hpp"
#include "engine/options.hpp"
#include "engine/ports.hpp"
#include "metrics/registry.hpp"
#include "store/store.hpp"

namespace payorch::engine {

struct Context {
  Context(const Options& o, Ports p, store::Store& s, metrics::Registry& m)
      : options(o), ports(p), store(s), metrics(m) {}

  const Options& options;
  Ports ports;
  store::Store& store;
  metrics::Registry& metrics;
  // Payments by phase, in doubt, the outbox backlog: kept by the decider and the
  // group commit, exported per scrape.
  Gauges gauges;

  bool draining = false;
  bool stopped = false;
  bool fatal = false;
  std::string fatal_reason;
  // Set by the engine: what to do when the store breaks (stop, once).
  std::function<void()> on_fatal;

  domain::Time Now() const { return ports.clock.Now(); }

  void StoreBroken(const std::string& why);
};

}  // namespace payorch::engine
