// Table tests of the state machine: every phase crossed with every kind of input,
// plus focused scenarios of the contract (captures, cancels, refunds, doubt).
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "domain/decide.hpp"

namespace payorch::domain {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPid = "/psp/vipps/payments/5adc";

// Drives one payment through Decide, the way the engine does.
class Driver {
 public:
  Driver() {
    policy.confirmation_timeout = 60s;
    policy.msisdn_timeout = 120s;
    policy.first_poll = 2s;
    policy.call_watchdog = 20s;
    policy.transit_horizon = 30s;
  }

  Decision Apply(const Input& in) {
    Decision d = Decide(policy, pay, in, now);
    EXPECT_EQ(CheckInvariants(d.next), "") << d.note;
    pay = d.next;
    last = d;
    return d;
  }

  OrderEvent Ev(OrderEventKind kind) {
    OrderEvent ev;
    ev.event_id = "e" + std::to_string(++n);
    ev.order_id = "o1";
    ev.kind = std::move(kind);
    return ev;
  }

  static PurchaseRequested Purchase(const std::string& msisdn = "") {
    PurchaseRequested p;
    p.amount = 1500;
    p.vat_amount = 300;
    p.currency = "NOK";
    p.description = "Sykkel";
    p.msisdn = msisdn;
    return p;
  }

  PayexResult Result(ResultClass c) const {
    PayexResult r;
    r.call_id = pay.in_flight.call_id;
    r.result = c;
    return r;
  }

  PayexResult Created() const {
    PayexResult r = Result(ResultClass::kSuccess);
    r.snapshot = PaymentSnapshot{};
    r.snapshot->payment_id = kPid;
    r.snapshot->state = PaymentState::kReady;
    r.snapshot->can_authorize = true;
    return r;
  }

  PayexResult Tx(TxType type, TxState state, int64_t amount, const std::string& ref = "") const {
    PayexResult r = Result(ResultClass::kSuccess);
    Transaction t;
    t.id = std::string(kPid) + "/transactions/t" + std::to_string(pay.last_call_id);
    t.type = type;
    t.state = state;
    t.amount = amount;
    t.payee_reference = ref;
    r.transaction = t;
    return r;
  }

  PayexResult Snapshot(PaymentState state, std::vector<Transaction> txs) const {
    PayexResult r = Result(ResultClass::kSuccess);
    PaymentSnapshot s;
    s.payment_id = kPid;
    s.state = state;
    s.transactions = std::move(txs);
    r.snapshot = s;
    return r;
  }

  // A capture as PayEx shows it in a read.
  static Transaction CaptureTx(const std::string& ref, int64_t amount,
                               TxState state = TxState::kCompleted, const std::string& id = "") {
    Transaction t;
    t.id = id;
    t.type = TxType::kCapture;
    t.state = state;
    t.amount = amount;
    t.payee_reference = ref;
    return t;
  }

  static Transaction AuthTx(TxState state) {
    Transaction t;
    t.id = std::string(kPid) + "/transactions/auth";
    t.type = TxType::kAuthorization;
    t.state = state;
    t.amount = 1500;
    if (state == TxState::kFailed)
      t.problem = Problem{
          "https://api.payex.com/psp/errordetail/vipps/vipps_declined", "Declined", "", 400, {}};
    return t;
  }

  PayexResult Refused(int status, const std::string& type) const {
    PayexResult r = Result(ResultClass::kDefiniteFailure);
    r.problem = Problem{"https://api.payex.com/psp/errordetail/" + type, type, "", status, {}};
    return r;
  }

  const Op* Current() const {
    return pay.in_flight.op_id ? &pay.ops[pay.in_flight.op_id - 1] : nullptr;
  }

  Policy policy;
  Payment pay;
  Decision last;
  Time now = FromMillis(1'800'000'000'000);
  int n = 0;
};

// Brings a driver into a phase, the way real inputs would.
Driver InPhase(Phase phase) {
  Driver d;
  if (phase == Phase::kNew) return d;
  bool with_msisdn = phase != Phase::kCreating && phase != Phase::kAwaitingMsisdn;
  d.Apply(d.Ev(Driver::Purchase(with_msisdn ? "+4798765432" : "")));
  if (phase == Phase::kCreating) return d;
  d.Apply(d.Created());
  if (phase == Phase::kAwaitingMsisdn || phase == Phase::kAuthorizing) return d;
  d.Apply(d.Tx(TxType::kAuthorization, TxState::kAwaitingActivity, 1500));
  d.now += 2s;
  d.Apply(Tick{});  // the first poll goes out
  if (phase == Phase::kAwaitingPayer) return d;
  if (phase == Phase::kAuthorized) {
    d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
    return d;
  }
  if (phase == Phase::kFailed) {
    d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kFailed)}));
    return d;
  }
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  d.Apply(d.Ev(OrderCancelled{"changed mind"}));  // kAborting: the abort is in flight
  if (phase == Phase::kAborting) return d;
  d.Apply(d.Snapshot(PaymentState::kAborted, {Driver::AuthTx(TxState::kFailed)}));
  return d;  // kAborted
}

enum class In {
  kPurchase,
  kMsisdn,
  kShipped,
  kCancelled,
  kRefund,
  kSuccess,
  kDefinite,
  kTransient,
  kInDoubt,
  kStale,
  kTick,
  kCallback,
  kResume,
};

const char* InName(In in) {
  static const char* names[] = {"purchase", "msisdn",           "shipped",   "cancelled", "refund",
                                "success",  "definite_failure", "transient", "in_doubt",  "stale",
                                "tick",     "callback",         "resume"};
  return names[static_cast<int>(in)];
}

// The success a call in flight would get in this phase.
PayexResult SuccessFor(const Driver& d) {
  const Op* op = d.Current();
  if (!op) return d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)});
  switch (op->kind) {
    case OpKind::kCreate: return d.Created();
    case OpKind::kAuthorize: return d.Tx(TxType::kAuthorization, TxState::kAwaitingActivity, 1500);
    case OpKind::kAbort: return d.Snapshot(PaymentState::kAborted, {});
    default: return d.Tx(TxType::kCapture, TxState::kCompleted, op->amount, op->payee_reference);
  }
}

