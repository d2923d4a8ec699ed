// One simulated world: the real engine, domain and SQLite store, single-threaded
// on a virtual clock, against the fake broker and PayEx, with order services
// publishing a few orders' events, faults drawn from the seed, and payorchd
// crashing (the engine thrown away mid-step, the store reopened) or draining and
// coming back. Then the faults stop, the world settles, and its invariants are
// checked: every order event answered exactly once by id, sequences without gaps,
// no PayEx effect twice (even when PayEx accepts a repeated payeeReference), the
// payer's phone asked at most once per order, PayEx's money rules, payorch's
// ledger equal to PayEx's, every unfinished payment with a next wake-up.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace payorch::sim {

// How hostile a world may be; each world draws its own rates below these.
struct Hostility {
  bool faults = true;   // bus and PayEx faults
  bool crashes = true;  // SIGKILLs and drains of payorchd
};

struct WorldReport {
  bool ok = true;
  std::string failure;         // what was broken, when !ok
  std::vector<std::string> trace_tail;  // the last log lines, when !ok
  // What the world went through, for coverage figures.
  uint64_t orders = 0;
  uint64_t order_events = 0;
  uint64_t payment_events = 0;
  uint64_t crashes = 0;
  uint64_t drains = 0;
  uint64_t late_effects = 0;
  uint64_t calls_expired = 0;   // queued past their send_by (a stalled commit)
  uint64_t call_watchdogs = 0;  // sent and never answered (the executor gave up)
  uint64_t calls_dropped = 0;   // queued while their payment moved on
  uint64_t parked = 0;          // payment events the bus refused for good, parked
  uint64_t events_run = 0;
  std::vector<std::string> outcomes;  // "authorized", "captured", ... per answer
};

// Runs world `seed`; trace: every engine log line and world step to stdout.
WorldReport RunWorld(uint64_t seed, Hostility hostility, bool trace);

}  // namespace payorch::sim
