#include "engine/decider.hpp"

#include "engine/log.hpp"

namespace payorch::engine {

namespace {
const char* PhaseOrNone(const std::optional<domain::Phase>& p) {
  return p ? domain::PhaseName(*p) : "none";
}
}  // namespace

Decider::Decider(Context& ctx, GroupCommit& commit) : ctx_(ctx), commit_(commit) {
  Evicted();  // shown from the start, at 0
}

metrics::Counter& Decider::Evicted() {
  return ctx_.metrics.counter("payorch_payments_evicted_total",
                              "Payments dropped from memory to keep within engine.cache_payments.");
}

domain::Payment& Decider::Insert(const std::string& order_id, domain::Payment payment) {
  auto it = cache_.emplace(order_id, Cached{std::move(payment), {}}).first;
  used_.push_front(&it->first);
  it->second.used = used_.begin();
  return it->second.payment;
}

domain::Payment* Decider::Find(const std::string& order_id) {
  auto it = cache_.find(order_id);
  if (it != cache_.end()) {
    used_.splice(used_.begin(), used_, it->second.used);
    return &it->second.payment;
  }
  std::optional<domain::Payment> loaded;
  try {
    loaded = ctx_.store.LoadPayment(order_id);
  } catch (const std::exception& e) {
    ctx_.StoreBroken(e.what());
    return nullptr;
  }
  if (!loaded) return nullptr;
  return &Insert(order_id, std::move(*loaded));
}

Decider::Applied Decider::Apply(const std::string& order_id, const domain::Input& input,
                                const char* input_name, const domain::PayexResult* result,
                                bool record) {
  Applied out;
  if (ctx_.fatal) {
    out.ok = false;
    return out;
  }
  domain::Payment* found = Find(order_id);
  if (ctx_.fatal) {
    out.ok = false;
    return out;
  }
  std::optional<domain::Phase> before;
  domain::Payment fresh;
  if (found) {
    before = found->phase;
  } else {
    fresh.order_id = order_id;
  }
  const domain::Payment& current = found ? *found : fresh;
  const domain::Time now = ctx_.Now();
  domain::Decision d = domain::Decide(ctx_.options.policy, current, input, now);
  ctx_.metrics
      .counter("payorch_decisions_total", "Decisions of the payment state machine, by input.",
               {{"input", input_name}})
      .Inc();

  // A decision that changes nothing but the time (a callback with nothing to
  // learn, a stale result) is not written: no fsync for it.
  bool changed = !d.events.empty() || !d.calls.empty() || d.accepted_event || !found || record;
  if (!changed) {
    const domain::Time stamped = d.next.updated_at;
    d.next.updated_at = current.updated_at;
    changed = !(d.next == current);
    d.next.updated_at = stamped;
  }
  if (!changed) return out;

  store::Commit c;
  c.phase_before = before;
  c.input_name = input_name;
  c.note = d.note;
  c.at = now;
  if (d.accepted_event) c.inbox_event_id = std::get<domain::OrderEvent>(input).event_id;
  // A call that is no longer in flight after this decision is finished: by its
  // result, or abandoned (watchdog, restart).
  const uint64_t old_call = current.in_flight.call_id;
  if (old_call != 0 && d.next.in_flight.call_id != old_call) {
    store::CallFinished f;
    f.call_id = old_call;
    if (result && result->call_id == old_call) {
      f.result = domain::ResultClassName(result->result);
      f.latency_us = result->latency_us;
    } else {
      f.result = "abandoned";
    }
    c.finished = f;
  }
  c.events = d.events;
  c.calls = d.calls;
  c.after = d.next;

  if (LogEnabled(Level::kInfo)) {
    Fields f{{"order_id", order_id},
             {"input", input_name},
             {"phase", std::string(PhaseOrNone(before)) + "->" + domain::PhaseName(d.next.phase)}};
    if (!d.calls.empty()) f.emplace_back("call", domain::OpKindName(d.calls[0].kind));
    for (const auto& ev : d.events) f.emplace_back("emits", domain::EventKindName(ev.kind));
    if (!d.note.empty()) f.emplace_back("note", d.note);
    Log(Level::kInfo, "payment.decided", f);
  }

  ctx_.gauges.Decided(before, d.next);
  out.written = true;
  out.events = d.events;
  const bool events = !d.events.empty();
  uncommitted_[order_id] = commit_.NextJob();
  commit_.Add(std::move(c), std::move(d.calls), events);
  if (found) {
    *found = std::move(d.next);
  } else {
    Insert(order_id, std::move(d.next));
  }
  return out;
}

void Decider::Record(const std::string& order_id, const std::string& input_name,
                     const std::string& note) {
  domain::Payment* p = Find(order_id);
  if (!p) return;
  store::Commit c;
  c.phase_before = p->phase;
  c.after = *p;
  c.input_name = input_name;
  c.note = note;
  c.at = ctx_.Now();
  uncommitted_[order_id] = commit_.NextJob();
  commit_.Add(std::move(c), {}, false);
}

void Decider::Committed(const CommitJob& job) {
  for (const auto& c : job.commits) {
    auto u = uncommitted_.find(c.after.order_id);
    if (u != uncommitted_.end() && u->second <= job.id) uncommitted_.erase(u);
  }
}

// Payments whose decisions are all committed equal their rows: any of them may
// go (a later input loads the row again). Those with a PayEx call in flight stay:
// its result comes soon. Down to 90% of the bound, so trims are not per commit.
void Decider::Trim() {
  const size_t max = ctx_.options.cache_max;
  if (cache_.size() <= max) return;
  const size_t before = cache_.size();
  const size_t target = max - max / 10;
  for (auto it = used_.end(); it != used_.begin() && cache_.size() > target;) {
    --it;
    const std::string& order_id = **it;
    auto entry = cache_.find(order_id);
    if (uncommitted_.count(order_id) || entry->second.payment.in_flight.call_id != 0) continue;
    it = used_.erase(it);
    cache_.erase(entry);
  }
  Evicted().Inc(static_cast<double>(before - cache_.size()));
  Log(Level::kDebug, "engine.cache_trimmed",
      {{"before", std::to_string(before)}, {"after", std::to_string(cache_.size())}});
}

}  // namespace payorch::engine
