// Partitioned payorch on a three-node RabbitMQ cluster of its own (issue 13, label
// cluster): two payorchd instances share four partitions, and one is killed with
// SIGKILL mid-run; the other takes its partitions over and resumes them as after a
// restart. Every order event is answered exactly once, sequences have no gaps, each
// order's events are handled in the order they were published, and PayEx never
// applied an effect twice.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bus/topology.hpp"
#include "domain/partition.hpp"
#include "e2e_util.hpp"
#include "kit/cluster.hpp"
#include "kit/kit.hpp"

namespace payorch::e2e {
namespace {

using K = domain::EventKind;
using Clock = std::chrono::steady_clock;
constexpr uint32_t kPartitions = 4;

std::string Show(const std::optional<std::vector<uint32_t>>& held) {
  if (!held) return "(no answer)";
  std::string s = "[";
  for (uint32_t p : *held) s += (s.size() > 1 ? "," : "") + std::to_string(p);
  return s + "]";
}

// A cluster, the simulator, a bus client and payorchd instances sharing one
// directory of partition stores.
class PartitionedWorld {
 public:
  explicit PartitionedWorld(std::vector<std::string> sim_args) {
    cluster_ = std::make_unique<kit::Cluster>(3);
    suffix_ = kit::RandomSuffix();
    dir_ = std::filesystem::temp_directory_path() / ("payorch-cluster-e2e-" + suffix_);
    std::filesystem::create_directories(dir_);
    bus_ = kit::UniqueBusConfig(cluster_->Url(), suffix_);
    bus_.topology.partitions = kPartitions;
    bus_.topology.partitions_exchange = "test.orders.partitions." + suffix_;
    std::vector<std::string> sargs = {"--time-scale", "0.01"};
    sargs.insert(sargs.end(), sim_args.begin(), sim_args.end());
    sim_ = std::make_unique<kit::Simulator>(dir_.string(), sargs);
    // The test's own observer (an exclusive, non-durable queue on the payments
    // exchange) stays on node 1, which no test stops: payment events published
    // while its node was down would be lost to it, not to payorch. The instances
    // use every node.
    bus::BusConfig observer = bus_;
    observer.url = cluster_->urls().front();
    client_ = std::make_unique<kit::BusClient>(observer);
  }

  ~PartitionedWorld() {
    instances_.clear();
    client_.reset();
    sim_.reset();
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
    // The cluster (and every queue in it) goes with its directory.
  }

  // Starts instance `name` (its own log and ready file; the shared stores).
  kit::Daemon& Start(const std::string& name, const std::string& prefer,
                     const std::string& standby_delay) {
    kit::DaemonOptions o;
    o.work_dir = (dir_ / name).string();
    std::filesystem::create_directories(o.work_dir);
    o.bus = bus_;
    o.payex_url = sim_->url();
    o.log_level = "info";
    o.overrides = FastTimers();
    o.overrides.insert(o.overrides.end(), {
                   // A call in doubt that PayEx does not show is sent again only
                   // after this: short, so that a kill costs seconds, not a minute.
                   "payments.transit_horizon=3s",
                   "bus.topology.partitions=" + std::to_string(kPartitions),
                   "bus.topology.partitions_exchange=" + bus_.topology.partitions_exchange,
                   "store.path=" + (dir_ / "stores" / "p{partition}" / "payorch.db").string(),
                   "instance.prefer=" + prefer, "instance.standby_delay=" + standby_delay,
                   "instance.poll_interval=100ms"});
    auto& slot = instances_[name];
    slot.reset();
    slot = std::make_unique<kit::Daemon>(o);
    slot->Start();
    return *slot;
  }
  kit::Daemon& Instance(const std::string& name) { return *instances_.at(name); }

  // Instances a (preferring 0,1) and b (2,3), each serving its share.
  ::testing::AssertionResult StartPair(const std::string& standby_delay) {
    Start("a", "0,1", standby_delay);
    Start("b", "2,3", standby_delay);
    if (auto a = Serves("a", {0, 1}); !a) return a;
    return Serves("b", {2, 3});
  }
  kit::Cluster& cluster() { return *cluster_; }

  // Waits until instance `name` serves exactly `partitions` and is ready.
  ::testing::AssertionResult Serves(const std::string& name, std::vector<uint32_t> partitions,
                                    std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    std::optional<std::vector<uint32_t>> held;
    bool ready = false;
    bool ok = kit::WaitFor(
        [&] {
          held = Instance(name).Held(&ready);
          return held && *held == partitions && (partitions.empty() || ready);
        },
        bound);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << name << " serves " << Show(held)
                                         << (ready ? " (ready)" : " (not ready)")
                                         << "; its log:\n" << Instance(name).LogTail(20);
  }