Input Make(Driver& d, In in) {
  switch (in) {
    case In::kPurchase: return d.Ev(Driver::Purchase("+4798765432"));
    case In::kMsisdn: return d.Ev(PayerMsisdnProvided{"98765432"});
    case In::kShipped: return d.Ev(OrderShipped{"s1", 500, 100, "Første pakke"});
    case In::kCancelled: return d.Ev(OrderCancelled{"changed mind"});
    case In::kRefund: return d.Ev(RefundRequested{"r1", 100, 0, ""});
    case In::kSuccess: return SuccessFor(d);
    case In::kDefinite:
      return d.Refused(403, d.Current() && d.Current()->kind == OpKind::kAuthorize
                                ? "vipps/vipps_error"
                            : d.Current() && d.Current()->kind == OpKind::kCreate ? "inputerror"
                                                                                  : "forbidden");
    case In::kTransient: return d.Result(ResultClass::kTransient);
    case In::kInDoubt: return d.Result(ResultClass::kInDoubt);
    case In::kStale: {
      PayexResult r = SuccessFor(d);
      r.call_id = 9999;
      return r;
    }
    case In::kTick:
      if (d.pay.due_at != Time{}) d.now = std::max(d.now, d.pay.due_at);
      return Tick{};
    case In::kCallback: return CallbackHint{};
    case In::kResume: return Resume{};
  }
  return Tick{};
}

struct Row {
  Phase phase;
  In in;
  Phase next;
  std::string events;  // "kind[/code],..."
  std::string call;    // op kind name of the call made, or "-"
};

std::string Events(const Decision& d) {
  std::string s;
  for (const auto& ev : d.events) {
    if (!s.empty()) s += ",";
    s += EventKindName(ev.kind);
    if (IsFailureKind(ev.kind)) s += "/" + ev.failure.code;
  }
  return s;
}

