// The payment state machine. One call in flight per payment at a time: every
// PayEx call is committed as in flight (with its payeeReference) before it is
// made, its outcome comes back as an input, and whatever is unknown is resolved by
// reading PayEx before anything new is sent. See design.md §2 and contract.md.
#include <algorithm>
#include <functional>

#include "domain/decide.hpp"

namespace payorch::domain {
namespace {

constexpr const char* kExpandAll = "authorizations,captures,cancellations,reversals";
// Create attempts (each with its own reference) before a purchase fails: a guard
// against a PayEx that calls every reference a duplicate.
constexpr uint32_t kMaxCreateAttempts = 64;
// Authorization POSTs sent again after no trace was found (Op::attempt counts them;
// an authorization has no payeeReference of its own): then the payment is aborted.
// Reads spent waiting for the transit horizon do not count.
constexpr uint32_t kMaxAuthorizeResends = 4;
constexpr uint32_t kMaxAbortRefusals = 10;
// Op::failure_code while a refused resend is being checked by reading.
constexpr const char* kRefusedMark = "refused:";
constexpr const char* kDuplicateMark = "duplicate:";

bool IsOpen(OpStatus s) {
  return s != OpStatus::kDone && s != OpStatus::kFailed;
}

bool NeedsAuthorization(OpKind k) {
  return k == OpKind::kCapture || k == OpKind::kCancel || k == OpKind::kReverse;
}

// Last path segment of a problem type, lower-cased, without '_' (api §10.3).
std::string ProblemKey(const std::string& type) {
  std::string last =
      type.substr(type.find_last_of('/') == std::string::npos ? 0 : type.find_last_of('/') + 1);
  std::string out;
  for (char c : last) {
    if (c == '_') continue;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  return out;
}

bool ContainsNoCase(const std::string& hay, const std::string& needle) {
  auto lower = [](std::string s) {
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  };
  return lower(hay).find(lower(needle)) != std::string::npos;
}

bool IsDuplicateReference(const Problem& problem) {
  if (ContainsNoCase(problem.type, "duplicate")) return true;
  for (const auto& [name, description] : problem.problems)
    if (ContainsNoCase(name, "payeereference")) return true;
  return false;
}

class Machine {
 public:
  Machine(const Policy& policy, const Payment& current, Time now) : policy_(policy), now_(now) {
    d_.next = current;
  }

  Decision Run(const Input& input) {
    std::visit([this](const auto& in) { On(in); }, input);
    CheckDeadline();
    Pump();
    FinishDue();
    p().updated_at = now_;
    if (d_.note.empty()) d_.note = std::string(InputName(input));
    return std::move(d_);
  }

 private:
  Payment& p() { return d_.next; }

  void Note(const std::string& line) {
    if (!d_.note.empty()) d_.note += "; ";
    d_.note += line;
  }

  // ---- events --------------------------------------------------------------

  PaymentEvent& Emit(EventKind kind, const std::string& caused_by) {
    PaymentEvent ev;
    ev.order_id = p().order_id;
    ev.sequence = ++p().last_sequence;
    ev.event_id = PaymentEventId(p().order_id, ev.sequence);
    ev.payment_id = p().payment_id;
    ev.occurred_at = now_;
    ev.caused_by_event_id = caused_by;
    ev.balance = p().balance;
    ev.kind = kind;
    d_.events.push_back(std::move(ev));
    return d_.events.back();
  }

  void EmitFailure(EventKind kind, const std::string& caused_by, const std::string& code,
                   const std::string& message, const std::string& problem_type = "") {
    PaymentEvent& ev = Emit(kind, caused_by);
    ev.failure = Failure{code, message, problem_type};
    Note(std::string(EventKindName(kind)) + " " + code);
  }

  void Reject(const OrderEvent& ev, const std::string& code, const std::string& message) {
    EmitFailure(EventKind::kRejected, ev.event_id, code, message);
  }

  // ---- order events ---------------------------------------------------------

  void On(const OrderEvent& ev) {
    d_.accepted_event = true;
    if (p().order_id.empty()) p().order_id = ev.order_id;
    Note(std::string("event ") + OrderEventKindName(ev.kind) + " " + ev.event_id);
    std::visit([&](const auto& kind) { OnOrder(ev, kind); }, ev.kind);
  }

  // The event's own fields (order_rules.hpp); false when it was rejected for them.
  bool Usable(const OrderEvent& ev, const std::optional<Rejection>& problem) {
    if (!problem) return true;
    Reject(ev, problem->code, problem->message);
    return false;
  }

  void OnOrder(const OrderEvent& ev, const PurchaseRequested& pr) {
    if (p().phase != Phase::kNew) {
      Reject(ev, code::kDuplicatePurchase, "this order already has a purchase");
      return;
    }
    if (!Usable(ev, CheckPurchase(pr))) return;
    std::string msisdn;
    if (!pr.msisdn.empty()) {
      auto normalized = NormalizeMsisdn(pr.msisdn);
      if (!normalized) {
        Reject(ev, code::kInvalidMsisdn, "msisdn must be a Norwegian number: +47 and 8 digits");
        return;
      }
      msisdn = *normalized;
    }
    Payment& pay = p();
    pay.purchase = pr;
    pay.purchase.msisdn.clear();  // kept once, normalized, in pay.msisdn
    if (pay.purchase.language.empty()) pay.purchase.language = "nb-NO";
    if (pay.purchase.user_agent.empty()) pay.purchase.user_agent = "payorch";
    pay.purchase_event_id = ev.event_id;
    pay.msisdn = msisdn;
    pay.created_at = now_;
    pay.phase = Phase::kCreating;
    Op& op = AddOp(OpKind::kCreate, ev.event_id);
    op.amount = pr.amount;
    op.vat_amount = pr.vat_amount;
    op.description = pr.description;
    op.payee_reference = PayeeReference(pay.order_id, OpKind::kCreate, "", 0);
  }

  void OnOrder(const OrderEvent& ev, const PayerMsisdnProvided& m) {
    Payment& pay = p();
    if (pay.phase == Phase::kNew) {
      Reject(ev, code::kUnknownOrder, "no purchase for this order");
      return;
    }
    auto normalized = NormalizeMsisdn(m.msisdn);
    if (!normalized) {
      Reject(ev, code::kInvalidMsisdn, "msisdn must be a Norwegian number: +47 and 8 digits");
      return;
    }
    if (pay.cancel_requested || pay.phase == Phase::kAborting || pay.phase == Phase::kFailed ||
        pay.phase == Phase::kAborted) {
      Reject(ev, code::kPaymentClosed, "the payment is cancelled or has ended");
      return;
    }
    if (!pay.msisdn.empty() || pay.phase == Phase::kAuthorized) {
      Reject(ev, code::kMsisdnAlreadyProvided, "the payer's number was already given");
      return;
    }
    pay.msisdn = *normalized;
    pay.msisdn_event_id = ev.event_id;
    Note("msisdn " + MaskMsisdn(pay.msisdn));
    if (pay.phase == Phase::kAwaitingMsisdn) StartAuthorization();
    // kCreating: the authorization follows the creation.
  }

  int64_t OpenAmount(OpKind kind) const {
    int64_t sum = 0;
    for (const Op& op : d_.next.ops)
      if (op.kind == kind && IsOpen(op.status)) sum += op.amount;
    return sum;
  }

  bool RefUsed(OpKind kind, const std::string& ref_id) const {
    for (const Op& op : d_.next.ops)
      if (op.kind == kind && op.ref_id == ref_id && op.status != OpStatus::kFailed) return true;
    return false;
  }

  uint32_t NextAttempt(OpKind kind, const std::string& ref_id) const {
    uint32_t n = 0;
    for (const Op& op : d_.next.ops)
      if (op.kind == kind && op.ref_id == ref_id) n = std::max(n, op.attempt + 1);
    return n;
  }

  bool Authorized() const { return d_.next.phase == Phase::kAuthorized; }

  void OnOrder(const OrderEvent& ev, const OrderShipped& s) {
    Payment& pay = p();
    if (pay.phase == Phase::kNew) {
      Reject(ev, code::kUnknownOrder, "no purchase for this order");
      return;
    }
    if (!Usable(ev, CheckShipment(s))) return;
    if (RefUsed(OpKind::kCapture, s.shipment_id)) {
      Reject(ev, code::kDuplicateShipment, "this shipment_id was already captured or is pending");
      return;
    }
    if (pay.phase == Phase::kFailed || pay.phase == Phase::kAborted) {
      EmitFailure(EventKind::kCaptureFailed, ev.event_id, code::kNotAuthorized,
                  "the payment was never authorized");
      return;
    }
    if (pay.cancel_requested) {
      Reject(ev, code::kOrderCancelled, "the order was cancelled");
      return;
    }
    int64_t base = Authorized() ? pay.balance.authorized : pay.purchase.amount;
    int64_t remaining =
        base - pay.balance.captured - pay.balance.cancelled - OpenAmount(OpKind::kCapture);
    if (s.amount > remaining) {
      Reject(ev, code::kAmountExceedsRemaining,
             "capture of " + std::to_string(s.amount) + " exceeds the remaining " +
                 std::to_string(std::max<int64_t>(remaining, 0)));
      return;
    }
    Op& op = AddOp(OpKind::kCapture, ev.event_id);
    op.ref_id = s.shipment_id;
    op.attempt = NextAttempt(OpKind::kCapture, s.shipment_id);
    op.amount = s.amount;
    op.vat_amount = s.vat_amount;
    op.description = s.description.empty() ? pay.purchase.description : s.description;
    op.payee_reference = PayeeReference(pay.order_id, OpKind::kCapture, op.ref_id, op.attempt);
    op.status = Authorized() ? OpStatus::kQueued : OpStatus::kWaiting;
  }

  void OnOrder(const OrderEvent& ev, const OrderCancelled& c) {
    Payment& pay = p();
    if (pay.phase == Phase::kNew) {
      Reject(ev, code::kUnknownOrder, "no purchase for this order");
      return;
    }
    const Op* last_cancel = nullptr;
    for (const Op& op : pay.ops)
      if (op.kind == OpKind::kCancel) last_cancel = &op;
    bool retry_failed_cancel =
        pay.phase == Phase::kAuthorized && last_cancel && last_cancel->status == OpStatus::kFailed;
    if (pay.cancel_requested && !retry_failed_cancel) {
      Reject(ev, code::kOrderCancelled, "the order is already cancelled");
      return;
    }
    switch (pay.phase) {
      case Phase::kFailed:
      case Phase::kAborted: {
        PaymentEvent& out = Emit(EventKind::kAborted, ev.event_id);
        out.reason = "nothing was authorized; nothing to abort";
        Note("aborted (no-op)");
        return;
      }
      case Phase::kAuthorized: {
        pay.cancel_requested = true;
        AddCancelOp(ev.event_id, CancelDescription(c.reason));
        return;
      }
      default: break;
    }
    // Not authorized (yet): abort. The purchase is answered authorization_failed
    // (aborted) and this event by `aborted`, unless the payer turns out to have
    // approved first, in which case the authorization is cancelled instead.
    pay.cancel_requested = true;
    pay.cancel_event_id = ev.event_id;
    if (pay.abort_cause == AbortCause::kNone) pay.abort_cause = AbortCause::kCancelled;
    // The free reason travels to PayEx (the abort's description), into the store and
    // into the `aborted` event: bounded and plain like the cancel path's.
    pay.cancel_reason = c.reason.empty() ? std::string() : CancelDescription(c.reason);
    switch (pay.phase) {
      case Phase::kAwaitingMsisdn:
      case Phase::kAwaitingPayer: StartAbort(); break;
      case Phase::kAuthorizing: {
        // An authorization POST not yet sent is dropped; one in flight is awaited.
        Op* auth = FindOpenOp(OpKind::kAuthorize);
        if (auth && auth->status == OpStatus::kQueued) {
          auth->status = OpStatus::kFailed;
          auth->failure_code = code::kAborted;
          StartAbort();
        }
        break;
      }
      case Phase::kCreating: {
        // A create waiting in backoff is dropped: no PayEx payment to abort (a
        // lost earlier attempt, if any, was never authorized). One in flight is
        // awaited, and the payment aborted once it exists.
        Op* create = FindOpenOp(OpKind::kCreate);
        if (create && create->status == OpStatus::kQueued) {
          create->status = OpStatus::kFailed;
          create->failure_code = code::kAborted;
          Aborted();
        }
        break;
      }
      default:  // kAborting: handled when the running call ends
        break;
    }
  }

  void OnOrder(const OrderEvent& ev, const RefundRequested& r) {
    Payment& pay = p();
    if (pay.phase == Phase::kNew) {
      Reject(ev, code::kUnknownOrder, "no purchase for this order");
      return;
    }
    if (!Usable(ev, CheckRefund(r))) return;
    if (RefUsed(OpKind::kReverse, r.refund_id)) {
      Reject(ev, code::kDuplicateRefund, "this refund_id was already reversed or is pending");
      return;
    }
    // Captures accepted but not yet done count: the reversal queues behind them
    // and is checked again against what was really captured when its turn comes.
    int64_t reversible = pay.balance.captured + OpenAmount(OpKind::kCapture) -
                         pay.balance.reversed - OpenAmount(OpKind::kReverse);
    if (r.amount > reversible) {
      Reject(ev, code::kAmountExceedsRemaining,
             "refund of " + std::to_string(r.amount) + " exceeds the reversible " +
                 std::to_string(std::max<int64_t>(reversible, 0)));
      return;
    }
    Op& op = AddOp(OpKind::kReverse, ev.event_id);
    op.ref_id = r.refund_id;
    op.attempt = NextAttempt(OpKind::kReverse, r.refund_id);
    op.amount = r.amount;
    op.vat_amount = r.vat_amount;
    op.description = r.description.empty() ? "Refund" : r.description;
    op.payee_reference = PayeeReference(pay.order_id, OpKind::kReverse, op.ref_id, op.attempt);
    op.status = Authorized() ? OpStatus::kQueued : OpStatus::kWaiting;
  }

  // ---- operations -----------------------------------------------------------

  Op& AddOp(OpKind kind, const std::string& caused_by) {
    Op op;
    op.id = static_cast<uint32_t>(p().ops.size() + 1);
    op.kind = kind;
    op.caused_by = caused_by;
    op.status = OpStatus::kQueued;
    p().ops.push_back(std::move(op));
    return p().ops.back();
  }

  Op* FindOp(uint32_t id) {
    if (id == 0 || id > p().ops.size()) return nullptr;
    return &p().ops[id - 1];
  }

  // The first operation whose outcome is unknown or Initialized at PayEx: while
  // there is one, only reads go out.
  Op* FirstUnresolved() {
    for (Op& op : p().ops)
      if (op.status == OpStatus::kInDoubt || op.status == OpStatus::kPending) return &op;
    return nullptr;
  }

  // Until when an earlier attempt of `op` may still land at PayEx. A payment
  // stored before the horizon was kept per operation has only its doubt_since.
  Time TransitUntil(const Op& op) const {
    if (op.in_transit_until != Time{}) return op.in_transit_until;
    if (d_.next.doubt_since != Time{}) return d_.next.doubt_since + policy_.transit_horizon;
    return Time{};
  }

  // Judged by when the read that saw no trace was decided (it left, and PayEx took
  // its snapshot, at or after that), not by when its answer came back: a slow read
  // sent before the horizon proves nothing about what landed after it.
  bool MayStillLand(const Op& op) const { return read_at_ < TransitUntil(op); }

  // No trace at PayEx yet, but an earlier attempt may still be on its way: keep
  // reading, and read once more as soon as the horizon has passed.
  void KeepReadingUntilHorizon(Op& op) {
    op.not_before = std::min(op.not_before, TransitUntil(op));
    Note(std::string(OpKindName(op.kind)) + " not found at PayEx yet: reading until " +
         std::to_string(ToMillis(TransitUntil(op))));
  }

  Op* FindOpenOp(OpKind kind) {
    for (Op& op : p().ops)
      if (op.kind == kind && IsOpen(op.status)) return &op;
    return nullptr;
  }

  // A cancellation of what remains authorized; a new payeeReference per attempt,
  // since a cancel is only requested again after a definite failure.
  void AddCancelOp(const std::string& caused_by, const std::string& description) {
    uint32_t attempt = NextAttempt(OpKind::kCancel, "");
    Op& op = AddOp(OpKind::kCancel, caused_by);
    op.description = description;
    op.attempt = attempt;
    op.payee_reference = PayeeReference(p().order_id, OpKind::kCancel, "", attempt);
  }

  void StartAuthorization() {
    p().phase = Phase::kAuthorizing;
    p().deadline = Time{};
    AddOp(OpKind::kAuthorize, p().purchase_event_id);
  }

  void StartAbort() {
    Payment& pay = p();
    pay.phase = Phase::kAborting;
    pay.next_poll_at = Time{};
    if (FindOpenOp(OpKind::kAbort)) return;
    Op& op = AddOp(OpKind::kAbort, pay.cancel_event_id);
    op.description = !pay.cancel_reason.empty()                  ? pay.cancel_reason
                     : pay.abort_cause == AbortCause::kCancelled ? "order cancelled"
                                                                 : "payer did not confirm in time";
  }

  Duration Jittered(Duration cap, uint64_t salt) const {
    // Full jitter, made deterministic from the order and the attempt so the
    // decision stays a pure function of its inputs.
    uint64_t h = 1469598103934665603ull ^ salt;
    for (char c : d_.next.order_id) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    auto ms = cap.count();
    if (ms <= 1) return cap;
    return Duration(static_cast<int64_t>(ms / 2 + h % static_cast<uint64_t>(ms / 2 + 1)));
  }

  Duration Backoff(uint32_t tries, uint64_t salt) const {
    Duration cap = policy_.backoff_base;
    for (uint32_t i = 1; i < tries && cap < policy_.backoff_cap; ++i) cap *= 2;
    cap = std::min(cap, policy_.backoff_cap);
    return Jittered(cap, salt * 31 + tries);
  }

  Duration ReadBackoff(uint32_t reads, Duration start, Duration cap) const {
    Duration d = start;
    for (uint32_t i = 1; i < reads && d < cap; ++i) d *= 2;
    return std::min(d, cap);
  }

  void IssueCall(PayexCall call, uint32_t op_id) {
    Payment& pay = p();
    call.call_id = ++pay.last_call_id;
    call.op_id = op_id;
    call.order_id = pay.order_id;
    call.payment_id = pay.payment_id;
    pay.in_flight = InFlight{call.call_id, op_id, now_};
    // A read may leave whenever (its late answer is stale and ignored); anything
    // else must not leave after the state machine could have stopped waiting.
    if (call.kind != OpKind::kRead) call.send_by = now_ + policy_.call_watchdog;
    Note(std::string("call ") + OpKindName(call.kind) + " #" + std::to_string(call.call_id));
    d_.calls.push_back(std::move(call));
  }

  void IssueRead() {
    PayexCall call;
    call.kind = OpKind::kRead;
    call.expand = kExpandAll;
    p().read_wanted = false;
    IssueCall(std::move(call), 0);
  }

  // Starts a queued op. Returns false when it was settled without a call.
  bool StartOp(Op& op) {
    Payment& pay = p();
    const Balance& b = pay.balance;
    PayexCall call;
    call.kind = op.kind;
    call.payee_reference = op.payee_reference;
    call.description = op.description;
    switch (op.kind) {
      case OpKind::kCreate:
        call.amount = pay.purchase.amount;
        call.vat_amount = pay.purchase.vat_amount;
        call.purchase = pay.purchase;
        break;
      case OpKind::kAuthorize:
        if (pay.cancel_requested) {
          // Never push a request to the payer's phone for a cancelled order.
          op.status = OpStatus::kFailed;
          op.failure_code = code::kAborted;
          StartAbort();  // invalidates `op`
          return false;
        }
        call.msisdn = pay.msisdn;
        break;
      case OpKind::kCapture:
        if (op.amount > b.authorized - b.captured - b.cancelled) {
          FailOp(op, code::kAmountExceedsRemaining, "exceeds what remains authorized", "");
          return false;
        }
        call.amount = op.amount;
        call.vat_amount = op.vat_amount;
        break;
      case OpKind::kCancel: {
        int64_t remaining = b.authorized - b.captured - b.cancelled;
        if (remaining <= 0) {
          op.status = OpStatus::kDone;
          op.amount = 0;
          PaymentEvent& ev = Emit(EventKind::kCancelled, op.caused_by);
          ev.amount = 0;
          Note("cancelled: nothing remained to cancel");
          return false;
        }
        op.amount = remaining;
        call.amount = remaining;
        break;
      }
      case OpKind::kReverse:
        if (op.amount > b.captured - b.reversed) {
          FailOp(op, code::kAmountExceedsRemaining, "exceeds what was captured and not reversed",
                 "");
          return false;
        }
        call.amount = op.amount;
        call.vat_amount = op.vat_amount;
        break;
      case OpKind::kAbort: call.abort_reason = "CancelledByConsumer"; break;
      case OpKind::kRead: break;
    }
    op.status = OpStatus::kInFlight;
    IssueCall(std::move(call), op.id);
    return true;
  }

  // Chooses what runs next when nothing is in flight. Order: resolve doubt first
  // (nothing new while an outcome is unknown or Initialized), then the payer's
  // polls, then queued operations in the order they were accepted.
  void Pump() {
    for (int guard = 0; guard < 256; ++guard) {
      Payment& pay = p();
      if (pay.in_flight.call_id != 0) return;
      if (Op* doubt = FirstUnresolved()) {
        if (pay.doubt_since == Time{}) pay.doubt_since = now_;
        if (pay.read_wanted || now_ >= doubt->not_before) {
          ++doubt->doubt_reads;
          Duration start =
              doubt->status == OpStatus::kPending ? policy_.first_poll * 2 : policy_.first_poll;
          doubt->not_before = now_ + ReadBackoff(doubt->doubt_reads, start, policy_.slow_poll);
          IssueRead();
        }
        return;
      }
      pay.doubt_since = Time{};
      if (pay.phase == Phase::kAwaitingPayer) {
        if (pay.read_wanted || now_ >= pay.next_poll_at) {
          ++pay.polls;
          pay.next_poll_at = now_ + ReadBackoff(pay.polls, policy_.first_poll, policy_.poll_max);
          IssueRead();
        }
        return;
      }
      pay.read_wanted = false;
      Op* next = nullptr;
      for (Op& op : pay.ops)
        if (op.status == OpStatus::kQueued) {
          next = &op;
          break;
        }
      // Never a second attempt while an earlier one may still land (the read
      // path waits for the horizon already; this holds whatever queued it).
      if (!next || std::max(next->not_before, next->in_transit_until) > now_) return;
      if (StartOp(*next)) return;
    }
  }

  void Wake(Time t, Time& due) const {
    if (t == Time{}) return;
    if (due == Time{} || t < due) due = t;
  }

  void FinishDue() {
    Payment& pay = p();
    Time due{};
    if (pay.in_flight.call_id != 0) {
      Wake(WatchdogAt(), due);
    } else {
      const Op* doubt = FirstUnresolved();
      if (doubt) {
        Wake(doubt->not_before, due);
      } else if (pay.phase == Phase::kAwaitingPayer) {
        Wake(pay.next_poll_at, due);  // queued operations wait for the payer (Pump)
      } else {
        for (const Op& op : pay.ops)
          if (op.status == OpStatus::kQueued) {
            Wake(std::max({op.not_before, op.in_transit_until, now_}), due);
            break;
          }
      }
    }
    if ((pay.phase == Phase::kAwaitingPayer || pay.phase == Phase::kAwaitingMsisdn) &&
        pay.deadline > now_)
      Wake(pay.deadline, due);
    pay.due_at = due;
  }

  // ---- outcomes -------------------------------------------------------------

  void On(const PayexResult& r) {
    Payment& pay = p();
    if (r.call_id == 0 || r.call_id != pay.in_flight.call_id) {
      Note("stale result for call #" + std::to_string(r.call_id) + " ignored");
      return;
    }
    uint32_t op_id = pay.in_flight.op_id;
    const Time read_decided_at = pay.in_flight.sent_at;
    pay.in_flight = InFlight{};
    Note(std::string("result #") + std::to_string(r.call_id) + " " + ResultClassName(r.result));
    if (op_id == 0) {
      read_at_ = read_decided_at;
      OnReadResult(r);
      return;
    }
    Op* op = FindOp(op_id);
    if (!op || op->status != OpStatus::kInFlight) return;
    switch (r.result) {
      case ResultClass::kTransient:
        ++op->transient_tries;
        op->status = OpStatus::kQueued;
        op->not_before = now_ + Backoff(op->transient_tries, op->id);
        return;
      case ResultClass::kInDoubt: OnInDoubt(*op); return;
      case ResultClass::kDefiniteFailure:
        OnDefiniteFailure(*op, r.problem.value_or(Problem{}));
        return;
      case ResultClass::kSuccess: OnSuccess(*op, r); return;
    }
  }

  void OnInDoubt(Op& op) {
    Payment& pay = p();
    if (op.kind == OpKind::kCreate) {
      // A lost create cannot be looked up (its id never reached us), so it is
      // created again. A payment moves no money, and the one that may exist is
      // never authorized; it gets a reference of its own, since PayEx wants every
      // payeeReference unique and does not say what it does with a repeated one.
      ++op.attempt;
      op.payee_reference = PayeeReference(pay.order_id, OpKind::kCreate, "", op.attempt);
      ++op.transient_tries;
      op.status = OpStatus::kQueued;
      op.not_before = now_ + Backoff(op.transient_tries, op.id);
      return;
    }
    op.status = OpStatus::kInDoubt;
    op.not_before = now_;  // read at once
    // The attempt left at or before now: it may still land until the horizon.
    op.in_transit_until = std::max(op.in_transit_until, now_ + policy_.transit_horizon);
    if (pay.doubt_since == Time{}) pay.doubt_since = now_;
    Note(std::string(OpKindName(op.kind)) + " in doubt");
  }

  static std::string DescribeProblem(const Problem& pr) {
    std::string s = pr.title.empty() ? pr.type : pr.title;
    if (!pr.detail.empty()) s += ": " + pr.detail;
    // Into events, the store and logs: masked and bounded whatever the source.
    return s.empty() ? "PayEx refused the request" : SafeDetail(s);
  }

  void OnDefiniteFailure(Op& op, const Problem& problem) {
    Payment& pay = p();
    switch (op.kind) {
      case OpKind::kCreate:
        if (IsDuplicateReference(problem) && op.attempt + 1 < kMaxCreateAttempts) {
          // An earlier create with this reference took effect but its answer was
          // lost: that payment is unreachable and never authorized. Use a new one.
          ++op.attempt;
          op.payee_reference = PayeeReference(pay.order_id, OpKind::kCreate, "", op.attempt);
          op.status = OpStatus::kQueued;
          Note("create: duplicate payeeReference, new attempt");
          return;
        }
        op.status = OpStatus::kFailed;
        op.failure_code = code::kPayexProblem;
        if (pay.cancel_requested) {
          Aborted();  // cancelled meanwhile: answered as a cancellation
          return;
        }
        AuthorizationFailed(code::kPayexProblem,
                            "PayEx refused to create the payment: " + DescribeProblem(problem),
                            problem.type);
        return;
      case OpKind::kAuthorize: {
        std::string key = ProblemKey(problem.type);
        if (key == "forbidden" && op.attempt < kMaxAuthorizeResends) {
          // Refused because of the payment's state: maybe an earlier attempt of ours
          // did get through. Read before concluding (and resend only after a horizon).
          OnInDoubt(op);
          return;
        }
        op.status = OpStatus::kFailed;
        bool msisdn = false;
        for (const auto& [name, description] : problem.problems)
          if (ContainsNoCase(name, "msisdn")) msisdn = true;
        std::string c = msisdn                   ? code::kInvalidMsisdn
                        : key == "vippsdeclined" ? code::kDeclined
                                                 : code::kPayexProblem;
        op.failure_code = c;
        AuthorizationFailed(c, DescribeProblem(problem), problem.type);
        return;
      }
      case OpKind::kAbort:
        op.status = OpStatus::kFailed;
        op.failure_code = ProblemKey(problem.type);
        Note("abort refused: " + DescribeProblem(problem));
        AbortRefused();
        return;
      case OpKind::kCapture:
      case OpKind::kCancel:
      case OpKind::kReverse:
        if (IsDuplicateReference(problem) ||
            (op.doubt_reads > 0 && !op.failure_code.starts_with(kRefusedMark))) {
          // A resend after doubt was refused (or PayEx says the reference is taken):
          // the first attempt may have landed after all. Read, and adopt it if it is
          // there; a refusal other than "duplicate" fails only if PayEx still has no
          // trace of it.
          op.failure_code =
              std::string(IsDuplicateReference(problem) ? kDuplicateMark : kRefusedMark) +
              problem.type;
          op.status = OpStatus::kInDoubt;
          op.not_before = now_;
          Note(std::string(OpKindName(op.kind)) + " resend refused: reading");
          return;
        }
        FailOp(op, code::kPayexProblem, DescribeProblem(problem), problem.type);
        return;
      case OpKind::kRead: return;
    }
  }

  void OnSuccess(Op& op, const PayexResult& r) {
    Payment& pay = p();
    switch (op.kind) {
      case OpKind::kCreate: {
        if (!r.snapshot || r.snapshot->payment_id.empty()) {
          OnInDoubt(op);  // a 2xx we could not use: create again, under a new reference
          return;
        }
        op.status = OpStatus::kDone;
        pay.payment_id = r.snapshot->payment_id;
        Note("created " + pay.payment_id);
        if (pay.cancel_requested) {
          StartAbort();
        } else if (!pay.msisdn.empty()) {
          StartAuthorization();
        } else {
          pay.phase = Phase::kAwaitingMsisdn;
          pay.deadline = now_ + policy_.msisdn_timeout;
        }
        return;
      }
      case OpKind::kAuthorize:
        if (!r.transaction) {
          OnInDoubt(op);  // it may well have landed: read, and resend only after a horizon
          return;
        }
        AdoptAuthorization(op, *r.transaction);
        return;
      case OpKind::kAbort:
        if (!r.snapshot || r.snapshot->state == PaymentState::kUnknown) {
          OnInDoubt(op);  // a 2xx we cannot read: find out by reading
          return;
        }
        if (r.snapshot->state != PaymentState::kAborted) {
          op.status = OpStatus::kFailed;  // answered, but not aborted: find out why
          AbortRefused();
          return;
        }
        op.status = OpStatus::kDone;
        Aborted();
        return;
      case OpKind::kCapture:
      case OpKind::kCancel:
      case OpKind::kReverse:
        if (!r.transaction) {
          OnInDoubt(op);
          return;
        }
        AdoptTransaction(op, *r.transaction);
        return;
      case OpKind::kRead: return;
    }
  }

  // An authorization transaction as PayEx shows it (from the POST or a read).
  void AdoptAuthorization(Op& op, const Transaction& tx) {
    Payment& pay = p();
    pay.authorization_tx = tx.id;
    op.transaction_id = tx.id;
    switch (tx.state) {
      case TxState::kCompleted:
        op.status = OpStatus::kDone;
        AuthorizationCompleted(tx);
        return;
      case TxState::kFailed:
        op.status = OpStatus::kFailed;
        op.failure_code = AuthorizationTxFailed(tx);
        return;
      case TxState::kAwaitingActivity:
        op.status = OpStatus::kDone;  // the POST did its job: the payer is asked
        EnterAwaitingPayer();
        return;
      case TxState::kInitialized:
      case TxState::kUnknown:
        if (op.status != OpStatus::kPending) op.not_before = now_ + policy_.first_poll;
        op.status = OpStatus::kPending;
        if (pay.phase == Phase::kAuthorizing) {
          pay.phase = Phase::kAwaitingPayer;
          if (pay.deadline == Time{}) pay.deadline = now_ + policy_.confirmation_timeout;
        }
        return;
    }
  }

  // PayEx would not abort: most likely the payer approved meanwhile. Watch the
  // payment as while the payer decides (reading now), and try the abort again
  // after slow_poll if it is still undecided.
  void AbortRefused() {
    Payment& pay = p();
    pay.phase = Phase::kAwaitingPayer;
    pay.read_wanted = true;
    pay.polls = 0;
    pay.next_poll_at = now_;
    pay.deadline = now_ + policy_.slow_poll;
  }

  bool AbortWasRefused() const {
    for (const Op& op : d_.next.ops)
      if (op.kind == OpKind::kAbort && op.status == OpStatus::kFailed) return true;
    return false;
  }

  void AuthorizationCompleted(const Transaction& tx) {
    p().authorization_tx = tx.id;
    AuthorizationSucceeded(tx.amount > 0 ? tx.amount : p().purchase.amount, tx.id);
  }

  // A Failed authorization transaction: declined in the app (or no problem
  // given), else refused by PayEx or the acquirer. Returns the failure code.
  std::string AuthorizationTxFailed(const Transaction& tx) {
    std::string type = tx.problem ? tx.problem->type : "";
    std::string key = ProblemKey(type);
    std::string c = key == "vippsdeclined" || key.empty() ? code::kDeclined : code::kPayexProblem;
    AuthorizationFailed(c, tx.problem ? DescribeProblem(*tx.problem) : "declined in Vipps", type);
    return c;
  }

  void EnterAwaitingPayer() {
    Payment& pay = p();
    if (pay.phase != Phase::kAwaitingPayer) {
      pay.phase = Phase::kAwaitingPayer;
      pay.polls = 0;
      pay.next_poll_at = now_ + policy_.first_poll;
      if (pay.deadline == Time{}) pay.deadline = now_ + policy_.confirmation_timeout;
    }
    if (pay.cancel_requested && !AbortWasRefused()) StartAbort();
  }

  void AdoptTransaction(Op& op, const Transaction& tx) {
    op.transaction_id = tx.id;
    switch (tx.state) {
      case TxState::kCompleted: SucceedOp(op, tx); return;
      case TxState::kFailed: {
        std::string type = tx.problem ? tx.problem->type : "";
        FailOp(op, code::kPayexProblem,
               tx.problem ? DescribeProblem(*tx.problem) : "PayEx failed the transaction", type);
        return;
      }
      default:  // Initialized (or unknown): PayEx cannot say yet. Poll, send nothing new.
        if (op.status != OpStatus::kPending) op.not_before = now_ + policy_.first_poll;
        op.status = OpStatus::kPending;
        Note(std::string(OpKindName(op.kind)) + " pending at PayEx");
        return;
    }
  }

  void SucceedOp(Op& op, const Transaction& tx) {
    Payment& pay = p();
    Balance& b = pay.balance;
    op.status = OpStatus::kDone;
    switch (op.kind) {
      case OpKind::kCapture: {
        b.captured += op.amount;
        PaymentEvent& ev = Emit(EventKind::kCaptured, op.caused_by);
        ev.shipment_id = op.ref_id;
        ev.amount = op.amount;
        ev.transaction_id = tx.id;
        Note("captured " + std::to_string(op.amount));
        return;
      }
      case OpKind::kCancel: {
        // A cancellation releases everything that remains; PayEx's figure wins when
        // it is plausible.
        int64_t remaining = b.authorized - b.captured - b.cancelled;
        int64_t amount = tx.amount > 0 && tx.amount <= remaining ? tx.amount : remaining;
        op.amount = amount;
        b.cancelled += amount;
        PaymentEvent& ev = Emit(EventKind::kCancelled, op.caused_by);
        ev.amount = amount;
        ev.transaction_id = tx.id;
        Note("cancelled " + std::to_string(amount));
        return;
      }
      case OpKind::kReverse: {
        b.reversed += op.amount;
        PaymentEvent& ev = Emit(EventKind::kReversed, op.caused_by);
        ev.refund_id = op.ref_id;
        ev.amount = op.amount;
        ev.transaction_id = tx.id;
        Note("reversed " + std::to_string(op.amount));
        return;
      }
      default: return;
    }
  }

  void FailOp(Op& op, const std::string& c, const std::string& message,
              const std::string& problem_type) {
    op.status = OpStatus::kFailed;
    op.failure_code = c;
    EventKind kind = op.kind == OpKind::kCapture  ? EventKind::kCaptureFailed
                     : op.kind == OpKind::kCancel ? EventKind::kCancelFailed
                                                  : EventKind::kReversalFailed;
    EmitFailure(kind, op.caused_by, c, message, problem_type);
  }

  // ---- the authorization's end ------------------------------------------------

  void AnswerPurchase(EventKind kind, const std::function<void(PaymentEvent&)>& fill) {
    Payment& pay = p();
    fill(Emit(kind, pay.purchase_event_id));
    if (!pay.msisdn_event_id.empty()) fill(Emit(kind, pay.msisdn_event_id));
  }

  void AuthorizationSucceeded(int64_t amount, const std::string& tx_id) {
    Payment& pay = p();
    pay.phase = Phase::kAuthorized;
    pay.balance.authorized = amount;
    pay.deadline = Time{};
    pay.next_poll_at = Time{};
    pay.abort_cause = AbortCause::kNone;
    AnswerPurchase(EventKind::kAuthorized, [&](PaymentEvent& ev) {
      ev.amount = amount;
      ev.transaction_id = tx_id;
    });
    Note("authorized " + std::to_string(amount));
    for (Op& op : pay.ops)
      if (op.status == OpStatus::kWaiting) op.status = OpStatus::kQueued;
    // The abort lost the race against the payer: cancel what was authorized.
    for (Op& op : pay.ops)
      if (op.kind == OpKind::kAbort && IsOpen(op.status)) op.status = OpStatus::kFailed;
    if (pay.cancel_requested && !pay.cancel_event_id.empty()) {
      AddCancelOp(pay.cancel_event_id, "Order cancelled");
      pay.cancel_event_id.clear();
    }
  }

  void FailWaiting() {
    for (Op& op : p().ops)
      if (NeedsAuthorization(op.kind) && IsOpen(op.status))
        FailOp(op, code::kNotAuthorized, "the payment was not authorized", "");
  }

  void AnswerCancel(const std::string& reason) {
    Payment& pay = p();
    if (pay.cancel_event_id.empty()) return;
    PaymentEvent& ev = Emit(EventKind::kAborted, pay.cancel_event_id);
    ev.reason = reason;
    pay.cancel_event_id.clear();
  }

  void AuthorizationFailed(const std::string& c, const std::string& message,
                           const std::string& problem_type) {
    Payment& pay = p();
    pay.phase = Phase::kFailed;
    pay.deadline = Time{};
    pay.next_poll_at = Time{};
    AnswerPurchase(EventKind::kAuthorizationFailed, [&](PaymentEvent& ev) {
      ev.failure = Failure{c, message, problem_type};
    });
    Note("authorization failed " + c);
    for (Op& op : pay.ops)
      if (op.kind == OpKind::kAbort && IsOpen(op.status)) op.status = OpStatus::kFailed;
    FailWaiting();
    AnswerCancel("nothing was authorized");
  }

  void Aborted() {
    Payment& pay = p();
    pay.phase = Phase::kAborted;
    pay.deadline = Time{};
    pay.next_poll_at = Time{};
    bool cancelled = pay.abort_cause == AbortCause::kCancelled;
    bool refused = pay.abort_cause == AbortCause::kPayexRefused;
    std::string c = cancelled ? code::kAborted : refused ? code::kPayexProblem : code::kTimedOut;
    std::string message = cancelled ? "the order was cancelled before the payer approved"
                          : refused ? "PayEx offers no authorization for this payment"
                          : pay.abort_cause == AbortCause::kMsisdnTimedOut
                              ? "no payer number arrived in time"
                              : "the payer did not confirm in time";
    for (Op& op : pay.ops)
      if (op.kind == OpKind::kAuthorize && IsOpen(op.status)) op.status = OpStatus::kFailed;
    AnswerPurchase(EventKind::kAuthorizationFailed, [&](PaymentEvent& ev) {
      ev.failure = Failure{c, message, ""};
    });
    FailWaiting();
    std::string reason;
    for (const Op& op : pay.ops)
      if (op.kind == OpKind::kAbort) reason = op.description;
    AnswerCancel(reason.empty() ? "order cancelled" : reason);
    Note("aborted");
  }

  // ---- reads ----------------------------------------------------------------

  const Transaction* LatestOf(const PaymentSnapshot& s, TxType type) const {
    const Transaction* found = nullptr;
    for (const Transaction& tx : s.transactions)
      if (tx.type == type) found = &tx;
    return found;
  }

  void OnReadResult(const PayexResult& r) {
    Payment& pay = p();
    if (r.result != ResultClass::kSuccess || !r.snapshot) {
      return;  // reads are safe to repeat; the schedule (doubt backoff, polls) covers it
    }
    const PaymentSnapshot& s = *r.snapshot;

    // Operations whose outcome was unknown: find them by payeeReference.
    // By index: settling an authorization may append a cancel operation.
    for (size_t i = 0; i < pay.ops.size(); ++i) {
      Op& op = pay.ops[i];
      if (op.status != OpStatus::kInDoubt && op.status != OpStatus::kPending) continue;
      switch (op.kind) {
        case OpKind::kAuthorize: {
          const Transaction* tx = LatestOf(s, TxType::kAuthorization);
          if (tx) {
            AdoptAuthorization(op, *tx);
          } else if (s.state == PaymentState::kAborted) {
            op.status = OpStatus::kFailed;
          } else if (s.state == PaymentState::kPending) {
            // PayEx holds something Initialized: keep reading.
          } else if (s.can_authorize && MayStillLand(op)) {
            // Our POST may still be on its way: a resend now could push a second
            // request to the payer's phone once the first lands.
            KeepReadingUntilHorizon(op);
          } else if (s.can_authorize && op.attempt < kMaxAuthorizeResends) {
            op.status = OpStatus::kQueued;  // PayEx has no trace of it: send it again
            op.not_before = now_;
            ++op.attempt;
            pay.phase = Phase::kAuthorizing;
          } else {
            // No trace and no way to send it again: close the payment by aborting,
            // so an authorization that lands late can never stay reserved unseen.
            op.status = OpStatus::kFailed;
            op.failure_code = code::kPayexProblem;
            if (pay.abort_cause == AbortCause::kNone) pay.abort_cause = AbortCause::kPayexRefused;
            StartAbort();
          }
          break;
        }
        case OpKind::kCapture:
        case OpKind::kCancel:
        case OpKind::kReverse: {
          TxType type = op.kind == OpKind::kCapture  ? TxType::kCapture
                        : op.kind == OpKind::kCancel ? TxType::kCancellation
                                                     : TxType::kReversal;
          const Transaction* match = nullptr;
          for (const Transaction& tx : s.transactions)
            if (tx.type == type && tx.payee_reference == op.payee_reference) match = &tx;
          bool pending_at_payex = s.state == PaymentState::kPending;
          for (const Transaction& tx : s.transactions)
            if (tx.state == TxState::kInitialized) pending_at_payex = true;
          if (match) {
            AdoptTransaction(op, *match);
          } else if (op.failure_code.starts_with(kRefusedMark)) {
            // PayEx refused the resend and has no trace of the first: a real refusal.
            std::string type = op.failure_code.substr(std::string(kRefusedMark).size());
            FailOp(op, code::kPayexProblem, "PayEx refused the request (" + type + ")", type);
          } else if (op.status == OpStatus::kPending || pending_at_payex ||
                     op.failure_code.starts_with(kDuplicateMark)) {
            // Not resolvable yet: keep reading, ever more slowly.
          } else if (MayStillLand(op)) {
            KeepReadingUntilHorizon(op);
          } else {
            // No trace at PayEx: it never happened. Send again, same reference.
            op.status = OpStatus::kQueued;
            op.not_before = now_;
            Note(std::string(OpKindName(op.kind)) + " not found at PayEx: resend");
          }
          break;
        }
        case OpKind::kAbort:
          if (s.state == PaymentState::kAborted) {
            op.status = OpStatus::kDone;
          } else if (MayStillLand(op)) {
            KeepReadingUntilHorizon(op);
          } else {
            op.status = OpStatus::kQueued;
            op.not_before = now_;
          }
          break;
        default: op.status = OpStatus::kQueued; break;
      }
    }

    // The authorization, while nothing is settled yet.
    if (pay.phase == Phase::kAwaitingPayer || pay.phase == Phase::kAborting ||
        pay.phase == Phase::kAuthorizing) {
      if (s.state == PaymentState::kAborted) {
        for (Op& op : pay.ops)
          if (op.kind == OpKind::kAbort && IsOpen(op.status)) op.status = OpStatus::kDone;
        if (pay.abort_cause == AbortCause::kNone) pay.abort_cause = AbortCause::kCancelled;
        Aborted();
        return;
      }
      const Transaction* tx = LatestOf(s, TxType::kAuthorization);
      bool abort_open = FindOpenOp(OpKind::kAbort) != nullptr;
      if (tx && tx->state == TxState::kCompleted) {
        AuthorizationCompleted(*tx);
        return;
      }
      if (tx && tx->state == TxState::kFailed) {
        if (pay.phase == Phase::kAborting && abort_open) return;  // the abort settles it
        AuthorizationTxFailed(*tx);
        return;
      }
      if (s.state == PaymentState::kFailed) {
        AuthorizationFailed(code::kPayexProblem, "PayEx failed the payment", "");
        return;
      }
      if ((tx && tx->state == TxState::kInitialized) || s.state == PaymentState::kPending) {
        // PayEx cannot tell the authorization's outcome (api §6.3): nothing new is
        // sent (no abort either) until it can; read ever more slowly.
        Op* auth = nullptr;
        for (Op& op : pay.ops)
          if (op.kind == OpKind::kAuthorize && op.status != OpStatus::kFailed) auth = &op;
        if (auth && auth->status != OpStatus::kPending && auth->status != OpStatus::kInFlight) {
          auth->status = OpStatus::kPending;
          auth->not_before = now_ + policy_.first_poll;
          Note("authorization Initialized at PayEx");
        }
        return;
      }
      if (pay.phase == Phase::kAwaitingPayer && pay.cancel_requested && !abort_open &&
          !AbortWasRefused()) {
        StartAbort();  // cancelled while PayEx held the authorization Initialized
        return;
      }
    }
  }

  // ---- timers, callbacks, restarts ---------------------------------------------

  void On(const Tick&) {
    Payment& pay = p();
    if (pay.in_flight.call_id != 0 && now_ >= WatchdogAt()) {
      Note("no outcome within the watchdog: in doubt");
      ResolveLostCall();
    }
  }

  bool Busy() const {
    for (const Op& op : d_.next.ops)
      if (op.status == OpStatus::kInDoubt || op.status == OpStatus::kPending ||
          op.status == OpStatus::kInFlight)
        return true;
    return false;
  }

  uint32_t AbortRefusals() const {
    uint32_t n = 0;
    for (const Op& op : d_.next.ops)
      if (op.kind == OpKind::kAbort && op.status == OpStatus::kFailed) ++n;
    return n;
  }

  // Deadlines are checked after every input, not only on ticks, so a decision
  // never leaves a due time in the past. While an outcome is unknown or
  // Initialized nothing new may be sent, so the deadline waits for it.
  void CheckDeadline() {
    Payment& pay = p();
    if (pay.deadline == Time{} || now_ < pay.deadline || Busy()) return;
    if (pay.phase == Phase::kAwaitingPayer) {
      if (AbortRefusals() >= kMaxAbortRefusals) {
        AuthorizationFailed(code::kPayexProblem, "PayEx refused to abort the payment", "");
        return;
      }
      if (pay.abort_cause == AbortCause::kNone) pay.abort_cause = AbortCause::kTimedOut;
      Note("confirmation deadline passed");
      StartAbort();
    } else if (pay.phase == Phase::kAwaitingMsisdn) {
      if (pay.abort_cause == AbortCause::kNone) pay.abort_cause = AbortCause::kMsisdnTimedOut;
      Note("msisdn deadline passed");
      StartAbort();
    }
  }

  // The backstop for a call that never came back: by then the executor has either
  // not sent it (PayexCall::send_by) or sent it and given up on it (its own
  // watchdog, counted from the send).
  Time WatchdogAt() const {
    return d_.next.in_flight.sent_at + 2 * policy_.call_watchdog;
  }

  void ResolveLostCall() {
    Payment& pay = p();
    uint32_t op_id = pay.in_flight.op_id;
    pay.in_flight = InFlight{};
    if (op_id == 0) return;  // a read: the schedule reads again
    Op* op = FindOp(op_id);
    if (op && op->status == OpStatus::kInFlight) OnInDoubt(*op);
  }

  void On(const CallbackHint&) {
    Payment& pay = p();
    if (FirstUnresolved() || pay.phase == Phase::kAwaitingPayer || pay.phase == Phase::kAborting) {
      pay.read_wanted = true;
      Note("callback: read wanted");
    } else {
      Note("callback: nothing to learn");
    }
  }

  void On(const Resume&) {
    if (p().in_flight.call_id != 0) {
      Note("resumed with a call in flight: in doubt");
      ResolveLostCall();
    }
  }

  const Policy& policy_;
  Time now_;
  Time read_at_{};  // when the read being applied was decided (OnReadResult only)
  Decision d_;
};

}  // namespace

Decision Decide(const Policy& policy, const Payment& current, const Input& input, Time now) {
  return Machine(policy, current, now).Run(input);
}

}  // namespace payorch::domain