  void Publish(const domain::OrderEvent& e) {
    client_->Publish(e);
    published_.push_back(e);
  }
  const std::vector<domain::OrderEvent>& published() const { return published_; }
  kit::BusClient& bus() { return *client_; }

  // Every published event answered by exactly one payment event id.
  ::testing::AssertionResult AllAnsweredOnce(std::chrono::milliseconds bound) {
    auto answered = [&](const std::vector<kit::Received>& all) {
      std::map<std::string, std::set<std::string>> by_cause;
      for (const auto& r : all) by_cause[r.event.caused_by_event_id].insert(r.event.event_id);
      for (const auto& e : published_)
        if (by_cause[e.event_id].size() != 1) return false;
      return true;
    };
    client_->WaitUntil(answered, bound);
    std::map<std::string, std::set<std::string>> by_cause;
    for (const auto& r : client_->Events())
      by_cause[r.event.caused_by_event_id].insert(r.event.event_id);
    std::string wrong;
    size_t bad = 0;
    for (const auto& e : published_)
      if (by_cause[e.event_id].size() != 1 && ++bad <= 5)
        wrong += "  " + e.event_id + ": " + std::to_string(by_cause[e.event_id].size()) +
                 " answers\n";
    if (bad == 0) return ::testing::AssertionSuccess();
    std::string logs;
    for (auto& [name, d] : instances_) logs += name + ":\n" + d->LogTail(15);
    return ::testing::AssertionFailure() << bad << " of " << published_.size()
                                         << " events not answered exactly once:\n"
                                         << wrong << logs;
  }

  // What the instances' takeovers found, for the record: their partition.serving and
  // engine.resumed lines.
  std::string Takeovers() {
    std::string out;
    for (auto& [name, d] : instances_) {
      std::istringstream log(d->LogTail(100000));
      for (std::string line; std::getline(log, line);)
        if (line.find("event=partition.serving") != std::string::npos ||
            line.find("event=engine.resumed") != std::string::npos)
          out += "  " + name + ": " + line.substr(line.find("event=")) + "\n";
    }
    return out;
  }

  std::vector<kit::Received> Distinct(const std::string& order) const {
    return World::DistinctOf(client_->Events(), order);
  }

  ::testing::AssertionResult SequencesSound() const { return SequencesSoundIn(client_->Events()); }
  ::testing::AssertionResult LedgerOk() { return LedgerOkOf(*sim_); }

