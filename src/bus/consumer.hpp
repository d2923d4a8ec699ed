// Consumes order events from the orders queue (contract.md) on a connection and a
// thread of its own. Decodes each message (codec::DecodeOrderEvent): a well-formed
// event goes to the handler, anything else to the dead-letter queue with
// x-payorch-error / x-payorch-detail (published with a confirm, then acked).
// Threads: the handlers run on the consumer thread and must hand work off quickly
// (the engine uses asio::post); Ack/Reject/Status/Stats may be called from any thread.
// Errors: the consumer never throws after construction; it reconnects with capped
// exponential backoff and jitter and reports its state through Status().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus {

class Consumer {
 public:
  using DeliveryHandler = std::function<void(Delivery)>;
  using StatusHandler = std::function<void(const LinkStatus&)>;

  struct Stats {
    uint64_t delivered = 0;      // handed to the handler
    uint64_t acked = 0;          // acks sent to the broker for handled deliveries
    uint64_t rejected = 0;       // Reject()s sent
    uint64_t dead_lettered = 0;  // undecodable messages moved to the dead-letter queue
    uint64_t stale = 0;          // Ack/Reject for an older connection or an unknown tag: dropped
  };

  // Throws std::invalid_argument when config.Validate() fails. Does not connect yet.
  Consumer(BusConfig config, DeliveryHandler on_delivery, StatusHandler on_status = {});
  ~Consumer();  // Stop()
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Starts the thread; it connects, declares the topology (config.declare_topology),
  // sets the prefetch and consumes.
  void Start();
  // Sends the acks already requested, then closes the connection: deliveries not
  // acked go back to the queue. Idempotent.
  void Stop();

  // The event's decision is committed: ack it. Safe from any thread, cheap (queued;
  // the consumer thread sends it, coalescing neighbours into one multiple-ack).
  // An ack for a delivery of an older connection (`generation` differs) is dropped:
  // the broker has already put that message back and will deliver it again.
  void Ack(uint64_t generation, uint64_t delivery_tag);
  // Gives a delivery back. requeue=true: delivered again later (counts towards the
  // queue's delivery limit); false: the broker dead-letters it (with x-death).
  void Reject(uint64_t generation, uint64_t delivery_tag, bool requeue);

  LinkStatus Status() const;
  Stats GetStats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::bus
