// The engine's ports: what it is given instead of building it. An order-event
// source with acks, a payment-event publisher with confirms, a PayEx executor, a
// clock with timers and a way to run work on the engine thread, and a writer that
// commits batches in order. payorchd's adapters (src/runtime) put the bus, the PayEx
// client, Asio and a writer thread behind them; the deterministic simulation
// (tests/engine) puts fakes on a virtual clock behind them.
// Thread: the engine calls every port on its own thread, and every callback a port
// takes must run on the engine thread (through Clock::Post when it starts elsewhere).
// Errors: ports report IO outcomes as values; none throws into the engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "domain/types.hpp"
#include "store/store.hpp"

namespace payorch::engine {

using Steady = std::chrono::nanoseconds;  // a monotonic reading, for rates and latencies

// A link to the outside (bus connection): up or down, and why not.
struct LinkState {
  bool connected = false;
  std::string last_error;
};

// One order event as the source delivered it; `generation` and `tag` are what its
// ack needs (a delivery of an older connection is stale: its ack is dropped).
struct Delivery {
  domain::OrderEvent event;
  uint64_t generation = 0;
  uint64_t tag = 0;
};

class OrderSource {
 public:
  virtual ~OrderSource() = default;
  // Starts delivering; `on_delivery` runs on the engine thread.
  virtual void Start(std::function<void(Delivery)> on_delivery) = 0;
  // The delivery's decision is committed.
  virtual void Ack(uint64_t generation, uint64_t tag) = 0;
  // Not handled: deliver it again later.
  virtual void Requeue(uint64_t generation, uint64_t tag) = 0;
  // Sends the acks already asked for, then stops delivering; unacked deliveries
  // go back to the queue.
  virtual void Stop() = 0;
  virtual LinkState State() const = 0;
  // Messages the source moved to the dead-letter queue (undecodable), for metrics.
  virtual uint64_t DeadLettered() const = 0;
};

struct PublishOutcome {
  bool ok = false;
  std::string status;  // "confirmed", "nacked", "returned", "connection_lost", ...
  std::string detail;
  // Never publishable as it is (bus::PublishStatus::kRefused): retrying cannot help.
  bool permanent = false;
};

class EventPublisher {
 public:
  virtual ~EventPublisher() = default;
  // Starts the link; `on_connected` runs on the engine thread each time it comes up.
  virtual void Start(std::function<void()> on_connected) = 0;
  // Publishes with a confirm; `done` runs once, on the engine thread.
  virtual void Publish(const domain::PaymentEvent& event,
                       std::function<void(PublishOutcome)> done) = 0;
  virtual void Stop() = 0;
  virtual LinkState State() const = 0;
};

class PayexExecutor {
 public:
  virtual ~PayexExecutor() = default;
  // Sends the call now; `done` runs once, on the engine thread, with its outcome
  // (never throws: anything unexpected is kInDoubt). The engine ignores an answer
  // that comes after it gave up on the call.
  virtual void Execute(const domain::PayexCall& call,
                       std::function<void(domain::PayexResult)> done) = 0;
  // No new calls after this; calls in flight may still answer.
  virtual void Close() = 0;
};

class Timer {
 public:
  virtual ~Timer() = default;
  // Runs `fn` on the engine thread after `delay` unless cancelled or re-armed first.
  virtual void Arm(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void Cancel() = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time (UTC, ms) for decisions and rows.
  virtual domain::Time Now() const = 0;
  // Monotonic time, for rate limits and latencies.
  virtual Steady Monotonic() const = 0;
  // Runs `fn` on the engine thread soon, after what is ready now.
  virtual void Post(std::function<void()> fn) = 0;
  virtual std::unique_ptr<Timer> MakeTimer() = 0;
};

// One group commit: the decisions and the outbox rows confirmed meanwhile.
struct CommitJob {
  uint64_t id = 0;
  std::vector<store::Commit> commits;
  std::vector<int64_t> sent;
};

class Writer {
 public:
  virtual ~Writer() = default;
  // Commits jobs in the order they are submitted; `done` runs on the engine thread
  // with the result and the time the commit took. After a failed job, every later
  // one fails too (nothing decided on top of a lost decision may land).
  virtual void Submit(std::shared_ptr<CommitJob> job,
                      std::function<void(store::WriteResult, Steady)> done) = 0;
  // Commits what was submitted, then stops; `discard` drops what has not started.
  virtual void Stop(bool discard) = 0;
};

// The writer's commit, shared by every Writer: a commit the database refuses as
// busy or locked (another connection held it past busy_timeout) is tried again, up
// to `attempts` times with `pause(n)` between, before it fails; anything else
// fails at once.
store::WriteResult CommitRetryingWhenBusy(store::Store& store, const CommitJob& job,
                                          domain::Time sent_at, int attempts,
                                          const std::function<void(int attempt)>& pause);

// The ports an engine runs on.
struct Ports {
  OrderSource& source;
  EventPublisher& publisher;
  PayexExecutor& payex;
  Clock& clock;
  Writer& writer;
};

}  // namespace payorch::engine