 private:
  std::unique_ptr<kit::Cluster> cluster_;
  std::string suffix_;
  std::filesystem::path dir_;
  bus::BusConfig bus_;
  std::unique_ptr<kit::Simulator> sim_;
  std::unique_ptr<kit::BusClient> client_;
  std::map<std::string, std::unique_ptr<kit::Daemon>> instances_;
  std::vector<domain::OrderEvent> published_;
};

std::unique_ptr<PartitionedWorld> MakeWorld(std::vector<std::string> sim_args) {
  try {
    return std::make_unique<PartitionedWorld>(std::move(sim_args));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the test cluster, simulator or bus client did not start: " << e.what();
    return nullptr;
  }
}

// SIGKILLs `victim` (or drains it: SIGTERM, exit 0) and waits until `survivor`
// serves every partition and is ready: the seconds from the signal to then.
double KillAndTakeOver(PartitionedWorld& w, const std::string& victim,
                       const std::string& survivor, bool drain = false) {
  const auto t0 = Clock::now();
  if (drain) {
    EXPECT_EQ(w.Instance(victim).Term().value_or(-1), 0) << w.Instance(victim).LogTail(20);
  } else {
    w.Instance(victim).Kill();
  }
  EXPECT_TRUE(w.Serves(survivor, {0, 1, 2, 3}));
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Where a long test stands, on stdout: "[12.3 s] phase".
class Phases {
 public:
  void operator()(const std::string& what) const {
    std::printf("[%5.1f s] %s\n", std::chrono::duration<double>(Clock::now() - t0_).count(),
                what.c_str());
    std::fflush(stdout);
  }

 private:
  Clock::time_point t0_ = Clock::now();
};

// (a) Two instances share four partitions (a: 0,1; b: 2,3). Three times, the one
// holding partitions goes mid-run (SIGKILL, SIGTERM, SIGKILL) and the other takes
// them over, then it comes back as a standby. PayEx loses some answers (in doubt,
// read back).
TEST(ClusterE2e, TwoInstancesOneKilledThreeTimesEveryEventAnsweredOnceNothingPaidTwice) {
  Phases phase;
  auto w = MakeWorld({"--fault", "capture:drop_after,rate=0.1", "--fault",
                      "authorize:drop_after,rate=0.1", "--set", "payer.approve_delay=20s"});
  ASSERT_TRUE(w);
  phase("cluster, simulator and bus client up");
  ASSERT_TRUE(w->StartPair("4s"));
  // From now on each takes over the other's partitions (the takeover time measured
  // below is not the start-up grace).
  ASSERT_TRUE(kit::WaitFor(
      [&] {
        return w->Instance("a").LogTail(1000).find("event=instance.standby_delay_over") !=
               std::string::npos;
      },
      30s));
  phase("instances a (0,1) and b (2,3) serving");

  constexpr int kOrders = 120;
  auto order = [](int i) { return "c-" + std::to_string(i); };
  std::set<uint32_t> used;
  for (int i = 0; i < kOrders; ++i) {
    used.insert(domain::PartitionOf(order(i), kPartitions));
    w->Publish(Purchase(order(i), 10000 + i));
    w->Publish(Shipped(order(i), "s1", 4000));  // waits for the authorization
    if (i % 3 == 0) w->Publish(Shipped(order(i), "s2", 6000 + i));
    if (i % 3 == 1) w->Publish(Cancelled(order(i)));
  }
  ASSERT_EQ(used.size(), kPartitions) << "the orders must reach every partition";
  phase("published " + std::to_string(w->published().size()) + " order events");

  // b (holding 2,3) is killed; a takes them. b comes back, a drains; b takes all.
  // a comes back, b is killed; a takes all. Each once answers are flowing.
  std::vector<double> takeovers;
  struct Round {
    std::string victim, survivor;
    bool drain;
  };
  const std::vector<Round> rounds = {{"b", "a", false}, {"a", "b", true}, {"b", "a", false}};
  const size_t events = w->published().size();
  for (size_t r = 0; r < rounds.size(); ++r) {
    const Round& round = rounds[r];
    const std::string& victim = round.victim;
    const std::string& survivor = round.survivor;
    // Mid-run: some answered, the rest still to come.
    ASSERT_TRUE(kit::WaitFor([&] { return w->bus().Count() >= events * (r + 1) / 5; }, 60s))
        << w->bus().Count() << " answers";
    takeovers.push_back(KillAndTakeOver(*w, victim, survivor, round.drain));
    phase(victim + (round.drain ? " drained, " : " killed, ") + survivor + " took over");
    w->Start(victim, "all", "0ms");  // a standby now: the survivor holds everything
    ASSERT_TRUE(w->Serves(victim, {}));
  }
  ASSERT_TRUE(w->AllAnsweredOnce(120s));
  phase("every event answered");
  std::printf("%s", w->Takeovers().c_str());
  EXPECT_TRUE(w->SequencesSound());
  for (int i = 0; i < kOrders; ++i) {
    auto ev = w->Distinct(order(i));
    ASSERT_FALSE(ev.empty()) << order(i);
    const domain::Balance& end = ev.back().event.balance;
    if (i % 3 == 1 && ev[0].event.kind == K::kAuthorizationFailed) {
      EXPECT_EQ(ev.back().event.kind, K::kAborted) << Describe(ev);
      EXPECT_EQ(end.captured, 0) << Describe(ev);
      continue;
    }
    EXPECT_EQ(ev[0].event.kind, K::kAuthorized) << Describe(ev);
    EXPECT_EQ(end.captured, i % 3 == 0 ? 10000 + i : 4000) << Describe(ev);
    if (i % 3 == 1) EXPECT_EQ(end.cancelled, 10000 + i - 4000) << Describe(ev);
  }
  EXPECT_TRUE(w->LedgerOk());
  std::printf("cluster e2e: %zu order events of %d orders on 4 partitions, two instances; "
              "takeover (signal to every partition served and ready): after SIGKILL %.2f s "
              "and %.2f s, after a drain (SIGTERM) %.2f s\n",
              events, kOrders, takeovers[0], takeovers[2], takeovers[1]);
}

// (c) Many events of one order back to back (24 shipments and a cancel once it is
// authorized),
// for several orders, while the instance serving them is killed: each order's
// events are handled in the order they were published (every capture in shipment
// order, the cancel last, releasing exactly the rest).
TEST(ClusterE2e, EventsOfOneOrderBackToBackKeepTheirOrderWhileAnInstanceIsKilled) {
  Phases phase;
  auto w = MakeWorld({"--set", "payer.approve_delay=20s"});
  ASSERT_TRUE(w);
  phase("cluster, simulator and bus client up");
  w->Start("a", "all", "0ms");
  ASSERT_TRUE(w->Serves("a", {0, 1, 2, 3}));
  w->Start("b", "all", "0ms");
  ASSERT_TRUE(w->Serves("b", {}));
  phase("a serving, b standing by");

  constexpr int kOrders = 8, kShipments = 24;
  constexpr int64_t kAmount = 100000, kShipped = 1000;
  auto order = [](int i) { return "seq-" + std::to_string(i); };
  // Authorized first: a cancel that overtook nothing still aborts an order the payer
  // has not approved yet (and fails its waiting captures), which is its right answer.
  for (int i = 0; i < kOrders; ++i) w->Publish(Purchase(order(i), kAmount));
  ASSERT_TRUE(w->bus().WaitUntil(
      [&](const std::vector<kit::Received>& all) { return all.size() >= kOrders; }, 30s));
  phase("orders authorized");
  for (int i = 0; i < kOrders; ++i) {
    for (int s = 1; s <= kShipments; ++s)
      w->Publish(Shipped(order(i), "s" + std::to_string(s), kShipped));
    w->Publish(Cancelled(order(i)));
  }
  ASSERT_TRUE(kit::WaitFor([&] { return w->bus().Count() >= w->published().size() / 3; }, 60s))
      << w->bus().Count() << " answers";
  phase("published; killing a");
  const double takeover = KillAndTakeOver(*w, "a", "b");
  phase("b took over");
  ASSERT_TRUE(w->AllAnsweredOnce(120s));
  phase("every event answered");
  std::printf("%s", w->Takeovers().c_str());
  EXPECT_TRUE(w->SequencesSound());
  for (int i = 0; i < kOrders; ++i) {
    auto ev = w->Distinct(order(i));
    std::vector<K> kinds = {K::kAuthorized};
    kinds.insert(kinds.end(), kShipments, K::kCaptured);
    kinds.push_back(K::kCancelled);
    ASSERT_EQ(Kinds(ev), kinds) << Describe(ev);
    for (int s = 1; s <= kShipments; ++s)
      EXPECT_EQ(ev[s].event.caused_by_event_id, order(i) + ":ship-s" + std::to_string(s))
          << Describe(ev);
    EXPECT_EQ(ev.back().event.balance.captured, kShipments * kShipped) << Describe(ev);
    EXPECT_EQ(ev.back().event.balance.cancelled, kAmount - kShipments * kShipped)
        << Describe(ev);
  }
  EXPECT_TRUE(w->LedgerOk());
  std::printf("cluster e2e: %d orders of %d events each published back to back; instance "
              "a killed after a third was answered; b took over in %.2f s; every order's "
              "events handled in publish order\n",
              kOrders, kShipments + 2, takeover);
}

// (b) One broker node is stopped and started again mid-run under two instances:
// the links move to the other nodes and back, the quorum queues keep a majority,
// and nothing is lost or done twice.
TEST(ClusterE2e, ABrokerNodeStoppedAndStartedMidRunLosesNothingAndDoesNothingTwice) {
  Phases phase;
  auto w = MakeWorld({"--set", "payer.approve_delay=20s"});
  ASSERT_TRUE(w);
  phase("cluster, simulator and bus client up");
  ASSERT_TRUE(w->StartPair("10s"));
  constexpr int kOrders = 80;
  auto order = [](int i) { return "n-" + std::to_string(i); };
  auto publish = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      w->Publish(Purchase(order(i), 5000 + i));
      w->Publish(Shipped(order(i), "s1", 5000 + i));
    }
  };
  publish(0, kOrders / 2);
  ASSERT_TRUE(kit::WaitFor([&] { return w->bus().Count() >= w->published().size() / 3; }, 60s))
      << w->bus().Count() << " answers";
  ASSERT_NO_THROW(w->cluster().StopNode(2));
  phase("node 2 stopped");
  publish(kOrders / 2, kOrders);  // while it is down
  ASSERT_NO_THROW(w->cluster().StartNode(2));
  phase("node 2 started again");
  ASSERT_TRUE(w->AllAnsweredOnce(120s));
  phase("every event answered");
  EXPECT_TRUE(w->SequencesSound());
  for (int i = 0; i < kOrders; ++i) {
    auto ev = w->Distinct(order(i));
    ASSERT_EQ(Kinds(ev), (std::vector<K>{K::kAuthorized, K::kCaptured})) << Describe(ev);
    EXPECT_EQ(ev.back().event.balance.captured, 5000 + i) << Describe(ev);
  }
  EXPECT_TRUE(w->LedgerOk());
  // Both instances still serve their partitions, ready.
  EXPECT_TRUE(w->Serves("a", {0, 1}));
  EXPECT_TRUE(w->Serves("b", {2, 3}));
}

}  // namespace
}  // namespace payorch::e2e
