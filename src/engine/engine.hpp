// The orchestrator's core: order events from the source and PayEx observations
// (results, callbacks, timers) go through domain::Decide; decisions close together
// become one transaction (group commit); then deliveries are acked, PayEx calls
// start and the outbox relay publishes the new payment events with confirms. Its
// rooms, in the order data flows: intake.hpp, decider.hpp, group_commit.hpp,
// call_executor.hpp, due_timer.hpp, outbox_relay.hpp. It is given its ports
// (ports.hpp) and options, so the same engine runs in payorchd (src/runtime) and,
// single-threaded on a virtual clock, in the deterministic simulation (tests/engine).
// Thread: one engine thread, no locks. Errors: nothing throws after construction;
// a failed commit or a broken store stops the engine (Fatal()), and the
// supervisor restarts it on the consistent file.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "domain/reconcile.hpp"
#include "engine/options.hpp"
#include "engine/parked_event.hpp"
#include "engine/ports.hpp"

namespace payorch::metrics {
class Registry;
}

namespace payorch::engine {

enum class HintOutcome { kAccepted, kUnknownPayment };

struct RepublishOutcome {
  bool known = false;
  size_t events = 0;  // outbox events queued for publishing again
};

// A point-in-time view for /readyz and tests.
struct EngineStatus {
  bool store_ok = true;
  bool consumer_connected = false;
  bool publisher_connected = false;
  bool draining = false;
  bool fatal = false;
  std::string detail;  // why not ready, for /readyz
  bool Ready() const {
    return store_ok && consumer_connected && publisher_connected && !draining && !fatal;
  }
};

// Counts for tests and the simulation.
struct EngineCounts {
  size_t cached = 0;
  size_t calls_queued = 0;
  size_t calls_in_flight = 0;
  size_t commits_in_flight = 0;
  size_t publishes_in_flight = 0;
};

// payorchctl reconcile: payorch's record of one payment against PayEx's.
struct ReconcileOutcome {
  enum class Status {
    kCompared,     // read and compared (result says how it went)
    kUnknownOrder,
    kNotCreated,   // no PayEx payment yet: nothing to compare
    kPayexError,   // PayEx could not be read (error says why)
    kStopping,     // the engine drains
  };
  Status status = Status::kCompared;
  domain::Payment payment;         // payorch's record, as compared
  domain::PaymentSnapshot payex;   // PayEx's view
  domain::Reconciliation result;
  std::string error;
};

class Engine {
 public:
  // `store` is the engine thread's connection, for reads; the writer has its own.
  Engine(const Options& options, Ports ports, store::Store& store, metrics::Registry& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Resumes what the store holds (calls in flight are in doubt, unsent events,
  // due timers), then starts the source and the publisher. `on_stopped` runs on
  // the engine thread once the engine has stopped: after Drain(), or after a
  // fatal store error (then Fatal() is true and the process should exit non-zero).
  void Start(std::function<void()> on_stopped);
  // SIGTERM: stops intake, commits what is decided, acks, waits (bounded) for PayEx
  // calls in flight and for the confirms of the outbox, then stops. Idempotent.
  void Drain();
  // The store is damaged (a check beside the engine found it): the engine stops as
  // after a fatal store error. Idempotent.
  void StoreDamaged(const std::string& why);

  // A PayEx callback for this order (authentic: the HTTP layer checked its token).
  HintOutcome OnCallback(const std::string& order_id);
  // payorchctl payment resolve: read PayEx now (a callback hint from the operator).
  HintOutcome Resolve(const std::string& order_id);
  // payorchctl payment republish: every event of the order is published again with
  // its own id and sequence (consumers deduplicate); recorded in the history.
  RepublishOutcome Republish(const std::string& order_id);
  // payorchctl reconcile: reads the payment at PayEx now (every transaction) and
  // compares it with the record (domain::Reconcile); changes nothing. `done` runs on
  // the engine thread, once, unless the engine is destroyed first.
  void Reconcile(const std::string& order_id, std::function<void(ReconcileOutcome)> done);
  // Payment events the bus refused for good, one per order (payorchctl payment parked).
  std::vector<ParkedEvent> Parked() const;

  EngineStatus Status() const;
  EngineCounts Counts() const;
  bool Fatal() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::engine
