// The partitioned bus on a three-node RabbitMQ cluster of its own (issue 13, label
// cluster): the router and the partitions' consumers keep every order event, in
// order per order, while one node is stopped and started again mid-run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "bus/router.hpp"
#include "bus/topology.hpp"
#include "kit/cluster.hpp"
#include "partitions_util.hpp"

namespace payorch::bus::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterTest, RoutedEventsSurviveANodeStoppedAndStartedMidRun) {
  std::unique_ptr<kit::Cluster> cluster;
  try {
    cluster = std::make_unique<kit::Cluster>(3);
  } catch (const std::exception& e) {
    FAIL() << "the test cluster did not start (scripts/cluster): " << e.what();
  }
  const std::string suffix = RandomSuffix();
  BusConfig config = TestConfig(cluster->Url(), suffix);
  config.topology.partitions = 4;
  config.topology.partitions_exchange = "test.orders.partitions." + suffix;
  ASSERT_NO_THROW(DeclareTopology(config));

  PartitionSink sink(config, suffix);
  Router router(config);
  router.Start();
  Publisher publisher(config);
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return router.ConsumerStatus().connected; }));

  // In three rounds: before, while node 2 is down, after it is back. The same 20
  // orders go on through every round, so each order's events cross the failover.
  Sent sent;
  auto round = [&](int first) {
    Sent more = PublishOrders(config, publisher, suffix, 20, first, 6);
    for (auto& [order, ids] : more) sent[order].insert(sent[order].end(), ids.begin(), ids.end());
    return WaitFor([&] { return sink.Distinct() >= Total(sent); }, 120s);
  };
  ASSERT_TRUE(round(0)) << sink.Distinct() << " of " << Total(sent);
  const auto stop_at = std::chrono::steady_clock::now();
  ASSERT_NO_THROW(cluster->StopNode(2));
  // Events still flow with two nodes of three (the quorum queues keep a majority).
  ASSERT_TRUE(round(6)) << sink.Distinct() << " of " << Total(sent);
  const double down_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_at).count();
  ASSERT_NO_THROW(cluster->StartNode(2));
  ASSERT_TRUE(round(12)) << sink.Distinct() << " of " << Total(sent);
  const size_t copies = ExpectRoutedInOrder(sent, sink.Got(), config.topology.partitions);
  // The links are spread over the nodes (each connection starts one node further):
  // some were on node 2 and came back on another.
  const uint64_t reconnects = sink.Reconnects() + router.ConsumerStatus().connects +
                              router.PublisherStatus().connects + publisher.Status().connects - 3;
  EXPECT_GE(reconnects, 1u);
  std::printf("cluster: %zu events of 20 orders through 4 partitions; node 2 stopped and "
              "started; %llu links reconnected; %zu arrived twice; %llu resent by the router; "
              "the round with node 2 down took %.1f s\n",
              Total(sent), static_cast<unsigned long long>(reconnects), copies,
              static_cast<unsigned long long>(router.GetStats().resent), down_seconds);
}

}  // namespace
}  // namespace payorch::bus::testing
