// Shared by the end-to-end tests: a world of real parts for one test (the broker
// with topology names of its own, payex-sim and payorchd as processes, a bus client
// that publishes order events and collects payment events) and order-event builders.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "bus/topology.hpp"
#include "kit/kit.hpp"
#include "domain/types.hpp"

namespace payorch::e2e {

// payorchd's overrides for fast timers: polls and deadlines in hundreds of
// milliseconds, for a simulator at 1/100 of real time.
inline std::vector<std::string> FastTimers() {
  return {"payments.first_poll=200ms", "payments.poll_max=500ms",
          "payments.confirmation_timeout=4s", "payments.msisdn_timeout=4s",
          "payments.slow_poll=1s", "payments.backoff_base=50ms",
          "payments.backoff_cap=500ms", "payments.call_watchdog=3s",
          "payex.request_timeout=1s", "payex.connect_timeout=500ms"};
}

// No order has a gap in its sequence, and no two events of an order share a
// sequence with different ids: exactly one answer per event, by id.
inline ::testing::AssertionResult SequencesSoundIn(const std::vector<kit::Received>& events) {
  std::map<std::string, std::map<uint64_t, std::string>> seen;
  for (const auto& r : events) {
    auto& slot = seen[r.event.order_id][r.event.sequence];
    if (!slot.empty() && slot != r.event.event_id)
      return ::testing::AssertionFailure()
             << r.event.order_id << " sequence " << r.event.sequence << " has two ids";
    slot = r.event.event_id;
  }
  for (const auto& [order, seqs] : seen) {
    uint64_t expect = 1;
    for (const auto& [seq, id] : seqs)
      if (seq != expect++)
        return ::testing::AssertionFailure() << order << " has a gap before sequence " << seq;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult LedgerOkOf(kit::Simulator& sim) {
  std::string body;
  if (sim.LedgerOk(&body)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "simulator ledger: " << body;
}

using namespace std::chrono_literals;
using domain::EventKind;

using kit::Cancelled;
using kit::Msisdn;
using kit::Purchase;
using kit::Refund;
using kit::Shipped;

inline std::vector<EventKind> Kinds(const std::vector<kit::Received>& events) {
  std::vector<EventKind> out;
  for (const auto& r : events) out.push_back(r.event.kind);
  return out;
}

inline std::string Describe(const std::vector<kit::Received>& events) {
  std::string out;
  for (const auto& r : events) {
    out += "  " + r.event.order_id + " #" + std::to_string(r.event.sequence) + " " +
           domain::EventKindName(r.event.kind);
    if (!r.event.failure.code.empty()) out += " (" + r.event.failure.code + ")";
    out += " caused_by=" + r.event.caused_by_event_id + "\n";
  }
  return out;
}

// One test's world. Payments run on fast timers: the simulator at 1/100 of real
// time, polls and deadlines of payorchd in hundreds of milliseconds.
class World {
 public:
  explicit World(std::vector<std::string> sim_args = {},
                 std::vector<std::string> daemon_overrides = {}) {
    suffix_ = kit::RandomSuffix();
    dir_ = std::filesystem::temp_directory_path() / ("payorch-e2e-" + suffix_);
    std::filesystem::create_directories(dir_);
    bus_config_ = kit::UniqueBusConfig(kit::BrokerUrl(), suffix_);
    std::vector<std::string> sargs = {"--time-scale", "0.01"};
    sargs.insert(sargs.end(), sim_args.begin(), sim_args.end());
    sim_ = std::make_unique<kit::Simulator>(dir_.string(), sargs);
    client_ = std::make_unique<kit::BusClient>(bus_config_);
    kit::DaemonOptions o;
    o.work_dir = dir_.string();
    o.bus = bus_config_;
    o.payex_url = sim_->url();
    o.log_level = "info";
    o.overrides = FastTimers();
    o.overrides.insert(o.overrides.end(), daemon_overrides.begin(), daemon_overrides.end());
    daemon_options_ = o;
    daemon_ = std::make_unique<kit::Daemon>(o);
    daemon_->Start();
  }

  // Stops payorchd (SIGTERM) and starts it again on the same store with these
  // settings in place of the test's own extra ones (an operator's fix).
  void RestartDaemon(std::vector<std::string> daemon_overrides) {
    ASSERT_EQ(daemon_->Term().value_or(-1), 0) << daemon_->LogTail(30);
    daemon_.reset();
    kit::DaemonOptions o = daemon_options_;
    o.overrides.insert(o.overrides.end(), daemon_overrides.begin(), daemon_overrides.end());
    daemon_ = std::make_unique<kit::Daemon>(o);
    daemon_->Start();
  }

  ~World() {
    daemon_.reset();
    client_.reset();
    sim_.reset();
    try {
      bus::Admin admin(bus_config_, "e2e cleanup");
      admin.DeleteTopology(bus_config_.topology);
    } catch (...) {
    }
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
  }

  kit::BusClient& bus() { return *client_; }
  kit::Simulator& sim() { return *sim_; }
  kit::Daemon& daemon() { return *daemon_; }
  const bus::BusConfig& bus_config() const { return bus_config_; }
  std::string dir() const { return dir_.string(); }

  void Publish(const domain::OrderEvent& e) { client_->Publish(e); }

  // Waits until the order's events have exactly these kinds in sequence order.
  ::testing::AssertionResult Expect(const std::string& order, std::vector<EventKind> kinds,
                                    std::chrono::milliseconds bound = 30s) {
    bool ok = client_->WaitUntil(
        [&](const std::vector<kit::Received>& all) {
          return DistinctOf(all, order).size() >= kinds.size();
        },
        bound);
    auto got = Distinct(order);
    if (ok && Kinds(got) == kinds) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "order " << order << ": expected " << kinds.size() << " events, got:\n"
           << Describe(got) << "payorchd log tail:\n"
           << daemon_->LogTail(30);
  }

  // Waits until the order has `n` distinct events (any kinds, any order).
  ::testing::AssertionResult WaitCount(const std::string& order, size_t n,
                                               std::chrono::milliseconds bound = 30s) {
    bool ok = client_->WaitUntil(
        [&](const std::vector<kit::Received>& all) { return DistinctOf(all, order).size() >= n; },
        bound);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "order " << order << ": expected " << n
                                         << " events, got:\n" << Describe(Distinct(order));
  }

  // The order's events by event_id (duplicates dropped), in sequence order.
  std::vector<kit::Received> Distinct(const std::string& order) const {
    return DistinctOf(client_->Events(), order);
  }

  static std::vector<kit::Received> DistinctOf(const std::vector<kit::Received>& all,
                                               const std::string& order) {
    std::vector<kit::Received> out;
    for (auto& r : all) {
      if (r.event.order_id != order) continue;
      bool seen = false;
      for (auto& o : out) seen = seen || o.event.event_id == r.event.event_id;
      if (!seen) out.push_back(r);
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.event.sequence < b.event.sequence; });
    return out;
  }

  ::testing::AssertionResult SequencesSound() const { return SequencesSoundIn(client_->Events()); }
  ::testing::AssertionResult LedgerOk() { return LedgerOkOf(*sim_); }

 private:
  std::string suffix_;
  std::filesystem::path dir_;
  bus::BusConfig bus_config_;
  std::unique_ptr<kit::Simulator> sim_;
  std::unique_ptr<kit::BusClient> client_;
  std::unique_ptr<kit::Daemon> daemon_;
  kit::DaemonOptions daemon_options_;
};

}  // namespace payorch::e2e