using P = Phase;
const Row kTable[] = {
    // kNew: only a purchase is understood.
    {P::kNew, In::kPurchase, P::kCreating, "", "create"},
    {P::kNew, In::kMsisdn, P::kNew, "rejected/unknown_order", "-"},
    {P::kNew, In::kShipped, P::kNew, "rejected/unknown_order", "-"},
    {P::kNew, In::kCancelled, P::kNew, "rejected/unknown_order", "-"},
    {P::kNew, In::kRefund, P::kNew, "rejected/unknown_order", "-"},
    {P::kNew, In::kSuccess, P::kNew, "", "-"},
    {P::kNew, In::kDefinite, P::kNew, "", "-"},
    {P::kNew, In::kTransient, P::kNew, "", "-"},
    {P::kNew, In::kInDoubt, P::kNew, "", "-"},
    {P::kNew, In::kStale, P::kNew, "", "-"},
    {P::kNew, In::kTick, P::kNew, "", "-"},
    {P::kNew, In::kCallback, P::kNew, "", "-"},
    {P::kNew, In::kResume, P::kNew, "", "-"},
    // kCreating (no MSISDN yet): the create is in flight.
    {P::kCreating, In::kPurchase, P::kCreating, "rejected/duplicate_purchase", "-"},
    {P::kCreating, In::kMsisdn, P::kCreating, "", "-"},
    {P::kCreating, In::kShipped, P::kCreating, "", "-"},
    {P::kCreating, In::kCancelled, P::kCreating, "", "-"},
    {P::kCreating, In::kRefund, P::kCreating, "rejected/amount_exceeds_remaining", "-"},
    {P::kCreating, In::kSuccess, P::kAwaitingMsisdn, "", "-"},
    {P::kCreating, In::kDefinite, P::kFailed, "authorization_failed/payex_problem", "-"},
    {P::kCreating, In::kTransient, P::kCreating, "", "-"},
    {P::kCreating, In::kInDoubt, P::kCreating, "", "-"},
    {P::kCreating, In::kStale, P::kCreating, "", "-"},
    {P::kCreating, In::kTick, P::kCreating, "", "-"},
    {P::kCreating, In::kCallback, P::kCreating, "", "-"},
    {P::kCreating, In::kResume, P::kCreating, "", "-"},
    // kAwaitingMsisdn: created, nothing in flight.
    {P::kAwaitingMsisdn, In::kPurchase, P::kAwaitingMsisdn, "rejected/duplicate_purchase", "-"},
    {P::kAwaitingMsisdn, In::kMsisdn, P::kAuthorizing, "", "authorize"},
    {P::kAwaitingMsisdn, In::kShipped, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kCancelled, P::kAborting, "", "abort"},
    {P::kAwaitingMsisdn, In::kRefund, P::kAwaitingMsisdn, "rejected/amount_exceeds_remaining", "-"},
    {P::kAwaitingMsisdn, In::kSuccess, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kDefinite, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kTransient, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kInDoubt, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kStale, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kTick, P::kAborting, "", "abort"},  // MSISDN deadline
    {P::kAwaitingMsisdn, In::kCallback, P::kAwaitingMsisdn, "", "-"},
    {P::kAwaitingMsisdn, In::kResume, P::kAwaitingMsisdn, "", "-"},
    // kAuthorizing: the authorization POST is in flight.
    {P::kAuthorizing, In::kPurchase, P::kAuthorizing, "rejected/duplicate_purchase", "-"},
    {P::kAuthorizing, In::kMsisdn, P::kAuthorizing, "rejected/msisdn_already_provided", "-"},
    {P::kAuthorizing, In::kShipped, P::kAuthorizing, "", "-"},
    {P::kAuthorizing, In::kCancelled, P::kAuthorizing, "", "-"},
    {P::kAuthorizing, In::kRefund, P::kAuthorizing, "rejected/amount_exceeds_remaining", "-"},
    {P::kAuthorizing, In::kSuccess, P::kAwaitingPayer, "", "-"},
    {P::kAuthorizing, In::kDefinite, P::kFailed, "authorization_failed/payex_problem", "-"},
    {P::kAuthorizing, In::kTransient, P::kAuthorizing, "", "-"},
    {P::kAuthorizing, In::kInDoubt, P::kAuthorizing, "", "read"},
    {P::kAuthorizing, In::kStale, P::kAuthorizing, "", "-"},
    {P::kAuthorizing, In::kTick, P::kAuthorizing, "", "read"},  // watchdog: in doubt
    {P::kAuthorizing, In::kCallback, P::kAuthorizing, "", "-"},
    {P::kAuthorizing, In::kResume, P::kAuthorizing, "", "read"},
    // kAwaitingPayer: a poll (read) is in flight.
    {P::kAwaitingPayer, In::kPurchase, P::kAwaitingPayer, "rejected/duplicate_purchase", "-"},
    {P::kAwaitingPayer, In::kMsisdn, P::kAwaitingPayer, "rejected/msisdn_already_provided", "-"},
    {P::kAwaitingPayer, In::kShipped, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kCancelled, P::kAborting, "", "-"},
    {P::kAwaitingPayer, In::kRefund, P::kAwaitingPayer, "rejected/amount_exceeds_remaining", "-"},
    {P::kAwaitingPayer, In::kSuccess, P::kAuthorized, "authorized", "-"},
    {P::kAwaitingPayer, In::kDefinite, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kTransient, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kInDoubt, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kStale, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kTick, P::kAwaitingPayer, "", "read"},
    {P::kAwaitingPayer, In::kCallback, P::kAwaitingPayer, "", "-"},
    {P::kAwaitingPayer, In::kResume, P::kAwaitingPayer, "", "-"},
    // kAborting: the abort is in flight (the order was cancelled).
    {P::kAborting, In::kPurchase, P::kAborting, "rejected/duplicate_purchase", "-"},
    {P::kAborting, In::kMsisdn, P::kAborting, "rejected/payment_closed", "-"},
    {P::kAborting, In::kShipped, P::kAborting, "rejected/order_cancelled", "-"},
    {P::kAborting, In::kCancelled, P::kAborting, "rejected/order_cancelled", "-"},
    {P::kAborting, In::kRefund, P::kAborting, "rejected/amount_exceeds_remaining", "-"},
    {P::kAborting, In::kSuccess, P::kAborted, "authorization_failed/aborted,aborted", "-"},
    {P::kAborting, In::kDefinite, P::kAwaitingPayer, "", "read"},
    {P::kAborting, In::kTransient, P::kAborting, "", "-"},
    {P::kAborting, In::kInDoubt, P::kAborting, "", "read"},
    {P::kAborting, In::kStale, P::kAborting, "", "-"},
    {P::kAborting, In::kTick, P::kAborting, "", "read"},
    {P::kAborting, In::kCallback, P::kAborting, "", "-"},
    {P::kAborting, In::kResume, P::kAborting, "", "read"},
    // kAuthorized, idle.
    {P::kAuthorized, In::kPurchase, P::kAuthorized, "rejected/duplicate_purchase", "-"},
    {P::kAuthorized, In::kMsisdn, P::kAuthorized, "rejected/msisdn_already_provided", "-"},
    {P::kAuthorized, In::kShipped, P::kAuthorized, "", "capture"},
    {P::kAuthorized, In::kCancelled, P::kAuthorized, "", "cancel"},
    {P::kAuthorized, In::kRefund, P::kAuthorized, "rejected/amount_exceeds_remaining", "-"},
    {P::kAuthorized, In::kSuccess, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kDefinite, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kTransient, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kInDoubt, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kStale, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kTick, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kCallback, P::kAuthorized, "", "-"},
    {P::kAuthorized, In::kResume, P::kAuthorized, "", "-"},
    // kFailed: declined by the payer.
    {P::kFailed, In::kPurchase, P::kFailed, "rejected/duplicate_purchase", "-"},
    {P::kFailed, In::kMsisdn, P::kFailed, "rejected/payment_closed", "-"},
    {P::kFailed, In::kShipped, P::kFailed, "capture_failed/not_authorized", "-"},
    {P::kFailed, In::kCancelled, P::kFailed, "aborted", "-"},
    {P::kFailed, In::kRefund, P::kFailed, "rejected/amount_exceeds_remaining", "-"},
    {P::kFailed, In::kSuccess, P::kFailed, "", "-"},
    {P::kFailed, In::kDefinite, P::kFailed, "", "-"},
    {P::kFailed, In::kTransient, P::kFailed, "", "-"},
    {P::kFailed, In::kInDoubt, P::kFailed, "", "-"},
    {P::kFailed, In::kStale, P::kFailed, "", "-"},
    {P::kFailed, In::kTick, P::kFailed, "", "-"},
    {P::kFailed, In::kCallback, P::kFailed, "", "-"},
    {P::kFailed, In::kResume, P::kFailed, "", "-"},
    // kAborted: the order was cancelled before the payer answered.
    {P::kAborted, In::kPurchase, P::kAborted, "rejected/duplicate_purchase", "-"},
    {P::kAborted, In::kMsisdn, P::kAborted, "rejected/payment_closed", "-"},
    {P::kAborted, In::kShipped, P::kAborted, "capture_failed/not_authorized", "-"},
    {P::kAborted, In::kCancelled, P::kAborted, "rejected/order_cancelled", "-"},
    {P::kAborted, In::kRefund, P::kAborted, "rejected/amount_exceeds_remaining", "-"},
    {P::kAborted, In::kSuccess, P::kAborted, "", "-"},
    {P::kAborted, In::kDefinite, P::kAborted, "", "-"},
    {P::kAborted, In::kTransient, P::kAborted, "", "-"},
    {P::kAborted, In::kInDoubt, P::kAborted, "", "-"},
    {P::kAborted, In::kStale, P::kAborted, "", "-"},
    {P::kAborted, In::kTick, P::kAborted, "", "-"},
    {P::kAborted, In::kCallback, P::kAborted, "", "-"},
    {P::kAborted, In::kResume, P::kAborted, "", "-"},
};

void PrintTo(const Row& row, std::ostream* os) {
  *os << PhaseName(row.phase) << " x " << InName(row.in) << " -> " << PhaseName(row.next) << " ["
      << row.events << "] call " << row.call;
}

class PhaseByInput : public ::testing::TestWithParam<Row> {};

TEST_P(PhaseByInput, Decides) {
  const Row& row = GetParam();
  Driver d = InPhase(row.phase);
  ASSERT_EQ(d.pay.phase, row.phase) << "fixture";
  Payment before = d.pay;
  Input in = Make(d, row.in);
  Decision out = d.Apply(in);
  EXPECT_STREQ(PhaseName(out.next.phase), PhaseName(row.next)) << out.note;
  EXPECT_EQ(Events(out), row.events) << out.note;
  EXPECT_EQ(out.calls.empty() ? "-" : OpKindName(out.calls[0].kind), row.call) << out.note;
  EXPECT_EQ(out.accepted_event, std::holds_alternative<OrderEvent>(in));
  // Sequences continue without gaps; event ids are stable functions of them.
  for (size_t i = 0; i < out.events.size(); ++i) {
    EXPECT_EQ(out.events[i].sequence, before.last_sequence + i + 1);
    EXPECT_EQ(out.events[i].event_id, PaymentEventId("o1", out.events[i].sequence));
  }
  // A stale or unrelated result never changes the payment.
  if (row.in == In::kStale) {
    EXPECT_EQ(out.next.phase, before.phase);
    EXPECT_EQ(out.next.ops.size(), before.ops.size());
    EXPECT_EQ(out.next.in_flight.call_id, before.in_flight.call_id);
  }
}

