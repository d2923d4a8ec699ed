// Seeded property test of the state machine: thousands of random lives of an
// order, with order events duplicated and reordered, PayEx results lost,
// duplicated, delayed and in doubt, restarts, lost and repeated callbacks, and
// transactions left Initialized. After every step the money invariants hold; at the
// end every event has exactly one answer, sequences have no gaps, no PayEx effect
// happened twice, and payorch's ledger equals PayEx's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>

#include "domain/serialize.hpp"
#include "payex_model.hpp"

namespace payorch::testing {
namespace {

using namespace std::chrono_literals;

struct Faults {
  double transient = 0;     // nothing reached PayEx
  double doubt_before = 0;  // in doubt, nothing happened
  double doubt_after = 0;   // in doubt, the effect happened
  double deferred = 0;      // in doubt, the effect lands later (after reads, even resends)
  double lost = 0;          // the result never arrives (watchdog or restart finds it)
  double duplicate = 0;     // the result arrives twice
  double delay = 0;         // the result arrives later, after other inputs
  double restart = 0;       // per step: the process restarts (results in the air are lost)
  double callback_lost = 0;
};

// How late a request may still land at PayEx after payorch gave up on it: the
// model's, not payorch's, so a policy whose horizon is shorter is caught.
constexpr Duration kLateLanding = 25s;

class Life {
 public:
  Life(uint64_t seed, Faults faults, ModelOptions model_options)
      : rng_(seed), faults_(faults), model_(model_options) {
    policy_.confirmation_timeout = 60s;
    policy_.msisdn_timeout = 120s;
    policy_.first_poll = 2s;
    policy_.poll_max = 10s;
    policy_.slow_poll = 30s;
    policy_.call_watchdog = 20s;
    policy_.transit_horizon = 30s;
    now_ = FromMillis(1'700'000'000'000);
    order_id_ = "order-" + std::to_string(seed);
    trace_ = std::getenv("PAYORCH_TRACE") != nullptr;
    MakeEvents();
  }

  void Run() {
    for (int step = 0; step < 400 && !HasFailure(); ++step) RandomStep();
    Drain();
    if (!HasFailure()) FinalChecks();
  }

  bool HasFailure() const { return ::testing::Test::HasFailure(); }
  const Payment& payment() const { return pay_; }
  const std::vector<PaymentEvent>& published() const { return published_; }

