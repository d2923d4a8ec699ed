// runtime::Instance on the local broker (issue 13): which partitions an instance
// takes, a standby taking over when the holder lets go, and a partition whose store
// is not there (its volume elsewhere) never started empty. Two instances in one
// process exclude each other as two processes do (flocks of separate opens).
#include "runtime/instance.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "bus/topology.hpp"
#include "domain/partition.hpp"
#include "kit/kit.hpp"
#include "metrics/registry.hpp"
#include "runtime/store_lock.hpp"
#include "store/store.hpp"

namespace payorch::runtime {
namespace {

using namespace std::chrono_literals;

class InstanceTest : public ::testing::Test {
 protected:
  InstanceTest() {
    suffix_ = kit::RandomSuffix();
    dir_ = std::filesystem::temp_directory_path() / ("payorch-instance-" + suffix_);
    std::filesystem::create_directories(dir_);
    config_.bus = kit::UniqueBusConfig(kit::BrokerUrl(), suffix_);
    config_.bus.topology.partitions = 2;
    config_.bus.topology.partitions_exchange = "test.partitions." + suffix_;
    config_.store.path = (dir_ / "p{partition}.db").string();
    config_.store.options.quick_check = false;
    // Never called: no order arrives. The engine needs a PayEx to start.
    config_.payex.base_url = "http://127.0.0.1:9";
    config_.payex.allow_plain_http = true;
    config_.payex.callback_url_base = "http://127.0.0.1:9/callbacks/payex";
    config_.callback_secret = std::string(32, 's');
    config_.instance.poll_interval = 50ms;
    config_.instance.standby_delay = 0ms;
  }
  ~InstanceTest() override {
    try {
      bus::Admin admin(config_.bus, "instance test cleanup");
      admin.DeleteTopology(config_.bus.topology);
    } catch (...) {
    }
    std::filesystem::remove_all(dir_);
  }

  // Runs the io_context until `done` holds (false after `bound`).
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds bound = 20s) {
    const auto end = std::chrono::steady_clock::now() + bound;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      io_.restart();
      io_.run_for(20ms);
    }
    return true;
  }

  std::string suffix_;
  std::filesystem::path dir_;
  config::Config config_;
  boost::asio::io_context io_{1};
  metrics::Registry metrics_a_, metrics_b_;
};

using Held = std::vector<uint32_t>;

TEST_F(InstanceTest, AStandbyTakesThePartitionsOverWhenTheHolderDrains) {
  auto a = std::make_unique<Instance>(io_.get_executor(), config_, metrics_a_);
  bool a_stopped = false;
  a->Start([&] { a_stopped = true; });
  ASSERT_TRUE(RunUntil([&] { return a->Held() == Held{0, 1}; })) << a->Status().detail;

  Instance b(io_.get_executor(), config_, metrics_b_);
  bool b_stopped = false;
  b.Start([&] { b_stopped = true; });
  // b stands by for a while: several polls find both locks held.
  ASSERT_FALSE(RunUntil([&] { return !b.Held().empty(); }, 300ms));
  EXPECT_FALSE(b.Status().Ready());
  EXPECT_NE(b.Status().detail.find("standby"), std::string::npos) << b.Status().detail;
  EXPECT_EQ(b.EngineFor("order-1"), nullptr);  // served elsewhere

  a->Drain();
  ASSERT_TRUE(RunUntil([&] { return a_stopped; }));
  EXPECT_FALSE(a->Fatal());
  // Stopped but not gone: its locks are held until its stores are closed.
  ASSERT_FALSE(RunUntil([&] { return !b.Held().empty(); }, 200ms));
  a.reset();  // its locks go with it, after its last commit
  ASSERT_TRUE(RunUntil([&] { return b.Held() == Held{0, 1}; })) << b.Status().detail;
  EXPECT_NE(b.EngineFor("order-1"), nullptr);
  // Its engines' series carry their partition.
  const std::string text = metrics_b_.Render();
  EXPECT_NE(text.find("partition=\"1\""), std::string::npos) << text;
  EXPECT_NE(text.find("payorch_partitions_held 2"), std::string::npos) << text;
  b.Drain();
  EXPECT_TRUE(RunUntil([&] { return b_stopped; }));
}

