#include "engine/gauges.hpp"

#include <algorithm>
#include <chrono>

namespace payorch::engine {

void Gauges::Load(const store::PaymentGauges& g) {
  by_phase_ = {};
  for (const auto& [name, count] : g.by_phase)
    if (auto phase = domain::PhaseFromName(name)) by_phase_[static_cast<size_t>(*phase)] = count;
  doubt_.clear();
  doubt_order_.clear();
  for (const auto& [order_id, since] : g.in_doubt) SetDoubt(order_id, since);
  outbox_backlog_ = g.outbox_unsent;
}

void Gauges::Decided(std::optional<domain::Phase> before, const domain::Payment& after) {
  if (!before || *before != after.phase) {
    if (before) --by_phase_[static_cast<size_t>(*before)];
    ++by_phase_[static_cast<size_t>(after.phase)];
  }
  SetDoubt(after.order_id, after.doubt_since);
}

// A zero time: not in doubt.
void Gauges::SetDoubt(const std::string& order_id, domain::Time since) {
  auto it = doubt_.find(order_id);
  if (it != doubt_.end()) {
    if (it->second == since) return;
    doubt_order_.erase({it->second, order_id});
    if (since == domain::Time{}) {
      doubt_.erase(it);
      return;
    }
    it->second = since;
  } else {
    if (since == domain::Time{}) return;
    doubt_.emplace(order_id, since);
  }
  doubt_order_.emplace(since, order_id);
}

void Gauges::Export(metrics::Registry& m, domain::Time now) const {
  for (size_t i = 0; i < kPhases; ++i) {
    const char* name = domain::PhaseName(static_cast<domain::Phase>(i));
    m.gauge("payorch_payments", "Payments by state.", {{"state", name}})
        .Set(static_cast<double>(by_phase_[i]));
  }
  m.gauge("payorch_outbox_backlog", "Payment events committed and not yet confirmed.")
      .Set(static_cast<double>(outbox_backlog_));
  double age = 0;
  if (!doubt_order_.empty())
    age = std::max(0.0, std::chrono::duration<double>(now - doubt_order_.begin()->first).count());
  m.gauge("payorch_oldest_in_doubt_seconds",
          "Age of the oldest unresolved in-doubt operation (0: none).")
      .Set(age);
  m.gauge("payorch_payments_in_doubt", "Payments with an unresolved in-doubt operation.")
      .Set(static_cast<double>(doubt_.size()));
}

}  // namespace payorch::engine
