// The router of a partitioned payorch (topology.partitions > 1, issue 13): moves
// every order event from the orders queue to the queue of its order's partition
// (domain::PartitionOf of its order id), through the partitions exchange with
// kPartitionHeader set: routing key, body and properties as they came.
//
// Order: the orders queue has a single active consumer, so one router in the whole
// deployment works at a time (the others are standbys the broker switches to when
// it goes). It keeps one copy of an order in flight at a time (other orders flow
// meanwhile), so whatever the broker answers (a nack or a return for one copy and a
// confirm for the next), an order's events reach its partition's queue in the order
// they were published. A copy the broker does not confirm is sent again, with a
// capped backoff of its own. A delivery is acked only when its copy is confirmed (at
// least once: a copy sent twice is dropped by the partition's inbox, by event id).
// Undecodable messages are dead-lettered by the consumer, as everywhere.
//
// Threads: a consumer, a publisher and a sender thread of its own. Errors: the
// constructor throws std::invalid_argument for a bad configuration; after that it
// never throws, reconnecting as the consumer and publisher do.
#pragma once

#include <cstdint>
#include <memory>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus {

class Router {
 public:
  struct Stats {
    uint64_t forwarded = 0;      // copies the broker confirmed (their deliveries acked)
    uint64_t resent = 0;         // copies sent again after a failure
    uint64_t dead_lettered = 0;  // undecodable, moved to the dead-letter queue
    uint64_t refused = 0;        // copies the bus can never take: rejected (dead-lettered)
  };

  // config.topology.partitions must be at least 2.
  explicit Router(BusConfig config);
  ~Router();  // Stop()
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  void Start();
  // Stops taking deliveries; what was not confirmed stays unacked and goes back to
  // the orders queue (to the next router) when the consumer closes. Idempotent.
  void Stop();

  LinkStatus ConsumerStatus() const;
  LinkStatus PublisherStatus() const;
  Stats GetStats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::bus
