// The examples for the services around payorch (issue 14), run against payorchd:
// the Python order service (pika, JSON bodies, confirms) and payment consumer
// (durable queue, acks after handling, dedup by event_id, order by sequence), and
// the C++ pair on the bus library. Every order's events come out in sequence:
// authorized, then captured.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bus/topology.hpp"
#include "e2e/e2e_util.hpp"

namespace payorch::e2e {
namespace {

// The consumer's lines for `orders` orders named prefix0, prefix1, ...: each order's
// authorized (#1) before its captured (#2), with the amounts.
::testing::AssertionResult InSequence(const std::string& out, const std::string& prefix,
                                      int orders) {
  for (int i = 0; i < orders; ++i) {
    const std::string order = prefix + std::to_string(i);
    const size_t a = out.find(order + " #1 authorized authorized=15000 captured=0\n");
    const size_t c = out.find(order + " #2 captured authorized=15000 captured=15000\n");
    if (a == std::string::npos || c == std::string::npos || c < a)
      return ::testing::AssertionFailure() << order << " not in sequence in:\n" << out;
  }
  return ::testing::AssertionSuccess();
}

struct Pair {
  std::vector<std::string> consumer, producer;
};

// Starts the consumer, waits for its "ready", runs the producer, then waits for the
// consumer to have its events.
void RunPair(World& w, const Pair& p, const std::string& prefix, int orders) {
  const std::string clog = w.dir() + "/consumer-" + prefix + ".log";
  const std::string plog = w.dir() + "/producer-" + prefix + ".log";
  kit::Process consumer = kit::Process::Start(p.consumer, {}, clog);
  ASSERT_TRUE(kit::WaitFor([&] { return kit::ReadFile(clog).find("ready:") != std::string::npos; }, 30s))
      << kit::ReadFile(clog);
  kit::Process producer = kit::Process::Start(p.producer, {}, plog);
  ASSERT_EQ(producer.Wait(60s), std::optional<int>(0)) << kit::ReadFile(plog);
  ASSERT_EQ(consumer.Wait(60s), std::optional<int>(0)) << kit::ReadFile(clog) << w.daemon().LogTail();
  EXPECT_TRUE(InSequence(kit::ReadFile(clog), prefix, orders));
}

TEST(Examples, ThePythonOrderServiceAndPaymentConsumerWorkWithPayorchd) {
  World w;
  const bus::BusConfig& c = w.bus_config();
  const std::string queue = "example." + kit::RandomSuffix();
  const std::string dir = std::string(PAYORCH_SOURCE_DIR) + "/examples/python/";
  const std::string prefix = "py-" + kit::RandomSuffix() + "-";
  RunPair(w,
          {{"/usr/bin/python3", dir + "payment_consumer.py", "--url", c.url, "--exchange",
            c.topology.payments_exchange, "--queue", queue, "--expect", "6"},
           {"/usr/bin/python3", dir + "order_service.py", "--url", c.url, "--exchange",
            c.topology.orders_exchange, "--orders", "3", "--prefix", prefix}},
          prefix, 3);
  bus::Admin admin(c, "examples cleanup");
  admin.DeleteQueue(queue);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(Examples, TheCppOrderServiceAndPaymentConsumerWorkWithPayorchd) {
  World w;
  const bus::BusConfig& c = w.bus_config();
  const std::string prefix = "cpp-" + kit::RandomSuffix() + "-";
  RunPair(
      w,
      {{kit::FindBinary("example_payment_consumer"), c.url, c.topology.payments_exchange, "6"},
       {kit::FindBinary("example_order_service"), c.url, c.topology.orders_exchange, "3", prefix}},
      prefix, 3);
  EXPECT_TRUE(w.LedgerOk());
}

}  // namespace
}  // namespace payorch::e2e