std::string RowName(const ::testing::TestParamInfo<Row>& info) {
  return std::string(PhaseName(info.param.phase)) + "_" + InName(info.param.in);
}

INSTANTIATE_TEST_SUITE_P(AllPairs, PhaseByInput, ::testing::ValuesIn(kTable), RowName);

TEST(PhaseByInputTable, CoversEveryPhaseAndInput) {
  std::set<std::pair<int, int>> seen;
  for (const Row& r : kTable) seen.insert({static_cast<int>(r.phase), static_cast<int>(r.in)});
  EXPECT_EQ(seen.size(), 9u * 13u);
}

// ---- scenarios --------------------------------------------------------------

Driver Authorized() {
  return InPhase(Phase::kAuthorized);
}

void Complete(Driver& d) {
  const Op* op = d.Current();
  ASSERT_NE(op, nullptr);
  TxType type = op->kind == OpKind::kCapture  ? TxType::kCapture
                : op->kind == OpKind::kCancel ? TxType::kCancellation
                                              : TxType::kReversal;
  d.Apply(d.Tx(type, TxState::kCompleted, op->amount, op->payee_reference));
}

TEST(Decide, PartialAndRepeatedCapturesUpToTheAuthorizedAmount) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 100, ""}));
  d.Apply(d.Ev(OrderShipped{"s2", 700, 140, ""}));  // queued behind s1
  EXPECT_TRUE(d.last.calls.empty());
  Complete(d);
  EXPECT_EQ(Events(d.last), "captured");
  EXPECT_EQ(d.last.calls.size(), 1u);  // s2 goes out next
  Complete(d);
  EXPECT_EQ(d.pay.balance.captured, 1200);
  d.Apply(d.Ev(OrderShipped{"s3", 301, 0, ""}));
  EXPECT_EQ(Events(d.last), "rejected/amount_exceeds_remaining");
  d.Apply(d.Ev(OrderShipped{"s1", 10, 0, ""}));
  EXPECT_EQ(Events(d.last), "rejected/duplicate_shipment");
  d.Apply(d.Ev(OrderShipped{"s3", 300, 0, ""}));
  Complete(d);
  EXPECT_EQ(d.pay.balance.captured, 1500);
  EXPECT_EQ(d.last.events.back().balance.captured, 1500);
}

TEST(Decide, CaptureBeforeAuthorizationWaitsAndFailsWithIt) {
  Driver d = InPhase(Phase::kAwaitingPayer);
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  EXPECT_TRUE(d.last.events.empty());
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kFailed)}));
  EXPECT_EQ(Events(d.last), "authorization_failed/declined,capture_failed/not_authorized");

  Driver ok = InPhase(Phase::kAwaitingPayer);
  ok.Apply(ok.Ev(OrderShipped{"s1", 500, 0, ""}));
  ok.Apply(ok.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  EXPECT_EQ(Events(ok.last), "authorized");
  ASSERT_EQ(ok.last.calls.size(), 1u);
  EXPECT_EQ(ok.last.calls[0].kind, OpKind::kCapture);
  Complete(ok);
  EXPECT_EQ(Events(ok.last), "captured");
}

TEST(Decide, CancelAfterPartCaptureReleasesTheRest) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 400, 0, ""}));
  Complete(d);
  d.Apply(d.Ev(OrderCancelled{"out of stock"}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].amount, 1100);
  Complete(d);
  EXPECT_EQ(Events(d.last), "cancelled");
  EXPECT_EQ(d.last.events[0].amount, 1100);
  EXPECT_EQ(d.pay.balance.cancelled, 1100);
  d.Apply(d.Ev(OrderShipped{"s2", 1, 0, ""}));
  EXPECT_EQ(Events(d.last), "rejected/order_cancelled");
}

TEST(Decide, CancelWhenNothingRemainsIsAClearNoOp) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 1500, 0, ""}));
  Complete(d);
  d.Apply(d.Ev(OrderCancelled{""}));
  EXPECT_TRUE(d.last.calls.empty());
  ASSERT_EQ(Events(d.last), "cancelled");
  EXPECT_EQ(d.last.events[0].amount, 0);
}

// A cancel event's free reason reaches PayEx (the abort's description), the store
// and the published `aborted` event: its first 40 characters of plain text, or
// "Order cancelled" for escape codes; never 1 MB of it.
TEST(Decide, AHostileCancelReasonBeforeAuthorizationIsBoundedAndPlain) {
  for (const std::string& reason :
       {std::string(1 << 20, 'x'), std::string("stop \x1b[2J\x1b]0;owned\x07 now"),
        std::string("call +4798765432 now")}) {
    Driver d = InPhase(Phase::kAwaitingPayer);
    d.Apply(d.Ev(OrderCancelled{reason}));
    ASSERT_EQ(d.pay.phase, Phase::kAborting);
    const Op* abort = nullptr;
    for (const Op& op : d.pay.ops)
      if (op.kind == OpKind::kAbort) abort = &op;
    ASSERT_NE(abort, nullptr);
    EXPECT_LE(Utf8Length(abort->description), 40) << abort->description.size();
    EXPECT_TRUE(IsPlainText(abort->description));
    d.Apply(d.Snapshot(PaymentState::kAborted, {Driver::AuthTx(TxState::kFailed)}));
    ASSERT_EQ(d.pay.phase, Phase::kAborted);
    bool answered = false;
    for (const auto& ev : d.last.events)
      if (ev.kind == EventKind::kAborted) {
        answered = true;
        EXPECT_LE(ev.reason.size(), 160u);
        EXPECT_TRUE(IsPlainText(ev.reason)) << ev.reason;
      }
    EXPECT_TRUE(answered) << Events(d.last);
  }
}

