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
#include "partitions_util.hpp"

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
    sink_ = std::make_unique<PartitionSink>(config_, suffix_);
  }

  void TearDown() override {
    sink_.reset();
    BusTest::TearDown();
  }

  std::vector<Received> Got() { return sink_->Got(); }
  Sent PublishOrders(int orders, int first, int n, Publisher& publisher) {
    return testing::PublishOrders(config_, publisher, suffix_, orders, first, n);
  }
  size_t ExpectRoutedInOrder(const Sent& sent) {
    return testing::ExpectRoutedInOrder(sent, Got(), kPartitions);
  }

  std::unique_ptr<PartitionSink> sink_;
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
  // (The confirm of the last copy may come after its delivery to the partition.)
  EXPECT_TRUE(WaitFor([&] { return router.GetStats().forwarded == Total(sent); }))
      << router.GetStats().forwarded;
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
  EXPECT_TRUE(WaitFor([&] { return router.GetStats().dead_lettered == 1u; }));
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
  ASSERT_TRUE(WaitFor([&] {
    return first->GetStats().forwarded + second.GetStats().forwarded == Total(sent);
  }));
  Router* active = first->GetStats().forwarded > 0 ? first.get() : &second;
  Router* standby = active == first.get() ? &second : first.get();
  EXPECT_EQ(active->GetStats().forwarded, Total(sent));
  EXPECT_EQ(standby->GetStats().forwarded, 0u);

  // More events while the active one stops, part-way through them.
  Sent later;
  std::thread more([&] { later = PublishOrders(20, 3, 10, publisher); });
  const size_t before = Got().size();
  ASSERT_TRUE(WaitFor([&] { return Got().size() >= before + 40; }));
  active->Stop();
  more.join();
  for (auto& [order, ids] : later) sent[order].insert(sent[order].end(), ids.begin(), ids.end());
  // And some after the stop, which only the standby can forward.
  later = PublishOrders(20, 13, 2, publisher);
  for (auto& [order, ids] : later) sent[order].insert(sent[order].end(), ids.begin(), ids.end());
  auto distinct = [&] { return sink_->Distinct(); };
  ASSERT_TRUE(WaitFor([&] { return distinct() >= Total(sent); })) << distinct();
  const size_t copies = ExpectRoutedInOrder(sent);
  EXPECT_GT(standby->GetStats().forwarded, 0u);
  EXPECT_LE(copies, static_cast<size_t>(config_.prefetch));  // at most what it held
  ASSERT_TRUE(WaitFor([&] { return admin_->QueueDepth(config_.topology.orders_queue) == 0u; }));
}

}  // namespace
}  // namespace payorch::bus::testing
