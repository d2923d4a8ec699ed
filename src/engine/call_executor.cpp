#include "engine/call_executor.hpp"

#include <algorithm>
#include <chrono>

#include "engine/log.hpp"

namespace payorch::engine {

namespace {
double Seconds(Steady d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

struct CallExecutor::Running {
  uint64_t key = 0;  // call ids are per payment: many payments have a call #1
  domain::PayexCall call;
  Steady sent{};
  std::unique_ptr<Timer> watchdog;
  bool finished = false;
};

CallExecutor::CallExecutor(Context& ctx, Decider& decider, OnResult on_result)
    : ctx_(ctx),
      decider_(decider),
      on_result_(std::move(on_result)),
      tokens_at_(ctx.ports.clock.Monotonic()),
      rate_timer_(ctx.ports.clock.MakeTimer()) {}

void CallExecutor::Enqueue(std::vector<domain::PayexCall> calls) {
  for (auto& c : calls) queue_.push_back(std::move(c));
  Pump();
}

void CallExecutor::Pump() {
  while (!queue_.empty() && !ctx_.draining && !ctx_.fatal &&
         in_flight_ < ctx_.options.max_concurrent_calls) {
    // Calls that will not be sent are settled before the rate limit is asked: they
    // must not spend its tokens (under overload that would starve every call).
    domain::PayexCall& front = queue_.front();
    domain::Payment* p = decider_.Find(front.order_id);
    const bool stale = !p || p->in_flight.call_id != front.call_id;
    const bool expired = !stale && front.send_by != domain::Time{} && ctx_.Now() > front.send_by;
    if (!stale && !expired && !TakeToken()) return;
    domain::PayexCall call = std::move(front);
    queue_.pop_front();
    // A call that waited may have been given up meanwhile (the watchdog made it
    // in doubt, a read or a new attempt replaced it): never send it late.
    if (stale) {
      ctx_.metrics
          .counter("payorch_payex_calls_dropped_total",
                   "Queued PayEx calls dropped unsent because the payment moved on.")
          .Inc();
      Log(Level::kWarn, "payex.call_dropped",
          {{"order_id", call.order_id}, {"call_id", std::to_string(call.call_id)},
           {"kind", domain::OpKindName(call.kind)}});
      continue;
    }
    if (expired) {
      // Waited past its send_by for a slot or the rate limit: the state machine
      // will not wait for it much longer, so it must not leave now. Nothing
      // happened at PayEx: "not sent" (transient), retried by the state machine.
      ctx_.metrics
          .counter("payorch_payex_calls_expired_total",
                   "Queued PayEx calls not sent because they waited past their send_by.")
          .Inc();
      Log(Level::kWarn, "payex.call_expired",
          {{"order_id", call.order_id}, {"call_id", std::to_string(call.call_id)},
           {"kind", domain::OpKindName(call.kind)},
           {"send_by", std::to_string(domain::ToMillis(call.send_by))},
           {"now", std::to_string(domain::ToMillis(ctx_.Now()))}});
      domain::PayexResult r;
      r.call_id = call.call_id;
      r.result = domain::ResultClass::kTransient;
      on_result_(call, r);
      continue;
    }
    Send(std::move(call));
  }
}

void CallExecutor::Send(domain::PayexCall call) {
  ++in_flight_;
  auto run = std::make_shared<Running>();
  run->call = std::move(call);
  run->sent = ctx_.ports.clock.Monotonic();
  run->watchdog = ctx_.ports.clock.MakeTimer();
  // Held here until it finishes: a port that drops its callback (a request that
  // never answers) must still free its slot, through the watchdog.
  run->key = ++last_key_;
  running_.emplace(run->key, run);
  // The watchdog counts from the send: a call that waited for a slot or the rate
  // limit is never given up while it is still on its way.
  std::weak_ptr<Running> weak = run;
  run->watchdog->Arm(ctx_.options.policy.call_watchdog, [this, weak] {
    auto r = weak.lock();
    if (!r || r->finished) return;
    Log(Level::kWarn, "payex.call_watchdog",
        {{"order_id", r->call.order_id}, {"call_id", std::to_string(r->call.call_id)},
         {"kind", domain::OpKindName(r->call.kind)}});
    domain::PayexResult res;
    res.result = domain::ResultClass::kInDoubt;
    Finish(r, res);
  });
  ctx_.ports.payex.Execute(run->call, [this, weak](domain::PayexResult r) {
    auto run = weak.lock();
    if (!run || run->finished) return;  // the watchdog answered for it already
    Finish(run, std::move(r));
  });
}

void CallExecutor::Finish(std::shared_ptr<Running> run, domain::PayexResult r) {
  run->finished = true;
  run->watchdog->Cancel();
  running_.erase(run->key);
  --in_flight_;
  const domain::PayexCall& call = run->call;
  r.call_id = call.call_id;
  const Steady took = ctx_.ports.clock.Monotonic() - run->sent;
  if (r.latency_us == 0)
    r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
  const char* op = domain::OpKindName(call.kind);
  const char* outcome = domain::ResultClassName(r.result);
  ctx_.metrics
      .counter("payorch_payex_calls_total", "PayEx calls by operation and outcome.",
               {{"operation", op}, {"outcome", outcome}})
      .Inc();
  ctx_.metrics
      .histogram("payorch_payex_call_seconds", "Latency of PayEx calls by operation.",
                 metrics::LatencyBucketsSeconds(), {{"operation", op}})
      .Observe(Seconds(took));
  if (r.result == domain::ResultClass::kTransient || r.result == domain::ResultClass::kInDoubt)
    ctx_.metrics
        .counter("payorch_retries_total",
                 "PayEx outcomes that lead to a retry (transient) or a read (in doubt).",
                 {{"operation", op}, {"reason", outcome}})
        .Inc();
  if (!ctx_.stopped && !ctx_.fatal) on_result_(call, r);
  Pump();
}

// The global rate limit toward PayEx: a token bucket refilled continuously.
bool CallExecutor::TakeToken() {
  const double rate = ctx_.options.payex_rate_limit;
  if (rate <= 0) return true;
  const double burst = std::max(1.0, rate / 20);
  const Steady now = ctx_.ports.clock.Monotonic();
  tokens_ = std::min(burst, tokens_ + Seconds(now - tokens_at_) * rate);
  tokens_at_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  if (!rate_armed_) {
    rate_armed_ = true;
    auto wait = std::chrono::duration<double>((1 - tokens_) / rate);
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait);
    rate_timer_->Arm(ms, [this] {
      rate_armed_ = false;
      Pump();
    });
  }
  return false;
}

std::vector<domain::PayexCall> CallExecutor::TakeUnsent() {
  std::vector<domain::PayexCall> out(std::make_move_iterator(queue_.begin()),
                                     std::make_move_iterator(queue_.end()));
  queue_.clear();
  return out;
}

void CallExecutor::Stop() {
  rate_timer_->Cancel();
}

}  // namespace payorch::engine