// Whatever PayEx writes in a problem reaches the failure's message masked and bounded.
TEST(Decide, APayexProblemReachesTheEventMaskedAndBounded) {
  Driver d = InPhase(Phase::kCreating);
  PayexResult r = d.Result(ResultClass::kDefiniteFailure);
  r.problem = Problem{"", "refused", "payer +4798765432 " + std::string(100000, 'y'), 400, {}};
  d.Apply(r);
  ASSERT_EQ(Events(d.last), "authorization_failed/payex_problem");
  const std::string& message = d.last.events[0].failure.message;
  EXPECT_TRUE(IsSafeDetail(message, 400)) << message.substr(0, 200);
  EXPECT_EQ(message.find("98765432"), std::string::npos);
}

TEST(Decide, RefundsArePartialRepeatedAndBounded) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 1000, 0, ""}));
  Complete(d);
  d.Apply(d.Ev(RefundRequested{"r1", 600, 0, ""}));
  Complete(d);
  EXPECT_EQ(Events(d.last), "reversed");
  d.Apply(d.Ev(RefundRequested{"r2", 401, 0, ""}));
  EXPECT_EQ(Events(d.last), "rejected/amount_exceeds_remaining");
  d.Apply(d.Ev(RefundRequested{"r1", 1, 0, ""}));
  EXPECT_EQ(Events(d.last), "rejected/duplicate_refund");
  d.Apply(d.Ev(RefundRequested{"r2", 400, 0, ""}));
  Complete(d);
  EXPECT_EQ(d.pay.balance.reversed, 1000);
}

TEST(Decide, InDoubtCaptureIsResolvedByReadingNeverBySendingTwice) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  d.Apply(d.Result(ResultClass::kInDoubt));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kRead);
  // A shipment arriving meanwhile waits: nothing new while in doubt.
  d.Apply(d.Ev(OrderShipped{"s2", 100, 0, ""}));
  EXPECT_TRUE(d.last.calls.empty());
  // PayEx has it: adopt it, do not send again.
  const Transaction tx = Driver::CaptureTx(ref, 500, TxState::kCompleted, "t-cap");
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted), tx}));
  EXPECT_EQ(Events(d.last), "captured");
  ASSERT_EQ(d.last.calls.size(), 1u);  // s2 goes out now
  EXPECT_NE(d.last.calls[0].payee_reference, ref);
}

// Reads until no earlier attempt can still land, answering each read with `txs`;
// returns the first call that is not a read (nullopt if none came).
std::optional<PayexCall> ReadUntilNotARead(Driver& d, std::vector<Transaction> txs,
                                           int max_reads = 20) {
  for (int i = 0; i < max_reads; ++i) {
    if (d.last.calls.empty()) {
      EXPECT_NE(d.pay.due_at, Time{}) << "nothing in flight and no wake-up";
      d.now = std::max(d.now, d.pay.due_at);
      d.Apply(Tick{});
      continue;
    }
    if (d.last.calls[0].kind != OpKind::kRead) return d.last.calls[0];
    d.Apply(d.Snapshot(PaymentState::kReady, txs));
  }
  return std::nullopt;
}

TEST(Decide, InDoubtCaptureWithNoTraceIsResentWithTheSameReferenceOnlyAfterTheHorizon) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  const Time doubt_at = d.now + 1s;
  d.now = doubt_at;
  d.Apply(d.Result(ResultClass::kInDoubt));
  // No trace at PayEx: the first POST may still land, so only reads go out.
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  EXPECT_TRUE(d.last.calls.empty());
  EXPECT_LE(d.pay.due_at, doubt_at + d.policy.transit_horizon);
  auto next = ReadUntilNotARead(d, {Driver::AuthTx(TxState::kCompleted)});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->kind, OpKind::kCapture);
  EXPECT_EQ(next->payee_reference, ref);
  EXPECT_GE(d.now, doubt_at + d.policy.transit_horizon);
  // ...and promptly: the last read is at the horizon, not a backoff step later.
  EXPECT_LE(d.now, doubt_at + d.policy.transit_horizon + d.policy.first_poll);
}

TEST(Decide, ASlowReadSentBeforeTheHorizonNeverJustifiesAResend) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  const std::string ref = d.last.calls.at(0).payee_reference;
  const Time doubt_at = d.now;
  d.Apply(d.Result(ResultClass::kInDoubt));
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  // A read decided 5 s before the horizon, answered (no trace) 5 s after it: PayEx
  // took its snapshot before the horizon, so the first capture may still land.
  d.now = doubt_at + d.policy.transit_horizon - 5s;
  d.Apply(CallbackHint{});  // a callback asks for a read now
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
  d.now = doubt_at + d.policy.transit_horizon + 5s;
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kRead) << "resent on the word of a read from before the horizon";
  // A read decided after the horizon may conclude.
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kCapture);
  EXPECT_EQ(d.last.calls[0].payee_reference, ref);
}

TEST(Decide, ACaptureThatLandsLateWithinTheHorizonIsAdoptedNotResent) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  d.Apply(d.Result(ResultClass::kInDoubt));
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  EXPECT_TRUE(d.last.calls.empty());
  // The request took effect 25 s later (within the 30 s horizon).
  d.now += 25s;
  d.Apply(Tick{});
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
  const Transaction tx = Driver::CaptureTx(ref, 500, TxState::kCompleted, "t-late");
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted), tx}));
  EXPECT_EQ(Events(d.last), "captured");
  EXPECT_EQ(d.pay.balance.captured, 500);
}

TEST(Decide, EveryMoneyMoveWaitsForTheHorizonOfItsLastAttempt) {
  // Cancellation and reversal as the capture above; the abort too.
  for (OpKind kind : {OpKind::kCancel, OpKind::kReverse}) {
    Driver d = Authorized();
    std::vector<Transaction> base = {Driver::AuthTx(TxState::kCompleted)};
    if (kind == OpKind::kReverse) {
      d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
      d.Apply(d.Tx(TxType::kCapture, TxState::kCompleted, 500,
                   d.last.calls.at(0).payee_reference));
      base.push_back(Driver::CaptureTx(d.pay.ops.back().payee_reference, 500,
                                       TxState::kCompleted, "t-cap"));
      d.Apply(d.Ev(RefundRequested{"r1", 200, 0, ""}));
    } else {
      d.Apply(d.Ev(OrderCancelled{"x"}));
    }
    ASSERT_EQ(d.last.calls.at(0).kind, kind);
    const std::string ref = d.last.calls[0].payee_reference;
    const Time doubt_at = d.now;
    d.Apply(d.Result(ResultClass::kInDoubt));
    auto next = ReadUntilNotARead(d, base);
    ASSERT_TRUE(next.has_value()) << OpKindName(kind);
    EXPECT_EQ(next->kind, kind);
    EXPECT_EQ(next->payee_reference, ref);
    EXPECT_GE(d.now, doubt_at + d.policy.transit_horizon) << OpKindName(kind);
  }
  Driver a = InPhase(Phase::kAborting);
  ASSERT_EQ(a.last.calls.at(0).kind, OpKind::kAbort);
  const Time doubt_at = a.now;
  a.Apply(a.Result(ResultClass::kInDoubt));
  auto next = ReadUntilNotARead(a, {Driver::AuthTx(TxState::kAwaitingActivity)});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->kind, OpKind::kAbort);
  EXPECT_GE(a.now, doubt_at + a.policy.transit_horizon);
}

