// The PayEx call executor: calls leave only after the commit that records them as
// in flight, at most options.max_concurrent_calls at once and
// options.payex_rate_limit per second (a token bucket). A queued call is not sent
// when its payment has moved on (a read or the watchdog replaced it) or when its
// send_by has passed (then it is answered "not sent", kTransient). Each call sent
// has a watchdog counted from its send: no answer within policy.call_watchdog
// makes it kInDoubt, and a later answer is ignored.
// Thread: the engine thread. Errors: outcomes are values (domain::PayexResult).
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/context.hpp"
#include "engine/decider.hpp"

namespace payorch::engine {

class CallExecutor {
 public:
  using OnResult = std::function<void(const domain::PayexCall&, const domain::PayexResult&)>;
  CallExecutor(Context& ctx, Decider& decider, OnResult on_result);

  void Enqueue(std::vector<domain::PayexCall> calls);
  void Pump();
  // Calls that never left (a drain): the caller tells the state machine.
  std::vector<domain::PayexCall> TakeUnsent();

  size_t in_flight() const { return in_flight_; }
  size_t queued() const { return queue_.size(); }
  void Stop();

 private:
  struct Running;
  bool TakeToken();
  void Send(domain::PayexCall call);
  void Finish(std::shared_ptr<Running> run, domain::PayexResult r);

  Context& ctx_;
  Decider& decider_;
  OnResult on_result_;
  std::list<domain::PayexCall> queue_;
  size_t in_flight_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<Running>> running_;  // sent, not finished
  uint64_t last_key_ = 0;
  double tokens_ = 1;
  Steady tokens_at_{};
  std::unique_ptr<Timer> rate_timer_;
  bool rate_armed_ = false;
};

}  // namespace payorch::engine