 private:
  double Roll() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  int64_t Amount(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  OrderEvent Event(OrderEventKind kind) {
    OrderEvent ev;
    ev.event_id = order_id_ + "-e" + std::to_string(++event_counter_);
    ev.order_id = order_id_;
    ev.occurred_at = now_;
    ev.kind = std::move(kind);
    return ev;
  }

  void MakeEvents() {
    int64_t total = Amount(100, 10'000);
    PurchaseRequested pr;
    pr.amount = total;
    pr.vat_amount = total / 5;
    pr.currency = Roll() < 0.03 ? "SEK" : "NOK";
    pr.description = "Order " + order_id_.substr(0, 20);
    bool msisdn_now = Roll() < 0.5;
    if (msisdn_now) pr.msisdn = Roll() < 0.03 ? "+4612345678" : "+4798765432";
    script_.push_back(Event(pr));
    if (!msisdn_now || Roll() < 0.1)
      script_.push_back(Event(PayerMsisdnProvided{Roll() < 0.05 ? "12345" : "987 65 432"}));
    int shipments = Pick(4);
    int64_t left = total;
    for (int i = 0; i < shipments; ++i) {
      int64_t a = Roll() < 0.15 ? left + Amount(1, 500) : Amount(1, std::max<int64_t>(left, 1));
      if (a <= left) left -= a;
      std::string id = Roll() < 0.08 && i > 0 ? "s0" : "s" + std::to_string(i);
      script_.push_back(Event(OrderShipped{id, a, a / 5, ""}));
    }
    if (Roll() < 0.4) script_.push_back(Event(OrderCancelled{"customer changed mind"}));
    int refunds = Pick(3);
    for (int i = 0; i < refunds; ++i) {
      int64_t a = Amount(1, total);
      script_.push_back(Event(RefundRequested{"r" + std::to_string(i), a, 0, ""}));
    }
    if (Roll() < 0.05) script_.push_back(Event(PurchaseRequested{pr}));  // a second purchase
    if (Roll() < 0.05) script_.push_back(Event(OrderShipped{"", 10, 0, ""}));
    // Mostly in order, sometimes swapped: the bus does not promise order across
    // publishers.
    for (size_t i = 1; i < script_.size(); ++i)
      if (Roll() < 0.15) std::swap(script_[i - 1], script_[i]);
    for (const auto& ev : script_) all_events_.push_back(ev.event_id);
  }

  void Apply(const Input& input) {
    Decision d = Decide(policy_, pay_, input, now_);
    if (trace_)
      std::fprintf(stderr, "t=%lld %s -> %s | %s\n",
                   static_cast<long long>((ToMillis(now_) - 1'700'000'000'000) / 1000),
                   PhaseName(pay_.phase), PhaseName(d.next.phase), d.note.c_str());
    ASSERT_LE(d.calls.size(), 1u);
    // Every order event is consumed (the engine writes its inbox row).
    ASSERT_EQ(d.accepted_event, std::holds_alternative<OrderEvent>(input));
    // A decision never leaves its next wake-up in the past (that would spin).
    ASSERT_TRUE(d.next.due_at == Time{} || d.next.due_at > now_)
        << "due_at not after now; " << d.note;
    for (const auto& call : d.calls) {
      ASSERT_FALSE(call.kind == OpKind::kAuthorize && d.next.cancel_requested)
          << "authorization pushed to the payer after a cancel";
      // Nothing new while PayEx last said a transaction is Initialized.
      ASSERT_FALSE(known_pending_ && call.kind != OpKind::kRead)
          << OpKindName(call.kind) << " sent while PayEx holds a transaction Initialized";
    }
    // What the store keeps is exactly what was decided.
    auto stored = DecodePayment(EncodePayment(d.next));
    ASSERT_TRUE(stored.has_value());
    ASSERT_TRUE(*stored == d.next) << "payment does not survive its encoding";
    for (const auto& ev : d.events) {
      auto e = DecodePaymentEvent(EncodePaymentEvent(ev));
      ASSERT_TRUE(e && *e == ev) << "event does not survive its encoding";
    }
    std::string broken = CheckInvariants(d.next);
    ASSERT_EQ(broken, "") << "after " << d.note;
    for (const auto& ev : d.events) {
      ASSERT_EQ(ev.sequence, published_.size() + 1) << "gap or reorder in sequences";
      ASSERT_EQ(ev.event_id, PaymentEventId(order_id_, ev.sequence));
      answers_[ev.caused_by_event_id].push_back(ev);
      ASSERT_EQ(answers_[ev.caused_by_event_id].size(), 1u)
          << "event " << ev.caused_by_event_id
          << " answered twice; second: " << EventKindName(ev.kind) << " note: " << d.note;
      published_.push_back(ev);
    }
    // No payeeReference ever stands for two different operations.
    for (const Op& op : d.next.ops) {
      if (op.payee_reference.empty()) continue;
      std::string identity = std::string(OpKindName(op.kind)) + "/" + op.caused_by;
      auto [it, inserted] = ref_owner_.emplace(op.payee_reference, identity);
      ASSERT_EQ(it->second, identity) << "payeeReference reused: " << op.payee_reference;
    }
    pay_ = std::move(d.next);
    for (const auto& call : d.calls) Execute(call);
  }

  void Execute(const PayexCall& call) {
    if (call.kind != OpKind::kRead && call.kind != OpKind::kCreate) {
      ASSERT_FALSE(call.payment_id.empty());
    }
    PayexResult result;
    double r = Roll();
    if (r < faults_.transient) {
      result.result = ResultClass::kTransient;
    } else if (r < faults_.transient + faults_.doubt_before) {
      result.result = ResultClass::kInDoubt;
    } else if (r < faults_.transient + faults_.doubt_before + faults_.deferred) {
      result.result = ResultClass::kInDoubt;
      deferred_.push_back({call, now_});  // reaches PayEx later, or never
    } else {
      result = model_.Execute(call, Roll());
      if (Roll() < faults_.doubt_after) {
        result = PayexResult{};
        result.result = ResultClass::kInDoubt;
      }
    }
    result.call_id = call.call_id;
    if (Roll() < faults_.lost) return;
    results_.push_back(result);
    if (Roll() < faults_.duplicate) results_.push_back(result);
  }

  void DeliverResult() {
    if (results_.empty()) return;
    size_t i = Roll() < faults_.delay && results_.size() > 1 ? 1 : 0;
    PayexResult r = results_[i];
    results_.erase(results_.begin() + static_cast<long>(i));
    if (r.call_id == pay_.in_flight.call_id && r.result == ResultClass::kSuccess) {
      // What payorch learns of PayEx's Pending state from this answer.
      if (r.snapshot) {
        known_pending_ = r.snapshot->state == PaymentState::kPending;
        for (const auto& tx : r.snapshot->transactions)
          if (tx.state == TxState::kInitialized) known_pending_ = true;
      } else if (r.transaction && r.transaction->state == TxState::kInitialized) {
        known_pending_ = true;
      }
    }
    Apply(r);
  }

  void DeliverEvent(const OrderEvent& ev) {
    if (inbox_.count(ev.event_id)) return;  // the engine's inbox: a redelivery is a no-op
    inbox_.insert(ev.event_id);
    Apply(ev);
  }

  void Callback() {
    if (Roll() < faults_.callback_lost) return;
    Apply(CallbackHint{});
    if (Roll() < 0.2) Apply(CallbackHint{});  // PayEx retries
  }

  void Advance(Duration d) { now_ += d; }

  void TickIfDue() {
    if (pay_.due_at != Time{} && now_ >= pay_.due_at) Apply(Tick{});
  }

  void RandomStep() {
    int action = Pick(10);
    switch (action) {
      case 0:
      case 1:
        if (next_event_ < script_.size()) DeliverEvent(script_[next_event_++]);
        break;
      case 2:
        if (next_event_ > 0 && Roll() < 0.3) DeliverEvent(script_[Pick(int(next_event_))]);
        break;
      case 3:
      case 4: DeliverResult(); break;
      case 5:
        Advance(Duration(Amount(100, 15'000)));
        TickIfDue();
        break;
      case 6:
        if (model_.PayerAnswers(order_id_, Roll() < 0.7)) Callback();
        break;
      case 7:
        if (!deferred_.empty() && Roll() < 0.5) {
          // A request lands late, but within the transit horizon: after that no
          // server still works on it (then it is dropped: it never happened).
          if (now_ < deferred_.front().second + kLateLanding)
            model_.Execute(deferred_.front().first, Roll());
          deferred_.erase(deferred_.begin());
        } else if (Roll() < 0.2 && model_.AuthorizationBecomesInitialized(order_id_)) {
          break;
        } else if (model_.ResolveInitialized(order_id_, Roll() < 0.8)) {
          Callback();
        }
        break;
      case 8:
        if (Roll() < faults_.restart) {
          results_.clear();
          Apply(Resume{});
        } else if (Roll() < 0.3) {
          Callback();
        }
        break;
      case 9:
        if (pay_.due_at != Time{}) {
          now_ = pay_.due_at;
          Apply(Tick{});
        }
        break;
    }
  }

  // No more faults: let everything settle, as a real system eventually does.
  void Drain() {
    faults_ = Faults{};
    for (const auto& [call, sent] : deferred_)
      if (now_ < sent + kLateLanding) model_.Execute(call, Roll());
    deferred_.clear();
    for (int i = 0; i < 2000 && !HasFailure(); ++i) {
      if (next_event_ < script_.size()) {
        DeliverEvent(script_[next_event_++]);
        continue;
      }
      if (!results_.empty()) {
        DeliverResult();
        continue;
      }
      if (model_.PayerAnswers(order_id_, Roll() < 0.7)) {
        Callback();
        continue;
      }
      if (model_.ResolveInitialized(order_id_, Roll() < 0.8)) continue;
      if (pay_.due_at == Time{}) return;
      now_ = pay_.due_at;
      Apply(Tick{});
    }
    FAIL() << "did not settle; phase " << PhaseName(pay_.phase) << " due " << ToMillis(pay_.due_at);
  }

  void FinalChecks() {
    EXPECT_EQ(pay_.in_flight.call_id, 0u);
    // Every event the inbox took has exactly one answer.
    for (const auto& id : inbox_)
      EXPECT_EQ(answers_[id].size(), 1u) << "event " << id << " phase " << PhaseName(pay_.phase);
    for (const auto& [id, list] : answers_) EXPECT_TRUE(inbox_.count(id)) << id;
    // PayEx never applied one reference twice, nor two references for one operation.
    for (const auto& [ref, n] : model_.EffectsByReference()) EXPECT_EQ(n, 1) << ref;
    EXPECT_LE(model_.PaymentsWithAuthorization(order_id_), 1);
    EXPECT_EQ(model_.RuleViolations(), 0);
    std::map<std::string, int> completed_per_operation;
    for (const auto& [id, p] : model_.Payments())
      for (const auto& tx : p.txs)
        if (tx.state == TxState::kCompleted && tx.type != TxType::kAuthorization) {
          EXPECT_EQ(++completed_per_operation[ref_owner_[tx.payee_reference]], 1)
              << "two effects for " << ref_owner_[tx.payee_reference];
        }
    // A failed answer means PayEx has no effect under any reference of that operation.
    std::set<std::string> completed_refs;
    for (const auto& [id, p] : model_.Payments())
      for (const auto& tx : p.txs)
        if (tx.state == TxState::kCompleted) completed_refs.insert(tx.payee_reference);
    for (const Op& op : pay_.ops)
      if (op.status == OpStatus::kFailed && op.kind != OpKind::kCreate &&
          !op.payee_reference.empty()) {
        EXPECT_FALSE(completed_refs.count(op.payee_reference))
            << OpKindName(op.kind) << " answered failed but PayEx did it";
      }
    // payorch's ledger is PayEx's ledger.
    const ModelPayment* m = model_.AuthorizedPayment(order_id_);
    const Balance& b = pay_.balance;
    if (!m) {
      EXPECT_EQ(b.authorized, 0);
      EXPECT_NE(pay_.phase, Phase::kAuthorized);
    } else {
      EXPECT_EQ(pay_.phase, Phase::kAuthorized);
      EXPECT_EQ(b.authorized, m->Authorized());
      EXPECT_EQ(b.captured, m->Sum(TxType::kCapture));
      EXPECT_EQ(b.cancelled, m->Sum(TxType::kCancellation));
      EXPECT_EQ(b.reversed, m->Sum(TxType::kReversal));
      EXPECT_EQ(pay_.payment_id, m->id);
    }
    // Final states settle: nothing left open.
    for (const Op& op : pay_.ops)
      EXPECT_TRUE(op.status == OpStatus::kDone || op.status == OpStatus::kFailed)
          << OpKindName(op.kind) << " " << OpStatusName(op.status);
  }

  std::mt19937_64 rng_;
  bool trace_ = false;
  Faults faults_;
  PayexModel model_;
  Policy policy_;
  Time now_;
  std::string order_id_;
  Payment pay_;
  std::vector<OrderEvent> script_;
  std::vector<std::string> all_events_;
  size_t next_event_ = 0;
  int event_counter_ = 0;
  std::set<std::string> inbox_;
  std::deque<PayexResult> results_;
  std::vector<std::pair<PayexCall, Time>> deferred_;
  bool known_pending_ = false;
  std::vector<PaymentEvent> published_;
  std::map<std::string, std::vector<PaymentEvent>> answers_;
  std::map<std::string, std::string> ref_owner_;
};

// What the lives reached, so a run shows it covered the interesting paths.
struct Coverage {
  std::map<std::string, int> phases, events;
  void Add(const Life& life) {
    ++phases[PhaseName(life.payment().phase)];
    for (const auto& ev : life.published()) {
      std::string k = EventKindName(ev.kind);
      if (IsFailureKind(ev.kind)) k += "/" + ev.failure.code;
      ++events[k];
    }
  }
  void Check() const {
    for (const char* p : {"authorized", "failed", "aborted"})
      EXPECT_GT(phases.count(p) ? phases.at(p) : 0, 0) << "no life ended " << p;
    for (const char* e : {"authorized", "captured", "cancelled", "reversed", "aborted",
                          "authorization_failed/declined", "authorization_failed/timed_out",
                          "rejected/amount_exceeds_remaining", "capture_failed/not_authorized"})
      EXPECT_GT(events.count(e) ? events.at(e) : 0, 0) << "no life produced " << e;
    std::string line;
    for (const auto& [k, n] : events) line += " " + k + "=" + std::to_string(n);
    std::printf("events:%s\n", line.c_str());
  }
};

void RunMany(uint64_t first_seed, int count, Faults faults) {
  Coverage coverage;
  // PAYORCH_PROPERTY_SCALE=N runs N times as many lives (for a deeper search).
  if (const char* scale = std::getenv("PAYORCH_PROPERTY_SCALE"))
    count *= std::max(1, std::atoi(scale));
  // PAYORCH_SEED=N replays one life (with PAYORCH_TRACE=1 to see every decision).
  if (const char* only = std::getenv("PAYORCH_SEED")) {
    uint64_t s = std::strtoull(only, nullptr, 10);
    if (s < first_seed || s >= first_seed + static_cast<uint64_t>(count)) return;
    first_seed = s;
    count = 1;
  }
  for (int i = 0; i < count; ++i) {
    uint64_t seed = first_seed + static_cast<uint64_t>(i);
    std::mt19937_64 opts_rng(seed * 7919);
    ModelOptions mo;
    mo.duplicates = static_cast<DuplicateMode>(opts_rng() % 3);
    mo.initialized_rate = (opts_rng() % 100) < 30 ? 0.15 : 0.0;
    mo.tx_failed_rate = (opts_rng() % 100) < 30 ? 0.1 : 0.0;
    mo.instant_approve_rate = (opts_rng() % 100) < 30 ? 0.5 : 0.0;
    mo.auth_initialized_rate = (opts_rng() % 100) < 20 ? 0.2 : 0.0;
    mo.abort_while_awaiting = (opts_rng() % 100) < 80;
    Life life(seed, faults, mo);
    life.Run();
    coverage.Add(life);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "seed " << seed << " (duplicates=" << static_cast<int>(mo.duplicates)
                    << ")";
      return;
    }
  }
  if (count > 1) coverage.Check();
}

TEST(DecideProperty, CleanLives) {
  RunMany(1, 2000, Faults{});
}

TEST(DecideProperty, LivesWithEveryFault) {
  Faults f;
  f.transient = 0.08;
  f.doubt_before = 0.05;
  f.doubt_after = 0.08;
  f.deferred = 0.05;
  f.lost = 0.05;
  f.duplicate = 0.1;
  f.delay = 0.3;
  f.restart = 0.3;
  f.callback_lost = 0.4;
  RunMany(100'000, 8000, f);
}

TEST(DecideProperty, LivesWithHeavyDoubt) {
  Faults f;
  f.doubt_before = 0.2;
  f.doubt_after = 0.3;
  f.deferred = 0.15;
  f.lost = 0.1;
  f.restart = 0.5;
  RunMany(900'000, 2000, f);
}

}  // namespace
}  // namespace payorch::testing