TEST(Decide, ALongHorizonStillEndsInAResentAuthorizationNotAnAbort) {
  // The reads that wait for the horizon must not use up the authorization's
  // resends: a POST that never reached PayEx is sent again, not given up.
  Driver d = InPhase(Phase::kAuthorizing);
  d.policy.transit_horizon = 15min;
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kAuthorize);
  const Time doubt_at = d.now;
  d.Apply(d.Result(ResultClass::kInDoubt));
  PayexResult empty = d.Snapshot(PaymentState::kReady, {});
  for (int i = 0; i < 60; ++i) {
    if (d.last.calls.empty()) {
      d.now = std::max(d.now, d.pay.due_at);
      d.Apply(Tick{});
      continue;
    }
    if (d.last.calls[0].kind != OpKind::kRead) break;
    empty.call_id = d.pay.in_flight.call_id;
    empty.snapshot->can_authorize = true;
    d.Apply(empty);
  }
  ASSERT_FALSE(d.last.calls.empty());
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kAuthorize);
  EXPECT_GE(d.now, doubt_at + d.policy.transit_horizon);
  EXPECT_EQ(d.pay.phase, Phase::kAuthorizing);
}

TEST(Decide, TheHorizonCountsFromTheLastAttemptNotTheFirst) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  d.Apply(d.Result(ResultClass::kInDoubt));
  auto resend = ReadUntilNotARead(d, {Driver::AuthTx(TxState::kCompleted)});
  ASSERT_TRUE(resend.has_value());
  const Time second_doubt = d.now;
  d.Apply(d.Result(ResultClass::kInDoubt));  // the resend is in doubt too
  auto third = ReadUntilNotARead(d, {Driver::AuthTx(TxState::kCompleted)});
  ASSERT_TRUE(third.has_value());
  EXPECT_GE(d.now, second_doubt + d.policy.transit_horizon);
}

TEST(Decide, ACallCarriesItsSendByAndTheWatchdogIsABackstopAfterIt) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].send_by, d.now + d.policy.call_watchdog);
  // The executor's own watchdog (from the send) answers by send_by + call_watchdog;
  // Decide gives up only after that.
  EXPECT_EQ(d.pay.due_at, d.now + 2 * d.policy.call_watchdog);
  d.now += d.policy.call_watchdog + 1s;
  d.Apply(Tick{});
  EXPECT_NE(d.pay.in_flight.call_id, 0u) << "given up while the executor may still send it";
  d.now = d.pay.due_at;
  d.Apply(Tick{});
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
  EXPECT_EQ(d.pay.ops.back().in_transit_until, d.now + d.policy.transit_horizon);
}

TEST(Decide, ResumeStartsTheHorizonAtTheRestart) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  d.now += 5s;  // the process died and came back
  d.Apply(Resume{});
  EXPECT_EQ(d.pay.ops.back().status, OpStatus::kInDoubt);
  EXPECT_EQ(d.pay.ops.back().in_transit_until, d.now + d.policy.transit_horizon);
}

TEST(Decide, InitializedTransactionStopsEverythingUntilItResolves) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  d.Apply(d.Tx(TxType::kCapture, TxState::kInitialized, 500, ref));
  EXPECT_TRUE(d.last.events.empty());
  d.Apply(d.Ev(OrderShipped{"s2", 100, 0, ""}));
  d.Apply(d.Ev(OrderCancelled{""}));
  EXPECT_TRUE(d.last.calls.empty());
  d.now = d.pay.due_at;
  d.Apply(Tick{});
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kRead);
  const Transaction tx = Driver::CaptureTx(ref, 500);
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted), tx}));
  EXPECT_EQ(Events(d.last), "captured");
  EXPECT_EQ(d.last.calls.at(0).kind, OpKind::kCapture);  // s2, then the cancel
}

TEST(Decide, DefiniteFailureIsReportedWithTheProblemType) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  d.Apply(d.Refused(400, "inputerror"));
  ASSERT_EQ(Events(d.last), "capture_failed/payex_problem");
  EXPECT_EQ(d.last.events[0].failure.payex_problem_type,
            "https://api.payex.com/psp/errordetail/inputerror");
  // The same shipment may be tried again; it gets a new payeeReference.
  std::string first = d.pay.ops.back().payee_reference;
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_NE(d.last.calls[0].payee_reference, first);
}

TEST(Decide, TransientFailureRetriesWithBackoffAndTheSameReference) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  Duration previous{0};
  for (int i = 0; i < 6; ++i) {
    d.Apply(d.Result(ResultClass::kTransient));
    EXPECT_TRUE(d.last.calls.empty());
    Duration wait = d.pay.due_at - d.now;
    EXPECT_GT(wait.count(), 0);
    EXPECT_LE(wait, d.policy.backoff_cap);
    if (i >= 2) {
      EXPECT_GE(wait * 2, previous / 2);  // grows, within the jitter
    }
    previous = wait;
    d.now = d.pay.due_at;
    d.Apply(Tick{});
    ASSERT_EQ(d.last.calls.size(), 1u);
    EXPECT_EQ(d.last.calls[0].payee_reference, ref);
  }
}

