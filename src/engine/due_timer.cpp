#include "engine/due_timer.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "engine/log.hpp"

namespace payorch::engine {

DueTimer::DueTimer(Context& ctx, Decider& decider, GroupCommit& commit)
    : ctx_(ctx), decider_(decider), commit_(commit), timer_(ctx.ports.clock.MakeTimer()) {}

void DueTimer::Arm() {
  if (ctx_.draining || ctx_.fatal) return;
  std::optional<domain::Time> next;
  try {
    next = ctx_.store.NextDueAt();
  } catch (const std::exception& e) {
    ctx_.StoreBroken(e.what());
    return;
  }
  if (!next) {
    if (armed_at_) timer_->Cancel();
    armed_at_.reset();
    return;
  }
  const domain::Time now = ctx_.Now();
  domain::Time at = *next;
  if (now < quiet_until_) at = std::max(at, quiet_until_);
  if (armed_at_ && *armed_at_ == at) return;
  armed_at_ = at;
  auto delay = std::max(at - now, domain::Duration(0));
  timer_->Arm(delay, [this] {
    armed_at_.reset();
    OnTimer();
  });
}

void DueTimer::OnTimer() {
  if (ctx_.draining || ctx_.fatal) return;
  std::vector<std::string> due;
  try {
    due = ctx_.store.DuePayments(ctx_.Now(), ctx_.options.max_batch);
  } catch (const std::exception& e) {
    ctx_.StoreBroken(e.what());
    return;
  }
  size_t ticked = 0;
  bool decided = false;
  for (const std::string& order_id : due) {
    // A row with a decision still on its way to disk is older than the payment:
    // that commit re-arms the timer with the row's new due time.
    if (decider_.Uncommitted(order_id)) continue;
    ++ticked;
    decided = decider_.Apply(order_id, domain::Tick{}, "tick").written || decided;
  }
  if (ticked > 0 && !decided) {
    // Due rows whose decision changed nothing: never spin on them; look again
    // in a second (a fixed point, so later commits do not push it away).
    quiet_until_ = ctx_.Now() + std::chrono::seconds(1);
    Log(Level::kWarn, "engine.tick_without_change", {{"payments", std::to_string(ticked)}});
  }
  if (decided) {
    commit_.Schedule();
  } else if (ticked > 0 || due.empty()) {
    Arm();
  }  // else: every due payment has a commit on its way, which re-arms the timer
}

void DueTimer::Stop() {
  timer_->Cancel();
  armed_at_.reset();
}

}  // namespace payorch::engine
