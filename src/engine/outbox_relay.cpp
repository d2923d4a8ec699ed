#include "engine/outbox_relay.hpp"

#include <algorithm>

#include "domain/safe_text.hpp"
#include "engine/log.hpp"

namespace payorch::engine {

namespace {
// Publishes in flight at once; per order at most one.
constexpr size_t kWindow = 2048;
}  // namespace

OutboxRelay::OutboxRelay(Context& ctx, GroupCommit& commit)
    : ctx_(ctx), commit_(commit), retry_timer_(ctx.ports.clock.MakeTimer()) {}

void OutboxRelay::Wake(bool new_rows) {
  if (new_rows) more_ = true;
  if (posted_ || ctx_.stopped) return;
  posted_ = true;
  ctx_.ports.clock.Post([this] {
    posted_ = false;
    Round();
  });
}

void OutboxRelay::Round() {
  if (ctx_.stopped || ctx_.fatal) return;
  const size_t page = std::max<size_t>(1, ctx_.options.outbox_page);
  if (more_ && pending_.size() < (page + 1) / 2) {
    std::vector<store::OutboxRow> rows;
    try {
      rows = ctx_.store.UnsentOutbox(page, cursor_);
    } catch (const std::exception& e) {
      ctx_.StoreBroken(e.what());
      return;
    }
    more_ = rows.size() == page;
    bool held = false;
    for (auto& row : rows) {
      cursor_ = std::max(cursor_, row.seq);
      if (!seqs_.insert(row.seq).second) continue;
      if (auto p = parked_.find(row.event.order_id); p != parked_.end()) {
        p->second.rows.push_back(Row{std::move(row), false});  // behind the refused one
        held = true;
        continue;
      }
      pending_.push_back(Row{std::move(row), false});
    }
    if (held) UpdateParkedGauge();
  }
  if (pending_.empty()) {
    // Every row loaded may have joined a parked order: load on (more_), or the
    // rest of the outbox would wait for the next commit and a drain for its deadline.
    if (more_) Wake();
    return;
  }
  if (!ctx_.ports.publisher.State().connected) {
    RetryLater();
    return;
  }
  for (auto it = pending_.begin(); it != pending_.end() && in_flight_ < kWindow;) {
    const std::string& order_id = it->row.event.order_id;
    if (!busy_orders_.insert(order_id).second) {
      ++it;
      continue;
    }
    ++in_flight_;
    auto row = std::make_shared<Row>(std::move(*it));
    it = pending_.erase(it);
    ctx_.ports.publisher.Publish(row->row.event, [this, row](PublishOutcome res) {
      OnPublished(std::move(*row), std::move(res));
    });
  }
  if (more_ && pending_.size() < (page + 1) / 2) Wake();
}

void OutboxRelay::OnPublished(Row row, PublishOutcome res) {
  --in_flight_;
  busy_orders_.erase(row.row.event.order_id);
  if (ctx_.stopped) return;
  ctx_.metrics
      .counter("payorch_events_published_total", "Payment events published, by result.",
               {{"result", res.status}})
      .Inc();
  if (res.ok) {
    backoff_ = std::chrono::milliseconds(0);
    seqs_.erase(row.row.seq);
    Log(Level::kDebug, "payment_event.published",
        {{"order_id", row.row.event.order_id},
         {"event_id", row.row.event.event_id},
         {"kind", domain::EventKindName(row.row.event.kind)}});
    if (!row.republish) commit_.MarkSent(row.row.seq);
    Wake();
    return;
  }
  if (res.permanent && row.republish) {
    // An operator's second copy of an event consumers already have: nothing waits
    // behind it, so it is dropped (said once), not parked.
    seqs_.erase(row.row.seq);
    Log(Level::kError, "payment_event.republish_refused",
        {{"order_id", row.row.event.order_id},
         {"event_id", row.row.event.event_id},
         {"reason", domain::SafeDetail(res.detail)}});
    Wake();
    return;
  }
  if (res.permanent) {
    Park(std::move(row), res);
    Wake();
    return;
  }
  Log(Level::kWarn, "payment_event.publish_failed",
      {{"order_id", row.row.event.order_id},
       {"event_id", row.row.event.event_id},
       {"status", res.status},
       {"detail", res.detail}});
  // Back in front of the order's later events (an operator's republish may have
  // queued earlier ones meanwhile: those stay ahead of it).
  const std::string& order_id = row.row.event.order_id;
  const int64_t seq = row.row.seq;
  auto pos = std::find_if(pending_.begin(), pending_.end(), [&](const Row& r) {
    return r.row.event.order_id == order_id && r.row.seq > seq;
  });
  if (pos == pending_.end()) {
    // None later: behind the order's last queued row, else first in line.
    auto last = std::find_if(pending_.rbegin(), pending_.rend(),
                             [&](const Row& r) { return r.row.event.order_id == order_id; });
    pos = last == pending_.rend() ? pending_.begin() : last.base();
  }
  pending_.insert(pos, std::move(row));
  RetryLater();
}

void OutboxRelay::Park(Row row, const PublishOutcome& res) {
  const std::string order_id = row.row.event.order_id;
  Held& held = parked_[order_id];
  held.refused = row.row.event;
  held.reason = domain::SafeDetail(res.detail);
  held.since = ctx_.ports.clock.Now();
  held.rows.push_front(std::move(row));
  // The order's other events still waiting join it, all in sequence order (an
  // operator's republish may have queued earlier ones).
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->row.event.order_id == order_id) {
      held.rows.push_back(std::move(*it));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  held.rows.sort([](const Row& a, const Row& b) { return a.row.seq < b.row.seq; });
  const domain::PaymentEvent& first = held.refused;
  // Once per refusal: the next attempt is an operator's (or the next start's).
  Log(Level::kError, "payment_event.parked",
      {{"order_id", order_id},
       {"event_id", first.event_id},
       {"sequence", std::to_string(first.sequence)},
       {"kind", domain::EventKindName(first.kind)},
       {"reason", held.reason},
       {"waiting_behind", std::to_string(held.rows.size() - 1)},
       {"action", "fix the cause, then payorchctl payment republish " + order_id}});
  ctx_.metrics
      .counter("payorch_events_parked_total",
               "Payment events refused for good by the bus and parked for an operator.")
      .Inc();
  UpdateParkedGauge();
}

void OutboxRelay::UpdateParkedGauge() {
  size_t events = 0;
  for (const auto& [order, held] : parked_) events += held.rows.size();
  ctx_.metrics
      .gauge("payorch_outbox_parked_events",
             "Payment events not published because their order has an event the bus "
             "refused for good (payorchctl payment parked lists them).")
      .Set(static_cast<double>(events));
}

std::vector<ParkedEvent> OutboxRelay::Parked() const {
  std::vector<ParkedEvent> out;
  for (const auto& [order, held] : parked_) {
    const domain::PaymentEvent& e = held.refused;
    out.push_back(ParkedEvent{order, e.event_id, e.sequence, domain::EventKindName(e.kind),
                              held.reason, held.since, held.rows.size() - 1});
  }
  return out;
}

void OutboxRelay::RetryLater() {
  if (retry_armed_ || ctx_.stopped) return;
  backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds(100),
                        std::chrono::milliseconds(5000));
  retry_armed_ = true;
  retry_timer_->Arm(backoff_, [this] {
    retry_armed_ = false;
    Wake();
  });
}