TEST(Decide, PayerTimeoutAbortsAndAnswersTimedOut) {
  Driver d = InPhase(Phase::kAwaitingPayer);
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  for (int i = 0; i < 100 && d.pay.phase == Phase::kAwaitingPayer; ++i) {
    d.now = d.pay.due_at;
    d.Apply(Tick{});
    if (!d.last.calls.empty() && d.last.calls[0].kind == OpKind::kRead)
      d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  }
  ASSERT_EQ(d.pay.phase, Phase::kAborting);
  EXPECT_GE(d.now, FromMillis(1'800'000'000'000) + d.policy.confirmation_timeout);
  d.Apply(d.Snapshot(PaymentState::kAborted, {}));
  EXPECT_EQ(Events(d.last), "authorization_failed/timed_out");
}

TEST(Decide, LateMsisdnIsAnsweredWithTheAuthorization) {
  Driver d = InPhase(Phase::kAwaitingMsisdn);
  d.Apply(d.Ev(PayerMsisdnProvided{"0047 987 65 432"}));
  EXPECT_EQ(d.last.calls.at(0).msisdn, "+4798765432");
  d.Apply(d.Tx(TxType::kAuthorization, TxState::kCompleted, 1500));
  ASSERT_EQ(Events(d.last), "authorized,authorized");
  EXPECT_EQ(d.last.events[0].caused_by_event_id, "e1");
  EXPECT_EQ(d.last.events[1].caused_by_event_id, "e2");
}

TEST(Decide, CancelWhileAuthorizingThenPayerApprovedCancelsTheAuthorization) {
  Driver d = InPhase(Phase::kAuthorizing);
  d.Apply(d.Ev(OrderCancelled{"x"}));
  d.Apply(d.Tx(TxType::kAuthorization, TxState::kCompleted, 1500));
  EXPECT_EQ(Events(d.last), "authorized");
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kCancel);
  Complete(d);
  EXPECT_EQ(Events(d.last), "cancelled");
  EXPECT_EQ(d.last.events[0].caused_by_event_id, "e2");
}

TEST(Decide, RefusedAbortMeansThePayerWonTheRace) {
  Driver d = InPhase(Phase::kAborting);
  d.Apply(d.Refused(403, "forbidden"));
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted)}));
  EXPECT_EQ(Events(d.last), "authorized");
  EXPECT_EQ(d.last.calls.at(0).kind, OpKind::kCancel);
}

TEST(Decide, LostCreateIsRetriedWithANewReferenceAndADuplicateGetsANewOneToo) {
  Driver d = InPhase(Phase::kCreating);
  std::string first = d.last.calls.at(0).payee_reference;
  d.Apply(d.Result(ResultClass::kInDoubt));
  d.now = d.pay.due_at;
  d.Apply(Tick{});
  // The lost create may exist at PayEx (unreachable, never authorized): the next
  // one never repeats its reference.
  std::string ref = d.last.calls.at(0).payee_reference;
  ASSERT_NE(ref, first);
  PayexResult dup = d.Refused(400, "inputerror");
  dup.problem->problems.push_back({"PayeeInfo.PayeeReference", "already used"});
  d.Apply(dup);
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_NE(d.last.calls[0].payee_reference, ref);
  EXPECT_EQ(d.pay.phase, Phase::kCreating);
}

TEST(Decide, CallbackDuringAReadCoalescesIntoOneMoreRead) {
  Driver d = InPhase(Phase::kAwaitingPayer);  // a read is in flight
  d.Apply(CallbackHint{});
  d.Apply(CallbackHint{});
  EXPECT_TRUE(d.last.calls.empty());
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  ASSERT_EQ(d.last.calls.size(), 1u);  // exactly one more
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  EXPECT_TRUE(d.last.calls.empty());
}

TEST(Decide, ShipmentAndRefundIdsThatCouldNotTravelAreRejected) {
  for (const std::string& bad : {std::string(), std::string(129, 's'), std::string("s 1"),
                                 std::string("s\x1b[31m"), std::string(100 * 1024, 's')}) {
    Driver d = Authorized();
    d.Apply(d.Ev(OrderShipped{bad, 500, 0, ""}));
    EXPECT_EQ(Events(d.last), "rejected/invalid_shipment_id") << bad.size();
    EXPECT_TRUE(d.last.calls.empty());
    d.Apply(d.Ev(RefundRequested{bad, 100, 0, ""}));
    EXPECT_EQ(Events(d.last), "rejected/invalid_refund_id") << bad.size();
  }
  Driver ok = Authorized();
  ok.Apply(ok.Ev(OrderShipped{std::string(128, 's'), 500, 0, ""}));
  EXPECT_EQ(ok.last.calls.size(), 1u);
}

TEST(Decide, ValidationRejectsEachBadPurchase) {
  struct Case {
    std::function<void(PurchaseRequested&)> mutate;
    const char* code;
  };
  std::vector<Case> cases = {
      {[](auto& p) { p.amount = 0; }, code::kInvalidAmount},
      {[](auto& p) { p.amount = -5; }, code::kInvalidAmount},
      {[](auto& p) { p.vat_amount = -1; }, code::kInvalidVatAmount},
      {[](auto& p) { p.vat_amount = p.amount + 1; }, code::kInvalidVatAmount},
      {[](auto& p) { p.currency = "SEK"; }, code::kInvalidCurrency},
      {[](auto& p) { p.currency = ""; }, code::kInvalidCurrency},
      {[](auto& p) { p.description = ""; }, code::kInvalidDescription},
      {[](auto& p) { p.description = std::string(41, 'a'); }, code::kInvalidDescription},
      {[](auto& p) { p.description = "\xff\xfe"; }, code::kInvalidDescription},
      {[](auto& p) { p.msisdn = "+4612345678"; }, code::kInvalidMsisdn},
      {[](auto& p) { p.msisdn = "1234567"; }, code::kInvalidMsisdn},
      {[](auto& p) { p.language = "de-DE"; }, code::kInvalidLanguage},
      {[](auto& p) { p.description = "Sykkel\x1b[2J"; }, code::kInvalidDescription},
      {[](auto& p) { p.description = "two\nlines"; }, code::kInvalidDescription},
      {[](auto& p) { p.user_agent = std::string(1024 * 1024, 'M'); }, code::kInvalidUserAgent},
      {[](auto& p) { p.user_agent = "Mozilla\x07"; }, code::kInvalidUserAgent},
      {[](auto& p) { p.payer_reference = std::string(51, 'p'); }, code::kInvalidPayerReference},
      {[](auto& p) { p.payer_reference = "p\x1b"; }, code::kInvalidPayerReference},
  };
  for (const auto& c : cases) {
    Driver d;
    PurchaseRequested p = Driver::Purchase();
    c.mutate(p);
    d.Apply(d.Ev(p));
    EXPECT_EQ(Events(d.last), std::string("rejected/") + c.code);
    EXPECT_EQ(d.pay.phase, Phase::kNew);
  }
  Driver ok;
  PurchaseRequested p = Driver::Purchase();
  p.description = std::string(20, 'a') + "æøåÆØÅæøåÆØÅæøåÆØÅæø";  // 40 characters, 60 bytes
  ok.Apply(ok.Ev(p));
  EXPECT_EQ(ok.pay.phase, Phase::kCreating);
}

