#include "engine/intake.hpp"

#include "engine/log.hpp"

namespace payorch::engine {

Intake::Intake(Context& ctx, Decider& decider, GroupCommit& commit)
    : ctx_(ctx), decider_(decider), commit_(commit) {}

void Intake::OnDelivery(Delivery d) {
  if (ctx_.draining) return;  // not acked: the broker delivers it again after we close
  const domain::OrderEvent& ev = d.event;
  const char* kind = domain::OrderEventKindName(ev.kind);
  if (pending_inbox_.count(ev.event_id)) {
    // The same event is in a decision waiting for its commit: ack both after it.
    commit_.AddAck({d.generation, d.tag});
    Consumed(kind, "duplicate");
    commit_.Schedule();
    return;
  }
  bool seen = false;
  try {
    seen = ctx_.store.HasEvent(ev.event_id);
  } catch (const std::exception& e) {
    ctx_.StoreBroken(e.what());
    return;
  }
  if (seen) {
    Consumed(kind, "duplicate");
    Log(Level::kInfo, "order_event.duplicate",
        {{"order_id", ev.order_id}, {"event_id", ev.event_id}, {"kind", kind}});
    ctx_.ports.source.Ack(d.generation, d.tag);
    return;
  }
  Decider::Applied a = decider_.Apply(ev.order_id, ev, "order_event");
  if (!a.ok) {
    ctx_.ports.source.Requeue(d.generation, d.tag);
    return;
  }
  bool rejected = false;
  for (const auto& out : a.events)
    if (out.kind == domain::EventKind::kRejected && out.caused_by_event_id == ev.event_id)
      rejected = true;
  Consumed(kind, rejected ? "rejected" : "accepted");
  pending_inbox_[ev.event_id] = commit_.NextJob();
  commit_.AddAck({d.generation, d.tag});
  commit_.Schedule();
}

void Intake::Committed(const CommitJob& job) {
  for (const auto& c : job.commits) {
    if (c.inbox_event_id.empty()) continue;
    auto it = pending_inbox_.find(c.inbox_event_id);
    if (it != pending_inbox_.end() && it->second <= job.id) pending_inbox_.erase(it);
  }
}

void Intake::Consumed(const char* kind, const char* result) {
  ctx_.metrics
      .counter("payorch_events_consumed_total", "Order events consumed, by kind and result.",
               {{"kind", kind}, {"result", result}})
      .Inc();
}

}  // namespace payorch::engine