size_t OutboxRelay::Republish(const std::string& order_id, std::vector<store::OutboxRow> rows) {
  size_t n = 0;
  // A parked order goes out again from its refused event on, in sequence order.
  if (auto p = parked_.find(order_id); p != parked_.end()) {
    Log(Level::kInfo, "payment_event.unparked",
        {{"order_id", order_id}, {"events", std::to_string(p->second.rows.size())}});
    auto pos = std::find_if(pending_.begin(), pending_.end(),
                            [&](const Row& r) { return r.row.event.order_id == order_id; });
    n += p->second.rows.size();
    pending_.splice(pos, p->second.rows);
    parked_.erase(p);
    UpdateParkedGauge();
  }
  for (auto& row : rows) {
    if (seqs_.count(row.seq)) continue;  // already on its way
    // Unsent and not yet loaded: Round loads it in its turn (queued here too, it
    // could be loaded again after its confirm and before its mark).
    if (!row.sent_at && row.seq > cursor_) {
      ++n;  // goes out all the same
      continue;
    }
    seqs_.insert(row.seq);
    // An unsent row is published as usual (and marked sent); a sent one again.
    const bool again = row.sent_at.has_value();
    auto pos = std::find_if(pending_.begin(), pending_.end(), [&](const Row& r) {
      return r.row.event.order_id == order_id && r.row.seq > row.seq;
    });
    pending_.insert(pos, Row{std::move(row), again});
    ++n;
  }
  Wake();
  return n;
}

void OutboxRelay::Stop() {
  retry_timer_->Cancel();
}

}  // namespace payorch::engine