TEST(Decide, RefusedResendAfterDoubtIsReadNotFailed) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  d.Apply(d.Result(ResultClass::kInDoubt));
  auto resend = ReadUntilNotARead(d, {Driver::AuthTx(TxState::kCompleted)});
  ASSERT_TRUE(resend.has_value());
  ASSERT_EQ(resend->payee_reference, ref);  // no trace after the horizon: same reference
  // The first POST landed meanwhile; PayEx refuses the resend as a duplicate.
  PayexResult dup = d.Refused(400, "inputerror");
  dup.problem->problems.push_back({"Transaction.PayeeReference", "already used"});
  d.Apply(dup);
  EXPECT_TRUE(d.last.events.empty()) << "must not answer capture_failed";
  ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
  const Transaction tx = Driver::CaptureTx(ref, 500);
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kCompleted), tx}));
  EXPECT_EQ(Events(d.last), "captured");
  EXPECT_EQ(d.pay.balance.captured, 500);
}

TEST(Decide, CancelWhileAuthorizingNeverSendsTheAuthorizationAgain) {
  Driver d = InPhase(Phase::kAuthorizing);
  d.Apply(d.Ev(OrderCancelled{"x"}));
  d.Apply(d.Result(ResultClass::kTransient));  // the POST never reached PayEx
  d.now = d.pay.due_at;                        // its retry comes due
  d.Apply(Tick{});
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kAbort);
  d.Apply(d.Snapshot(PaymentState::kAborted, {}));
  EXPECT_EQ(Events(d.last), "authorization_failed/aborted,aborted");
}

TEST(Decide, InitializedIsReadEverMoreSlowly) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderShipped{"s1", 500, 0, ""}));
  std::string ref = d.last.calls.at(0).payee_reference;
  d.Apply(d.Tx(TxType::kCapture, TxState::kInitialized, 500, ref));
  const Transaction tx = Driver::CaptureTx(ref, 500, TxState::kInitialized);
  Duration previous{0};
  for (int i = 0; i < 12; ++i) {
    Duration wait = d.pay.due_at - d.now;
    EXPECT_GE(wait, previous);
    EXPECT_LE(wait, d.policy.slow_poll);
    previous = wait;
    d.now = d.pay.due_at;
    d.Apply(Tick{});
    ASSERT_EQ(d.last.calls.at(0).kind, OpKind::kRead);
    d.Apply(d.Snapshot(PaymentState::kPending, {Driver::AuthTx(TxState::kCompleted), tx}));
  }
  EXPECT_EQ(previous, d.policy.slow_poll);
}

TEST(Decide, AuthorizationInitializedBlocksTheDeadlineAbort) {
  Driver d = InPhase(Phase::kAwaitingPayer);
  d.Apply(d.Snapshot(PaymentState::kPending, {Driver::AuthTx(TxState::kInitialized)}));
  d.Apply(d.Ev(OrderCancelled{"x"}));
  for (int i = 0; i < 20; ++i) {
    d.now = d.pay.due_at;
    d.Apply(Tick{});
    for (const auto& c : d.last.calls) ASSERT_EQ(c.kind, OpKind::kRead);
    if (!d.last.calls.empty())
      d.Apply(d.Snapshot(PaymentState::kPending, {Driver::AuthTx(TxState::kInitialized)}));
  }
  EXPECT_GT(d.now, FromMillis(1'800'000'000'000) + d.policy.confirmation_timeout);
  // PayEx settles it: the abort may go now.
  d.now = d.pay.due_at;
  d.Apply(Tick{});
  d.Apply(d.Snapshot(PaymentState::kReady, {Driver::AuthTx(TxState::kAwaitingActivity)}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_EQ(d.last.calls[0].kind, OpKind::kAbort);
}

TEST(Decide, AFailedCancelMayBeRequestedAgain) {
  Driver d = Authorized();
  d.Apply(d.Ev(OrderCancelled{""}));
  std::string first = d.last.calls.at(0).payee_reference;
  d.Apply(d.Refused(502, "bad_gateway_but_definite"));
  EXPECT_EQ(Events(d.last), "cancel_failed/payex_problem");
  d.Apply(d.Ev(OrderCancelled{""}));
  ASSERT_EQ(d.last.calls.size(), 1u);
  EXPECT_NE(d.last.calls[0].payee_reference, first);
  Complete(d);
  EXPECT_EQ(Events(d.last), "cancelled");
}

TEST(Decide, PaymentFailedAtPayExEndsTheAuthorization) {
  Driver d = InPhase(Phase::kAwaitingPayer);
  d.Apply(d.Snapshot(PaymentState::kFailed, {}));
  EXPECT_EQ(Events(d.last), "authorization_failed/payex_problem");
}

TEST(Decide, CancelWhileCreateWaitsInBackoffAbortsWithoutPayEx) {
  Driver d = InPhase(Phase::kCreating);
  d.Apply(d.Result(ResultClass::kTransient));
  d.Apply(d.Ev(OrderCancelled{"x"}));
  EXPECT_TRUE(d.last.calls.empty());
  EXPECT_EQ(Events(d.last), "authorization_failed/aborted,aborted");
}

TEST(Decide, IsPureSameInputsSameDecision) {
  Driver a = InPhase(Phase::kAuthorized);
  Driver b = InPhase(Phase::kAuthorized);
  Decision da = a.Apply(a.Ev(OrderShipped{"s1", 500, 0, ""}));
  Decision db = b.Apply(b.Ev(OrderShipped{"s1", 500, 0, ""}));
  ASSERT_EQ(da.calls.size(), 1u);
  EXPECT_EQ(da.calls[0].payee_reference, db.calls[0].payee_reference);
  EXPECT_EQ(da.next.due_at, db.next.due_at);
  EXPECT_EQ(da.note, db.note);
  EXPECT_TRUE(da == db);
}

}  // namespace
}  // namespace payorch::domain
