// The payment gauges of /metrics, kept as the engine decides rather than counted
// per scrape: payments by phase, the payments in doubt (for the oldest doubt's
// age), the outbox backlog. Loaded once at start from the store (its phase counts,
// the index of payments in doubt, the unsent rows), then moved by each decision
// and commit: a scrape costs the same with ten payments or ten million and runs no
// SQL. The counts follow decisions as they are made (a decision waiting for its
// commit counts already); a failed commit stops the engine.
// Thread: the engine thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "domain/types.hpp"
#include "metrics/registry.hpp"
#include "store/store.hpp"

namespace payorch::engine {

class Gauges {
 public:
  void Load(const store::PaymentGauges& g);
  // A decision took `after` from `before` (nullopt: a new payment).
  void Decided(std::optional<domain::Phase> before, const domain::Payment& after);
  // A commit landed with `events` new outbox rows and `sent` rows newly marked sent.
  void Committed(int64_t events, int64_t sent) { outbox_backlog_ += events - sent; }
  void Export(metrics::Registry& m, domain::Time now) const;

  int64_t InPhase(domain::Phase phase) const { return by_phase_[static_cast<size_t>(phase)]; }
  size_t in_doubt() const { return doubt_.size(); }
  int64_t outbox_backlog() const { return outbox_backlog_; }

 private:
  static constexpr size_t kPhases = static_cast<size_t>(domain::Phase::kAborted) + 1;
  void SetDoubt(const std::string& order_id, domain::Time since);

  std::array<int64_t, kPhases> by_phase_{};
  std::unordered_map<std::string, domain::Time> doubt_;       // order id -> doubt_since
  std::set<std::pair<domain::Time, std::string>> doubt_order_;  // oldest first
  int64_t outbox_backlog_ = 0;
};

}  // namespace payorch::engine
