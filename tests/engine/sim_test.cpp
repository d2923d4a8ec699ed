// The deterministic simulation of the whole engine (label `sim`): many seeded
// worlds, each the real engine, domain and SQLite store on a virtual clock against
// a hostile broker and PayEx, with crashes (world.hpp says what is checked).
//   PAYORCH_SIM_WORLDS=N      N worlds per test instead of the default
//   PAYORCH_SIM_SEED=S        replay world S alone (of whichever test holds it)
//   PAYORCH_SIM_TRACE=1       with every log line and world step, on virtual time
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "world.hpp"

namespace payorch::sim {
namespace {

struct Totals {
  uint64_t worlds = 0, orders = 0, order_events = 0, payment_events = 0, crashes = 0,
           drains = 0, late_effects = 0, events = 0, expired = 0, watchdogs = 0, dropped = 0,
           parked = 0;
  std::map<std::string, uint64_t> outcomes;
};

void RunWorlds(const char* name, uint64_t first_seed, uint64_t count, Hostility hostility,
               const std::vector<std::string>& must_see) {
  if (const char* n = std::getenv("PAYORCH_SIM_WORLDS"); n && *n)
    count = std::strtoull(n, nullptr, 10);
  const bool trace = std::getenv("PAYORCH_SIM_TRACE") != nullptr;
  if (const char* only = std::getenv("PAYORCH_SIM_SEED"); only && *only) {
    const uint64_t s = std::strtoull(only, nullptr, 10);
    if (s < first_seed || s >= first_seed + count) GTEST_SKIP() << "seed not in " << name;
    first_seed = s;
    count = 1;
  }
  Totals t;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t seed = first_seed + i;
    WorldReport r = RunWorld(seed, hostility, trace);
    if (!r.ok) {
      std::string tail;
      for (const auto& line : r.trace_tail) tail += "  " + line + "\n";
      FAIL() << name << ": world " << seed << " failed: " << r.failure << "\nlast lines:\n"
             << tail << "replay alone: PAYORCH_SIM_SEED=" << seed
             << " PAYORCH_SIM_TRACE=1 build/tests/engine/engine_sim_test --gtest_filter='*"
             << name << "*'";
    }
    ++t.worlds;
    t.orders += r.orders;
    t.order_events += r.order_events;
    t.payment_events += r.payment_events;
    t.crashes += r.crashes;
    t.drains += r.drains;
    t.late_effects += r.late_effects;
    t.expired += r.calls_expired;
    t.watchdogs += r.call_watchdogs;
    t.dropped += r.calls_dropped;
    t.parked += r.parked;
    t.events += r.events_run;
    for (const auto& o : r.outcomes) ++t.outcomes[o];
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%s: %llu worlds in %.1f s (%.1f ms each): %llu orders, %llu order events, %llu payment "
      "events, %llu crashes, %llu drains, %llu late PayEx effects, %llu simulation steps\n",
      name, static_cast<unsigned long long>(t.worlds), secs, 1000 * secs / std::max<uint64_t>(1, t.worlds),
      static_cast<unsigned long long>(t.orders), static_cast<unsigned long long>(t.order_events),
      static_cast<unsigned long long>(t.payment_events), static_cast<unsigned long long>(t.crashes),
      static_cast<unsigned long long>(t.drains), static_cast<unsigned long long>(t.late_effects),
      static_cast<unsigned long long>(t.events));
  std::printf("%s: calls expired in the queue %llu, given up by the executor's watchdog %llu, "
              "dropped because the payment moved on %llu; payment events refused for good "
              "and parked %llu\n",
              name, static_cast<unsigned long long>(t.expired),
              static_cast<unsigned long long>(t.watchdogs),
              static_cast<unsigned long long>(t.dropped), static_cast<unsigned long long>(t.parked));
  std::string line;
  for (const auto& [k, n] : t.outcomes) line += " " + k + "=" + std::to_string(n);
  std::printf("%s: outcomes:%s\n", name, line.c_str());
  if (count >= 100) {
    for (const auto& o : must_see)
      EXPECT_GT(t.outcomes[o], 0u) << "no world produced " << o << ": the worlds miss a path";
    if (hostility.faults) {
      EXPECT_GT(t.late_effects, 0u) << "no PayEx effect landed late";
      EXPECT_GT(t.expired, 0u) << "no queued call ever outlived its send_by";
      EXPECT_GT(t.watchdogs, 0u) << "the executor's watchdog never fired";
      EXPECT_GT(t.parked, 0u) << "no payment event was ever refused for good and parked";
    }
    if (hostility.crashes) EXPECT_GT(t.crashes, 0u) << "no crash happened";
  }
}

const std::vector<std::string> kEveryPath = {
    "authorized", "captured", "cancelled", "reversed", "aborted",
    "authorization_failed/declined", "authorization_failed/timed_out",
    "rejected/amount_exceeds_remaining"};

TEST(EngineSim, CalmWorlds) {
  RunWorlds("CalmWorlds", 1, 200, Hostility{false, false}, kEveryPath);
}

TEST(EngineSim, HostileWorlds) {
  RunWorlds("HostileWorlds", 1'000'000, 800, Hostility{true, false}, kEveryPath);
}

TEST(EngineSim, CrashingWorlds) {
  RunWorlds("CrashingWorlds", 2'000'000, 1000, Hostility{true, true}, kEveryPath);
}

}  // namespace
}  // namespace payorch::sim
