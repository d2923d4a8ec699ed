#include "domain/reconcile.hpp"

#include <algorithm>

namespace payorch::domain {

namespace {

std::string Amount(int64_t v) {
  return std::to_string(v);
}

TxType TxTypeOf(OpKind k) {
  switch (k) {
    case OpKind::kCapture: return TxType::kCapture;
    case OpKind::kCancel: return TxType::kCancellation;
    case OpKind::kReverse: return TxType::kReversal;
    default: return TxType::kOther;
  }
}

const char* TxTypeText(TxType t) {
  switch (t) {
    case TxType::kAuthorization: return "authorization";
    case TxType::kCapture: return "capture";
    case TxType::kCancellation: return "cancellation";
    case TxType::kReversal: return "reversal";
    case TxType::kOther: break;
  }
  return "transaction";
}

}  // namespace

Reconciliation Reconcile(const Payment& p, const PaymentSnapshot& s) {
  Reconciliation r;
  for (const Transaction& t : s.transactions) {
    if (t.state != TxState::kCompleted) continue;
    switch (t.type) {
      case TxType::kAuthorization: r.payex_balance.authorized += t.amount; break;
      case TxType::kCapture: r.payex_balance.captured += t.amount; break;
      case TxType::kCancellation: r.payex_balance.cancelled += t.amount; break;
      case TxType::kReversal: r.payex_balance.reversed += t.amount; break;
      case TxType::kOther: break;
    }
  }
  if (p.in_flight.call_id != 0) {
    r.unsettled = true;
    r.unsettled_why = "a PayEx call is in flight";
  }
  for (const Op& op : p.ops) {
    if (op.status == OpStatus::kInFlight || op.status == OpStatus::kInDoubt ||
        op.status == OpStatus::kPending) {
      r.unsettled = true;
      r.unsettled_why = std::string(OpKindName(op.kind)) + " " + std::to_string(op.id) + " is " +
                        OpStatusName(op.status);
    }
  }
  // Phases in which PayEx may move on its own between two reads (the payer
  // confirming, an abort or authorization under way): not comparable yet.
  if (p.phase == Phase::kCreating || p.phase == Phase::kAuthorizing ||
      p.phase == Phase::kAwaitingPayer || p.phase == Phase::kAborting) {
    r.unsettled = true;
    r.unsettled_why = std::string("the payment is ") + PhaseName(p.phase);
  }
  if (r.unsettled) return r;

  auto mismatch = [&](std::string what, std::string ours, std::string theirs) {
    r.mismatches.push_back({std::move(what), std::move(ours), std::move(theirs)});
  };
  if (p.payment_id != s.payment_id) mismatch("payment_id", p.payment_id, s.payment_id);
  const Balance& b = p.balance;
  const Balance& x = r.payex_balance;
  if (b.authorized != x.authorized)
    mismatch("authorized", Amount(b.authorized), Amount(x.authorized));
  if (b.captured != x.captured) mismatch("captured", Amount(b.captured), Amount(x.captured));
  if (b.cancelled != x.cancelled) mismatch("cancelled", Amount(b.cancelled), Amount(x.cancelled));
  if (b.reversed != x.reversed) mismatch("reversed", Amount(b.reversed), Amount(x.reversed));

  // Each money operation payorch holds done, as a Completed transaction at PayEx.
  for (const Op& op : p.ops) {
    const TxType type = TxTypeOf(op.kind);
    if (type == TxType::kOther || op.status != OpStatus::kDone) continue;
    // A cancel with nothing left to release is done without a call to PayEx.
    if (op.kind == OpKind::kCancel && op.amount == 0 && op.transaction_id.empty()) continue;
    const std::string name = std::string(OpKindName(op.kind)) +
                             (op.ref_id.empty() ? "" : " " + op.ref_id) + " (payeeReference " +
                             op.payee_reference + ")";
    // Its Completed transaction, else any with its payeeReference (a Failed one).
    auto same = [&](const Transaction& t) {
      return t.type == type && t.payee_reference == op.payee_reference;
    };
    auto tx = std::find_if(s.transactions.begin(), s.transactions.end(), [&](const Transaction& t) {
      return same(t) && t.state == TxState::kCompleted;
    });
    if (tx == s.transactions.end())
      tx = std::find_if(s.transactions.begin(), s.transactions.end(), same);
    if (tx == s.transactions.end()) {
      mismatch(name, "done, " + Amount(op.amount), "no such transaction");
    } else if (tx->state != TxState::kCompleted) {
      mismatch(name, "done, " + Amount(op.amount),
               tx->state == TxState::kFailed ? "Failed" : "not Completed");
    } else if (op.kind != OpKind::kCancel && tx->amount != op.amount) {
      mismatch(name, Amount(op.amount), Amount(tx->amount));
    }
  }
  // Each Completed capture, cancellation or reversal at PayEx, as an operation of
  // payorch's (by payeeReference).
  for (const Transaction& t : s.transactions) {
    if (t.state != TxState::kCompleted || t.type == TxType::kAuthorization ||
        t.type == TxType::kOther)
      continue;
    auto op = std::find_if(p.ops.begin(), p.ops.end(), [&](const Op& o) {
      return TxTypeOf(o.kind) == t.type && o.payee_reference == t.payee_reference;
    });
    const std::string name =
        std::string(TxTypeText(t.type)) + " (payeeReference " + t.payee_reference + ")";
    if (op == p.ops.end())
      mismatch(name, "not recorded", "Completed, " + Amount(t.amount));
    else if (op->status == OpStatus::kFailed)
      mismatch(name, "failed", "Completed, " + Amount(t.amount));
  }
  // The payment's own state.
  const bool payex_ended = s.state == PaymentState::kAborted || s.state == PaymentState::kFailed;
  if (p.phase == Phase::kAuthorized && payex_ended)
    mismatch("state", PhaseName(p.phase), PaymentStateName(s.state));
  if ((p.phase == Phase::kFailed || p.phase == Phase::kAborted) && x.authorized > x.cancelled &&
      x.authorized > 0 && !payex_ended)
    mismatch("state", PhaseName(p.phase),
             std::string(PaymentStateName(s.state)) + ", " + Amount(x.authorized - x.cancelled) +
                 " reserved");
  return r;
}

}  // namespace payorch::domain
