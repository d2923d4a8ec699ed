// The simulation's PayEx: the domain tests' PayEx model (money rules, one effect
// per request, what a repeated payeeReference does) on the world clock, with the
// ways a real PayEx and network fail: connect failures (nothing happens), 5xx or
// dropped connections before or after the effect, effects that land long after the
// request timed out, requests that never answer, reads that do not yet show a
// transaction just made, transactions left Initialized, and a payer who approves,
// declines or never answers in the Vipps app; callbacks lost, late, duplicated.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "domain/payex_model.hpp"
#include "engine/ports.hpp"
#include "sim_loop.hpp"

namespace payorch::sim {

struct PayexFaults {
  double transient = 0;     // connect failure: nothing reached PayEx
  double doubt_before = 0;  // 5xx or a dropped connection before the effect
  double doubt_after = 0;   // the effect, then a 5xx or a dropped connection
  double late = 0;          // the effect lands after the request timed out
  double hang = 0;          // the effect (or not), and no answer ever
  double callback_lost = 0;
  double callback_duplicate = 0;
  double initialized_settles = 0;  // per payer decision: PayEx loses track of it first
  Duration latency_max = 300ms;
  Duration request_timeout = 4s;  // when the client gives up: in doubt
  Duration late_max = 20s;        // how late an effect may land (below transit_horizon)
  Duration read_lag_max = 4s;     // how long a new money transaction is missing from reads
};

class FakePayex {
 public:
  FakePayex(Loop& loop, std::mt19937_64& rng, testing::ModelOptions model, PayexFaults faults)
      : loop_(loop), rng_(rng), model_(model), faults_(faults) {}

  void set_faults(PayexFaults f) { faults_ = f; }
  // Money requests sent again while an earlier attempt of the same payeeReference
  // had not yet landed and shown in reads: the in-transit rule broken, whatever
  // PayEx then does with the repeated reference.
  const std::vector<std::string>& violations() const { return violations_; }
  // Where callbacks go (the live process's engine), or nothing while it is down.
  void set_callback(std::function<void(const std::string& order_id)> cb) { callback_ = cb; }
  void Execute(const domain::PayexCall& call, std::function<void(domain::PayexResult)> done) {
    const bool money = call.kind == domain::OpKind::kCapture ||
                       call.kind == domain::OpKind::kCancel ||
                       call.kind == domain::OpKind::kReverse;
    if (money) {
      auto it = landing_by_.find(call.payee_reference);
      if (it != landing_by_.end() && loop_.now() < it->second)
        violations_.push_back(std::string(domain::OpKindName(call.kind)) + " " +
                              call.payee_reference + " sent again " +
                              std::to_string((it->second - loop_.now()).count()) +
                              " ms before an earlier attempt had surely landed");
    }
    auto lands = [&](Duration after) {
      if (!money) return;
      Time& t = landing_by_[call.payee_reference];
      t = std::max(t, loop_.now() + after + faults_.read_lag_max);
    };
    const Duration latency(1 + static_cast<int64_t>(rng_() % faults_.latency_max.count()));
    const double r = Roll();
    double edge = 0;
    auto in = [&](double p) {
      edge += p;
      return r < edge;
    };
    domain::PayexResult doubt;
    doubt.result = domain::ResultClass::kInDoubt;
    if (in(faults_.transient)) {
      domain::PayexResult t;
      t.result = domain::ResultClass::kTransient;
      loop_.After(latency, [done, t] { done(t); });
    } else if (in(faults_.doubt_before)) {
      // A read that fails is safe to repeat: the client calls it transient.
      if (call.kind == domain::OpKind::kRead) doubt.result = domain::ResultClass::kTransient;
      loop_.After(latency, [done, doubt] { done(doubt); });
    } else if (in(faults_.doubt_after)) {
      lands(latency / 2);
      loop_.After(latency / 2, [this, call] { Apply(call); });
      loop_.After(latency, [done, doubt] { done(doubt); });
    } else if (in(faults_.late)) {
      // Still in PayEx's hands when the client gives up; it lands later.
      const Duration land = faults_.request_timeout +
                            Duration(static_cast<int64_t>(rng_() % (faults_.late_max -
                                                                    faults_.request_timeout)
                                                                       .count()));
      ++late_effects_;
      lands(land);
      loop_.After(land, [this, call] { Apply(call); });
      loop_.After(faults_.request_timeout, [done, doubt] { done(doubt); });
    } else if (in(faults_.hang)) {
      if (Roll() < 0.5) {
        lands(latency);
        loop_.After(latency, [this, call] { Apply(call); });
      }
      // no answer: the executor's watchdog gives up on it
    } else {
      lands(latency / 2);
      loop_.After(latency / 2, [this, call, done, latency] {
        domain::PayexResult res = Apply(call);
        loop_.After(latency / 2, [done, res] { done(res); });
      });
    }
  }