TEST_F(InstanceTest, APartitionWhoseStoreIsNotThereIsNotStartedEmpty) {
  config_.store.options.create_if_missing = false;
  (void)store::Store::Open(config::PartitionStorePath(config_.store.path, 0));  // p1: absent
  Instance a(io_.get_executor(), config_, metrics_a_);
  bool stopped = false;
  a.Start([&] { stopped = true; });
  ASSERT_TRUE(RunUntil([&] { return a.Held() == Held{0}; }));
  ASSERT_FALSE(RunUntil([&] { return a.Held() != Held{0}; }, 300ms));
  EXPECT_FALSE(std::filesystem::exists(config::PartitionStorePath(config_.store.path, 1)));
  // Its volume arrives: taken at the next poll.
  (void)store::Store::Open(config::PartitionStorePath(config_.store.path, 1));
  ASSERT_TRUE(RunUntil([&] { return a.Held() == Held{0, 1}; }));
  EXPECT_FALSE(a.Fatal());
  a.Drain();
  EXPECT_TRUE(RunUntil([&] { return stopped; }));
}

TEST_F(InstanceTest, APartitionThatFailsIsReleasedAndTriedAgainWhileTheOthersGoOn) {
  // Partition 1's store was bound to partition 0 (a volume mounted at the wrong place).
  const std::string p1 = config::PartitionStorePath(config_.store.path, 1);
  store::Store::Open(p1).BindPartition(0, 2);
  Instance a(io_.get_executor(), config_, metrics_a_);
  bool stopped = false;
  a.Start([&] { stopped = true; });
  ASSERT_TRUE(RunUntil([&] { return a.Held() == Held{0} && !a.Failures().empty(); }));
  const Instance::Failure f = a.Failures().at(0);
  EXPECT_EQ(f.partition, 1u);
  EXPECT_GE(f.attempts, 1);
  EXPECT_NE(f.error.find("holds partition 0 of 2"), std::string::npos) << f.error;
  EXPECT_FALSE(a.Fatal());
  std::string in_p0 = "order-0";  // an order of partition 0, served meanwhile
  for (int i = 1; domain::PartitionOf(in_p0, 2) != 0; ++i) in_p0 = "order-" + std::to_string(i);
  EXPECT_NE(a.EngineFor(in_p0), nullptr);
  EXPECT_NE(a.Status().detail.find("partition 1 failed"), std::string::npos)
      << a.Status().detail;
  const std::string text = metrics_a_.Render();
  EXPECT_NE(text.find("payorch_partitions_failed 1"), std::string::npos) << text;
  // Released: another holder takes it (here the test), and then it is not this
  // instance's failure to report any more.
  std::optional<StoreLock> other = StoreLock::TryAcquire(p1);
  ASSERT_TRUE(other.has_value());
  ASSERT_TRUE(RunUntil([&] { return a.Failures().empty(); })) << a.Status().detail;
  EXPECT_NE(metrics_a_.Render().find("payorch_partitions_failed 0"), std::string::npos);
  EXPECT_EQ(a.Held(), Held{0});

  // The other holder lets go, and the operator puts the right store in place:
  // taken at the next attempt.
  other.reset();
  std::filesystem::remove(p1);
  ASSERT_TRUE(RunUntil([&] { return a.Held() == Held{0, 1}; })) << a.Status().detail;
  EXPECT_TRUE(a.Failures().empty());
  EXPECT_FALSE(a.Fatal());
  a.Drain();
  EXPECT_TRUE(RunUntil([&] { return stopped; }));
}

TEST_F(InstanceTest, ItTakesOnlyThePartitionsItMayServe) {
  config_.bus.topology.partitions = 3;
  config_.instance.partitions = "0,2";
  Instance a(io_.get_executor(), config_, metrics_a_);
  bool stopped = false;
  a.Start([&] { stopped = true; });
  ASSERT_TRUE(RunUntil([&] { return a.Held() == Held{0, 2}; }));
  ASSERT_FALSE(RunUntil([&] { return a.Held() != Held{0, 2}; }, 300ms));
  EXPECT_FALSE(std::filesystem::exists(config::PartitionStorePath(config_.store.path, 1)));
  a.Drain();
  EXPECT_TRUE(RunUntil([&] { return stopped; }));
}

}  // namespace
}  // namespace payorch::runtime
