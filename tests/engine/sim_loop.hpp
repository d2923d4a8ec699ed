// The simulation's world clock: one thread, virtual time, a queue of events in
// (time, order of scheduling) order, and the engine's Clock, Timer and Writer ports
// on it. Everything the engine does is an event here, so a seed replays a world
// exactly. An engine "process" has an epoch: a crash bumps the epoch and every
// event that belonged to the dead process (its timers, posts, commits, and the
// answers on their way to it) is dropped, as SIGKILL would drop them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <vector>

#include "engine/ports.hpp"

namespace payorch::sim {

using domain::Duration;
using domain::Time;
using namespace std::chrono_literals;

class Loop {
 public:
  using Fn = std::function<void()>;
  explicit Loop(Time start) : now_(start), start_(start) {}

  Time now() const { return now_; }
  engine::Steady monotonic() const { return now_ - start_; }
  uint64_t epoch() const { return epoch_; }
  void Crash() { ++epoch_; }

  // World events (the payer, PayEx's own work, the order services) always run.
  void At(Time t, Fn fn) { Push(std::max(t, now_), 0, std::move(fn)); }
  void After(Duration d, Fn fn) { At(now_ + d, std::move(fn)); }
  // Before anything else due now (a crash at an exact step of the process).
  void Urgent(Fn fn) { queue_.push(Event{now_, ++seq_, 0, std::move(fn), true}); }
  // Events of the current process: dropped if it crashes first.
  void ProcessAfter(Duration d, Fn fn) { Push(now_ + std::max(d, Duration(0)), epoch_, std::move(fn)); }
  // Wraps a callback into the current process: it does nothing once that process died.
  template <typename... A>
  std::function<void(A...)> Guard(std::function<void(A...)> fn) {
    const uint64_t e = epoch_;
    return [this, e, fn = std::move(fn)](A... a) {
      if (epoch_ == e) fn(std::forward<A>(a)...);
    };
  }

  // Runs the next event; false when there is none before `limit`.
  bool RunOne(Time limit) {
    while (!queue_.empty()) {
      Event ev = queue_.top();
      if (ev.at > limit) return false;
      queue_.pop();
      now_ = std::max(now_, ev.at);
      if (ev.epoch != 0 && ev.epoch != epoch_) continue;
      ++executed_;
      ev.fn();
      return true;
    }
    return false;
  }
  void RunUntil(Time limit) {
    while (RunOne(limit)) {
    }
    now_ = std::max(now_, limit);
  }
  bool Empty() const { return queue_.empty(); }
  uint64_t executed() const { return executed_; }

 private:
  struct Event {
    Time at;
    uint64_t seq;
    uint64_t epoch;
    Fn fn;
    bool urgent = false;
    bool operator>(const Event& o) const {
      if (at != o.at) return at > o.at;
      if (urgent != o.urgent) return o.urgent;
      return seq > o.seq;
    }
  };
  void Push(Time t, uint64_t epoch, Fn fn) {
    queue_.push(Event{t, ++seq_, epoch, std::move(fn), false});
  }

  Time now_;
  Time start_;
  uint64_t seq_ = 0;
  uint64_t epoch_ = 1;
  uint64_t executed_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
};

class SimTimer : public engine::Timer {
 public:
  explicit SimTimer(Loop& loop) : loop_(loop), gen_(std::make_shared<uint64_t>(0)) {}
  ~SimTimer() override { ++*gen_; }
  void Arm(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const uint64_t g = ++*gen_;
    loop_.ProcessAfter(delay, [gen = gen_, g, fn = std::move(fn)] {
      if (*gen == g) fn();
    });
  }
  void Cancel() override { ++*gen_; }

 private:
  Loop& loop_;
  std::shared_ptr<uint64_t> gen_;
};

class SimClock : public engine::Clock {
 public:
  explicit SimClock(Loop& loop) : loop_(loop) {}
  domain::Time Now() const override { return loop_.now(); }
  engine::Steady Monotonic() const override { return loop_.monotonic(); }
  void Post(std::function<void()> fn) override { loop_.ProcessAfter(Duration(0), std::move(fn)); }
  std::unique_ptr<engine::Timer> MakeTimer() override { return std::make_unique<SimTimer>(loop_); }

 private:
  Loop& loop_;
};

// Where the world may kill the process at an exact step ("after a commit", ...).
using CrashHook = std::function<void(const char* where)>;

// Commits on the process's own store connection after a short, random delay, in
// submission order; the answer reaches the engine a little later. A crash between
// the two leaves a commit that is durable but was never acted on, as SIGKILL after
// the fsync would. Now and then the disk stalls for longer than call_watchdog.
class SimWriter : public engine::Writer {
 public:
  SimWriter(Loop& loop, store::Store& store, std::mt19937_64& rng, double stall_rate,
            CrashHook crash)
      : loop_(loop), store_(store), rng_(rng), stall_rate_(stall_rate), crash_(std::move(crash)) {}
  void Submit(std::shared_ptr<engine::CommitJob> job,
              std::function<void(store::WriteResult, engine::Steady)> done) override {
    Duration d(static_cast<int64_t>(rng_() % 4));
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < stall_rate_) d = 12s;
    ready_at_ = std::max(ready_at_, loop_.now() + d);
    const Duration wait = ready_at_ - loop_.now();
    loop_.ProcessAfter(wait, [this, job, done = std::move(done)]() mutable {
      if (stopped_) return;
      store::WriteResult r;
      if (failed_) {
        r.ok = false;
        r.message = "an earlier commit failed";
      } else {
        r = engine::CommitRetryingWhenBusy(store_, *job, loop_.now(), 1, {});
        failed_ = !r.ok;
        if (r.ok && crash_) crash_("after a commit, before its acks and calls");
      }
      const Duration back(static_cast<int64_t>(rng_() % 3));
      loop_.ProcessAfter(back, [done = std::move(done), r = std::move(r)]() mutable {
        done(std::move(r), engine::Steady(0));
      });
    });
  }
  void Stop(bool discard) override { stopped_ = discard; }

 private:
  Loop& loop_;
  store::Store& store_;
  std::mt19937_64& rng_;
  double stall_rate_;
  CrashHook crash_;
  Time ready_at_{};
  bool failed_ = false;
  bool stopped_ = false;
};

}  // namespace payorch::sim
