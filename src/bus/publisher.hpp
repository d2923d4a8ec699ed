// Publishes with publisher confirms on a connection and a thread of its own: many
// publishes in flight, one PublishResult per publish, delivered when the broker
// confirms, refuses or returns it, or when the connection is lost (the outbox relay
// then publishes again; consumers deduplicate on event_id).
// Threads: Publish/Status may be called from any thread; result callbacks and the
// status handler run on the publisher thread and must hand work off quickly.
// Errors: never throws after construction; reconnects with capped exponential
// backoff and jitter. While it is disconnected, publishes fail at once (kNotConnected).
#pragma once

#include <functional>
#include <future>
#include <memory>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus {

class Publisher {
 public:
  using Callback = std::function<void(PublishResult)>;
  using StatusHandler = std::function<void(const LinkStatus&)>;

  struct Stats {
    uint64_t published = 0;  // sent to the broker
    uint64_t confirmed = 0;
    uint64_t failed = 0;  // every other result
  };

  // Throws std::invalid_argument when config.Validate() fails. Does not connect yet.
  explicit Publisher(BusConfig config, StatusHandler on_status = {});
  ~Publisher();  // Stop()
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void Start();
  // Sends nothing new, waits a little for the confirms in flight (at most the
  // confirm timeout, and at most 5 s), then fails the rest with kStopped. Idempotent.
  void Stop();

  // Queues `message`; `done` is called exactly once with its result.
  void Publish(Message message, Callback done);
  std::future<PublishResult> Publish(Message message);
  // A payment event per the contract, to the configured payments exchange.
  void PublishPaymentEvent(const domain::PaymentEvent& event, Callback done);

  LinkStatus Status() const;
  Stats GetStats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::bus
