// What the router tests share (issue 13): a consumer per partition queue that
// records what arrives, order events of many orders published in turns, and the
// check that every event reached its partition with each order's events in order.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "bus_test_util.hpp"
#include "domain/partition.hpp"

namespace payorch::bus::testing {

struct Received {
  uint32_t partition;
  std::string order_id, event_id, routing_key;
};

// Per order, its event ids in publish order.
using Sent = std::map<std::string, std::vector<std::string>>;

inline size_t Total(const Sent& sent) {
  size_t n = 0;
  for (const auto& [order, ids] : sent) n += ids.size();
  return n;
}

// What each partition's engine would take: a consumer per partition queue, acking
// everything it records.
class PartitionSink {
 public:
  PartitionSink(const BusConfig& config, const std::string& suffix) {
    for (uint32_t p = 0; p < config.topology.partitions; ++p) {
      BusConfig c = config;
      c.consume_queue = PartitionQueue(config.topology, p);
      c.consumer_tag = "test-partition-" + std::to_string(p) + "-" + suffix;
      consumers_.push_back(std::make_unique<Consumer>(c, [this, p](Delivery d) {
        std::lock_guard lock(mu_);
        received_.push_back({p, d.event.order_id, d.event.event_id, d.routing_key});
        consumers_[p]->Ack(d.generation, d.delivery_tag);
      }));
    }
    for (auto& c : consumers_) c->Start();
  }
  ~PartitionSink() {
    for (auto& c : consumers_) c->Stop();
  }

  std::vector<Received> Got() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  // Reconnects of the partitions' consumers so far.
  uint64_t Reconnects() const {
    uint64_t n = 0;
    for (const auto& c : consumers_) n += c->Status().connects - 1;
    return n;
  }
  size_t Distinct() const {
    std::set<std::string> ids;
    for (const Received& r : Got()) ids.insert(r.event_id);
    return ids.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Received> received_;
  std::vector<std::unique_ptr<Consumer>> consumers_;
};

// Events first..first+n-1 of `orders` orders (a purchase, then shipments), published
// in turns: o0 e0, o1 e0, ..., o0 e1, ... A publish the broker does not confirm is
// published again (a copy then may reach the queue twice).
inline Sent PublishOrders(const BusConfig& config, Publisher& publisher, const std::string& tag,
                          int orders, int first, int n) {
  Sent sent;
  for (int k = first; k < first + n; ++k) {
    for (int o = 0; o < orders; ++o) {
      domain::OrderEvent e = OrderSamples(tag)[k == 0 ? 0 : 2];
      e.order_id = "order-" + std::to_string(o) + "-" + tag;
      e.event_id = e.order_id + ":" + std::to_string(k);
      sent[e.order_id].push_back(e.event_id);
      PublishStatus status = PublishStatus::kNotConnected;
      for (int attempt = 0; attempt < 600 && status != PublishStatus::kConfirmed; ++attempt) {
        status = publisher.Publish(OrderMessage(config, e, false)).get().status;
        if (status != PublishStatus::kConfirmed)
          WaitFor([&] { return publisher.Status().connected; }, std::chrono::seconds(1));
      }
      EXPECT_EQ(status, PublishStatus::kConfirmed) << e.event_id;
    }
  }
  return sent;
}

// Every event in its partition, each order's first arrivals in publish order;
// returns how many arrived more than once.
inline size_t ExpectRoutedInOrder(const Sent& sent, const std::vector<Received>& got,
                                  uint32_t partitions) {
  Sent first;
  std::set<std::string> seen;
  size_t copies = 0;
  for (const Received& r : got) {
    EXPECT_EQ(r.partition, domain::PartitionOf(r.order_id, partitions)) << r.order_id;
    EXPECT_TRUE(r.routing_key.starts_with("order.")) << r.routing_key;
    if (!seen.insert(r.event_id).second) {
      ++copies;
      continue;
    }
    first[r.order_id].push_back(r.event_id);
  }
  EXPECT_EQ(first, sent);
  return copies;
}

}  // namespace payorch::bus::testing
