// The orchestrator: order events from the bus and PayEx observations (results,
// callbacks, timers) go through domain::Decide; decisions close together are made
// durable in one transaction (group commit); then deliveries are acked, PayEx calls
// start and the outbox relay publishes the new payment events with confirms.
// Thread: everything runs on the io_context's one thread (no locks); the bus links
// hand work over with asio::post. Errors: the constructor throws (store, topology,
// bad configuration) with a message naming what to fix; afterwards nothing throws:
// a failed commit requeues its deliveries and, when the store is broken, stops the
// engine (Fatal()), so the supervisor restarts it on a consistent file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "app/config.hpp"

namespace payorch::http {
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

class Engine {
 public:
  // Opens the store (must exist unless store.options.create_if_missing) and declares
  // the bus topology (refusing an incompatible broker). Throws std::exception.
  Engine(boost::asio::any_io_executor executor, const app::Config& config,
         http::Registry& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Resumes what the store holds (calls in flight are in doubt, unsent events,
  // due timers), then starts consuming and publishing. `on_stopped` runs on the
  // engine thread once the engine has stopped: after Drain(), or after a fatal
  // store error (then Fatal() is true and the process should exit non-zero).
  void Start(std::function<void()> on_stopped);
  // SIGTERM: stops intake, commits what is decided, acks, waits (bounded) for PayEx
  // calls in flight and for the confirms of the outbox, then stops. Idempotent.
  void Drain();

  // A PayEx callback for this order (authentic: the HTTP layer checked its token).
  HintOutcome OnCallback(const std::string& order_id);
  // payorchctl payment resolve: read PayEx now (a callback hint from the operator).
  HintOutcome Resolve(const std::string& order_id);
  // payorchctl payment republish: every event of the order is published again with
  // its own id and sequence (consumers deduplicate); recorded in the history.
  RepublishOutcome Republish(const std::string& order_id);

  EngineStatus Status() const;
  bool Fatal() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::engine
