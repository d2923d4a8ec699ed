// The router of a partitioned payorch (issue 13) against the real broker: every
// order event reaches its partition's queue, in order per order, once unless a
// failure made it a copy again; undecodable ones are dead-lettered; a standby
// router takes over when the active one stops.
#include "bus/router.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>

#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "bus/topology.hpp"
#include "bus_test_util.hpp"
#include "domain/partition.hpp"

namespace payorch::bus::testing {
namespace {

using namespace std::chrono_literals;

class RouterTest : public BusTest {
 protected:
  static constexpr uint32_t kPartitions = 4;

  void SetUp() override {
    BusTest::SetUp();
    if (HasFatalFailure()) return;
    config_.topology.partitions = kPartitions;
    config_.topology.partitions_exchange = "test.orders.partitions." + suffix_;
    ASSERT_NO_THROW(DeclareTopology(config_));
    // What each partition's engine would take: a consumer per partition queue.
    for (uint32_t p = 0; p < kPartitions; ++p) {
      BusConfig c = config_;
      c.consume_queue = PartitionQueue(config_.topology, p);
      c.consumer_tag = "test-partition-" + std::to_string(p) + "-" + suffix_;
      consumers_.push_back(std::make_unique<Consumer>(c, [this, p](Delivery d) {
        std::lock_guard lock(mu_);
        received_.push_back({p, d.event.order_id, d.event.event_id, d.routing_key});
        consumers_[p]->Ack(d.generation, d.delivery_tag);
      }));
    }
    for (auto& c : consumers_) c->Start();
  }

  void TearDown() override {
    for (auto& c : consumers_) c->Stop();
    BusTest::TearDown();
  }

  struct Received {
    uint32_t partition;
    std::string order_id, event_id, routing_key;
  };

  std::vector<Received> Got() {
    std::lock_guard lock(mu_);
    return received_;
  }

  // Events first..first+n-1 of each of `orders` orders, published in turns (o0 e0,
  // o1 e0, ..., o0 e1, ...): per order, event ids in publish order.
  std::map<std::string, std::vector<std::string>> PublishOrders(int orders, int first, int n,
                                                               Publisher& publisher) {
    std::map<std::string, std::vector<std::string>> sent;
    for (int k = first; k < first + n; ++k) {
      for (int o = 0; o < orders; ++o) {
        domain::OrderEvent e = OrderSamples(suffix_)[k == 0 ? 0 : 2];  // purchase, then shipped
        e.order_id = "order-" + std::to_string(o) + "-" + suffix_;
        e.event_id = e.order_id + ":" + std::to_string(k);
        sent[e.order_id].push_back(e.event_id);
        EXPECT_EQ(publisher.Publish(OrderMessage(config_, e, false)).get().status,
                  PublishStatus::kConfirmed);
      }
    }
    return sent;
  }

