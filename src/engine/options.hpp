// What the engine is told: the state machine's policy and the limits of its
// rooms. Plain values; payorchd fills them from its configuration
// (config/payorch.toml, [payments] and [engine]).
#pragma once

#include <chrono>
#include <cstddef>

#include "domain/decide.hpp"

namespace payorch::engine {

struct Options {
  domain::Policy policy;
  // Group commit: decisions per transaction, and how long an idle writer may
  // wait for more (0: commit at once).
  std::size_t max_batch = 256;
  std::chrono::milliseconds commit_delay{0};
  // PayEx calls in flight at once, and per second (0: no limit).
  std::size_t max_concurrent_calls = 64;
  double payex_rate_limit = 0;
  // Payments kept in memory; beyond it the cache is trimmed after a commit.
  std::size_t cache_max = 20'000;
  // How long a drain waits for PayEx calls and confirms before giving up on them
  // (both are safe to abandon: a restart reads PayEx and republishes).
  std::chrono::milliseconds drain_wait{15'000};
  // A commit refused as busy or locked is tried this many times in all.
  int commit_attempts = 4;
  // Unsent outbox rows the relay reads per store query (the simulation makes it
  // small, so that the relay's paging is exercised with a few orders).
  std::size_t outbox_page = 2048;
};

}  // namespace payorch::engine
