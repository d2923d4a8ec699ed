// domain::Reconcile (issue 14): payorch's record against PayEx's view of a payment.
#include "domain/reconcile.hpp"

#include <gtest/gtest.h>

namespace payorch::domain {
namespace {

Transaction Tx(TxType type, int64_t amount, const std::string& ref,
               TxState state = TxState::kCompleted) {
  Transaction t;
  t.type = type;
  t.amount = amount;
  t.payee_reference = ref;
  t.state = state;
  t.id = "/psp/vipps/payments/p1/transactions/" + ref;
  return t;
}

Op Capture(uint32_t id, int64_t amount, const std::string& ref, OpStatus status = OpStatus::kDone) {
  Op op;
  op.id = id;
  op.kind = OpKind::kCapture;
  op.status = status;
  op.amount = amount;
  op.payee_reference = ref;
  op.ref_id = "s" + std::to_string(id);
  return op;
}

// Authorized 1000, captured 600 by one capture; PayEx agrees.
struct Agreed {
  Payment p;
  PaymentSnapshot s;
  Agreed() {
    p.order_id = "o1";
    p.phase = Phase::kAuthorized;
    p.payment_id = "/psp/vipps/payments/p1";
    p.balance = {1000, 600, 0, 0};
    p.ops.push_back(Capture(2, 600, "ref-c2"));
    s.payment_id = p.payment_id;
    s.state = PaymentState::kReady;
    s.transactions = {Tx(TxType::kAuthorization, 1000, "ref-a"),
                      Tx(TxType::kCapture, 600, "ref-c2")};
  }
};

std::vector<std::string> Whats(const Reconciliation& r) {
  std::vector<std::string> out;
  for (const auto& m : r.mismatches) out.push_back(m.what);
  return out;
}

TEST(Reconcile, AgreeingRecordsHaveNoMismatch) {
  Agreed a;
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_FALSE(r.unsettled);
  EXPECT_TRUE(r.mismatches.empty()) << Whats(r).size();
  EXPECT_EQ(r.payex_balance, (Balance{1000, 600, 0, 0}));
}

TEST(Reconcile, ACaptureFailedAtPayExIsNamed) {
  Agreed a;
  a.s.transactions[1].state = TxState::kFailed;
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_EQ(Whats(r), (std::vector<std::string>{"captured", "capture s2 (payeeReference ref-c2)"}));
  EXPECT_EQ(r.mismatches[0].payorch, "600");
  EXPECT_EQ(r.mismatches[0].payex, "0");
  EXPECT_EQ(r.mismatches[1].payex, "Failed");
}

TEST(Reconcile, ACaptureAtPayExThatPayorchNeverRecordedIsNamed) {
  Agreed a;
  a.s.transactions.push_back(Tx(TxType::kCapture, 100, "ref-unknown"));
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_EQ(Whats(r),
            (std::vector<std::string>{"captured", "capture (payeeReference ref-unknown)"}));
  EXPECT_EQ(r.mismatches[1].payorch, "not recorded");
}

TEST(Reconcile, AnAmountThatDiffersIsNamed) {
  Agreed a;
  a.s.transactions[1].amount = 500;
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_EQ(Whats(r), (std::vector<std::string>{"captured", "capture s2 (payeeReference ref-c2)"}));
  EXPECT_EQ(r.mismatches[1].payorch, "600");
  EXPECT_EQ(r.mismatches[1].payex, "500");
}

TEST(Reconcile, StatesThatContradictAreNamed) {
  Agreed a;
  a.s.state = PaymentState::kAborted;
  EXPECT_EQ(Whats(Reconcile(a.p, a.s)), (std::vector<std::string>{"state"}));
  // payorch failed it, PayEx holds the money reserved.
  Agreed b;
  b.p.phase = Phase::kFailed;
  b.p.balance = {};
  b.p.ops.clear();
  b.s.transactions.resize(1);
  const Reconciliation r = Reconcile(b.p, b.s);
  EXPECT_EQ(Whats(r), (std::vector<std::string>{"authorized", "state"}));
  EXPECT_EQ(r.mismatches[1].payex, "Ready, 1000 reserved");
}

TEST(Reconcile, APaymentWithACallInDoubtIsUnsettledNotMismatched) {
  Agreed a;
  a.p.ops.push_back(Capture(3, 400, "ref-c3", OpStatus::kInDoubt));
  a.p.balance.captured = 600;
  a.s.transactions.push_back(Tx(TxType::kCapture, 400, "ref-c3"));  // it did land
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_TRUE(r.unsettled);
  EXPECT_EQ(r.unsettled_why, "capture 3 is in_doubt");
  EXPECT_TRUE(r.mismatches.empty());
}

TEST(Reconcile, ACancelWithNothingLeftIsNotLookedForAtPayEx) {
  Agreed a;  // fully captured, then cancelled: nothing to release, no call made
  a.p.balance.captured = 1000;
  a.p.ops[0].amount = 1000;
  a.s.transactions[1].amount = 1000;
  Op cancel;
  cancel.id = 3;
  cancel.kind = OpKind::kCancel;
  cancel.status = OpStatus::kDone;
  cancel.payee_reference = "ref-x3";
  a.p.ops.push_back(cancel);
  EXPECT_TRUE(Reconcile(a.p, a.s).mismatches.empty());
}

TEST(Reconcile, APaymentWhosePayerMayStillConfirmIsUnsettled) {
  Agreed a;
  a.p.phase = Phase::kAwaitingPayer;
  a.p.balance = {};
  a.p.ops.clear();
  a.s.transactions.resize(1);  // confirmed at PayEx since the last poll
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_TRUE(r.unsettled);
  EXPECT_EQ(r.unsettled_why, "the payment is awaiting_payer");
}

TEST(Reconcile, ACaptureFailedHereButCompletedAtPayExIsNamed) {
  Agreed a;
  a.p.ops[0].status = OpStatus::kFailed;
  a.p.balance.captured = 0;
  const Reconciliation r = Reconcile(a.p, a.s);
  EXPECT_EQ(Whats(r), (std::vector<std::string>{"captured", "capture (payeeReference ref-c2)"}));
  EXPECT_EQ(r.mismatches[1].payorch, "failed");
}

TEST(Reconcile, ADifferentPaymentIdIsNamed) {
  Agreed a;
  a.s.payment_id = "/psp/vipps/payments/other";
  EXPECT_EQ(Whats(Reconcile(a.p, a.s)), (std::vector<std::string>{"payment_id"}));
}

}  // namespace
}  // namespace payorch::domain