  // Every event in its partition; per order, first arrivals in publish order;
  // returns how many arrived more than once.
  size_t ExpectRoutedInOrder(const std::map<std::string, std::vector<std::string>>& sent) {
    std::map<std::string, std::vector<std::string>> first;
    std::set<std::string> seen;
    size_t copies = 0;
    for (const Received& r : Got()) {
      EXPECT_EQ(r.partition, domain::PartitionOf(r.order_id, kPartitions)) << r.order_id;
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

  size_t Total(const std::map<std::string, std::vector<std::string>>& sent) {
    size_t n = 0;
    for (const auto& [order, ids] : sent) n += ids.size();
    return n;
  }

  std::mutex mu_;
  std::vector<Received> received_;
  std::vector<std::unique_ptr<Consumer>> consumers_;
};

TEST_F(RouterTest, ForwardsEveryEventToItsPartitionInOrder) {
  Router router(config_);
  router.Start();
  Publisher publisher(config_);
  publisher.Start();
  auto sent = PublishOrders(40, 0, 5, publisher);
  ASSERT_TRUE(WaitFor([&] { return Got().size() >= Total(sent); })) << Got().size();
  EXPECT_EQ(ExpectRoutedInOrder(sent), 0u);  // no failure: no copy twice
  std::set<uint32_t> used;
  for (const Received& r : Got()) used.insert(r.partition);
  EXPECT_EQ(used.size(), kPartitions);  // 40 orders reach every partition
  EXPECT_EQ(router.GetStats().forwarded, Total(sent));
  ASSERT_TRUE(WaitFor([&] { return admin_->QueueDepth(config_.topology.orders_queue) == 0u; }));
}

TEST_F(RouterTest, UndecodableMessagesAreDeadLetteredNotForwarded) {
  Router router(config_);
  router.Start();
  Publisher publisher(config_);
  publisher.Start();
  Message bad;
  bad.exchange = config_.topology.orders_exchange;
  bad.routing_key = "order.shipped";
  bad.body = "not protobuf";
  bad.properties.content_type = "application/x-protobuf";
  bad.mandatory = true;
  ASSERT_EQ(publisher.Publish(std::move(bad)).get().status, PublishStatus::kConfirmed);
  auto sent = PublishOrders(3, 0, 1, publisher);
  ASSERT_TRUE(WaitFor([&] { return Got().size() >= Total(sent); }));
  ASSERT_TRUE(WaitFor([&] { return admin_->QueueDepth(config_.topology.dead_letter_queue) == 1u; }));
  EXPECT_EQ(router.GetStats().dead_lettered, 1u);
  EXPECT_EQ(ExpectRoutedInOrder(sent), 0u);
}

// Two routers: the broker gives the orders queue to one (single active consumer);
// stopped mid-stream, the other takes over. Nothing is lost and no order's events
// change places; what the first had not yet confirmed may arrive twice.
TEST_F(RouterTest, AStandbyRouterTakesOverInOrder) {
  auto first = std::make_unique<Router>(config_);
  first->Start();
  ASSERT_TRUE(WaitFor([&] { return first->ConsumerStatus().connected; }));
  Router second(config_);
  second.Start();
  ASSERT_TRUE(WaitFor([&] { return second.ConsumerStatus().connected; }));
  Publisher publisher(config_);
  publisher.Start();
  auto sent = PublishOrders(20, 0, 3, publisher);
  ASSERT_TRUE(WaitFor([&] { return Got().size() >= Total(sent); }));
  // One of them does all the work.
  Router* active = first->GetStats().forwarded > 0 ? first.get() : &second;
  Router* standby = active == first.get() ? &second : first.get();
  EXPECT_EQ(active->GetStats().forwarded, Total(sent));
  EXPECT_EQ(standby->GetStats().forwarded, 0u);

  // More events while the active one stops, part-way through them.
  std::map<std::string, std::vector<std::string>> later;
  std::thread more([&] { later = PublishOrders(20, 3, 10, publisher); });
  const size_t before = Got().size();
  ASSERT_TRUE(WaitFor([&] { return Got().size() >= before + 40; }));
  active->Stop();
  more.join();
  for (auto& [order, ids] : later) sent[order].insert(sent[order].end(), ids.begin(), ids.end());
  auto distinct = [&] {
    std::set<std::string> ids;
    for (const Received& r : Got()) ids.insert(r.event_id);
    return ids.size();
  };
  ASSERT_TRUE(WaitFor([&] { return distinct() >= Total(sent); })) << distinct();
  const size_t copies = ExpectRoutedInOrder(sent);
  EXPECT_GT(standby->GetStats().forwarded, 0u);
  EXPECT_LE(copies, static_cast<size_t>(config_.prefetch));  // at most what it held
  ASSERT_TRUE(WaitFor([&] { return admin_->QueueDepth(config_.topology.orders_queue) == 0u; }));
}

}  // namespace
}  // namespace payorch::bus::testing