  const testing::PayexModel& model() const { return model_; }
  uint64_t late_effects() const { return late_effects_; }

 private:
  double Roll() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  domain::PayexResult Apply(const domain::PayexCall& call) {
    domain::PayexResult res = model_.Execute(call, Roll());
    if (res.transaction) {
      const domain::Transaction& tx = *res.transaction;
      const bool money = tx.type == domain::TxType::kCapture ||
                         tx.type == domain::TxType::kCancellation ||
                         tx.type == domain::TxType::kReversal;
      if (money && !visible_at_.count(tx.id))
        visible_at_[tx.id] =
            loop_.now() + Duration(static_cast<int64_t>(rng_() % (faults_.read_lag_max.count() + 1)));
      if (tx.type == domain::TxType::kAuthorization &&
          tx.state == domain::TxState::kAwaitingActivity)
        SchedulePayer(call.order_id);
      if (tx.state == domain::TxState::kInitialized) ScheduleSettle(call.order_id);
    }
    if (res.snapshot) HideRecent(*res.snapshot);
    return res;
  }

  // Reads lag behind writes: a money transaction shows only from its visible_at.
  void HideRecent(domain::PaymentSnapshot& s) {
    std::erase_if(s.transactions, [&](const domain::Transaction& tx) {
      auto it = visible_at_.find(tx.id);
      return it != visible_at_.end() && it->second > loop_.now();
    });
  }

  // The payer answers in the app within a minute, or never (then Vipps gives up
  // after ten minutes and the authorization fails).
  void SchedulePayer(const std::string& order_id) {
    const double r = Roll();
    if (r < 0.1) {
      loop_.After(10min, [this, order_id] {
        if (model_.PayerAnswers(order_id, false)) Callback(order_id);
      });
      return;
    }
    const bool approve = r < 0.75;
    const Duration d(500 + static_cast<int64_t>(rng_() % 40'000));
    loop_.After(d, [this, order_id, approve] {
      if (Roll() < faults_.initialized_settles &&
          model_.AuthorizationBecomesInitialized(order_id)) {
        ScheduleSettle(order_id);
        return;
      }
      if (model_.PayerAnswers(order_id, approve)) {
        Callback(order_id);
      }
    });
  }

  void ScheduleSettle(const std::string& order_id) {
    const Duration d(1000 + static_cast<int64_t>(rng_() % 30'000));
    loop_.After(d, [this, order_id] {
      if (model_.ResolveInitialized(order_id, Roll() < 0.8)) Callback(order_id);
    });
  }

  // PayEx's callback: lost, late, or twice; the body says only "look at me".
  void Callback(const std::string& order_id) {
    if (Roll() < faults_.callback_lost) return;
    const Duration d(static_cast<int64_t>(rng_() % 2000));
    loop_.After(d, [this, order_id] {
      if (callback_) callback_(order_id);
    });
    if (Roll() < faults_.callback_duplicate)
      loop_.After(d + 30s, [this, order_id] {
        if (callback_) callback_(order_id);
      });
  }

  Loop& loop_;
  std::mt19937_64& rng_;
  testing::PayexModel model_;
  PayexFaults faults_;
  std::function<void(const std::string&)> callback_;
  std::map<std::string, Time> visible_at_;
  std::map<std::string, Time> landing_by_;  // payeeReference -> every attempt landed and shown
  std::vector<std::string> violations_;
  uint64_t late_effects_ = 0;
};

// The PayEx executor of one engine process.
class SimPayexPort : public engine::PayexExecutor {
 public:
  SimPayexPort(Loop& loop, FakePayex& payex) : loop_(loop), payex_(payex) {}
  void Execute(const domain::PayexCall& call,
               std::function<void(domain::PayexResult)> done) override {
    payex_.Execute(call, loop_.Guard(std::move(done)));
    if (crash_) crash_("right after a PayEx call left");
  }
  void set_crash_hook(CrashHook h) { crash_ = std::move(h); }
  void Close() override {}

 private:
  Loop& loop_;
  FakePayex& payex_;
  CrashHook crash_;
};

}  // namespace payorch::sim
