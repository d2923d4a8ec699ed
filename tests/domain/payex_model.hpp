// A small in-memory model of PayEx's Vipps payments for the domain tests: it
// executes the calls the state machine asks for, enforces PayEx's money rules, and
// records every effect so the tests can prove nothing happened twice.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "domain/decide.hpp"

namespace payorch::testing {

using namespace payorch::domain;

struct ModelTx {
  std::string id;
  TxType type = TxType::kOther;
  TxState state = TxState::kUnknown;
  int64_t amount = 0;
  std::string payee_reference;
  std::string problem_type;
};

struct ModelPayment {
  std::string id;
  std::string order_id;
  std::string payee_reference;
  PaymentState state = PaymentState::kReady;
  int64_t purchase_amount = 0;
  std::vector<ModelTx> txs;

  int64_t Sum(TxType type) const {
    int64_t s = 0;
    for (const auto& tx : txs)
      if (tx.type == type && tx.state == TxState::kCompleted) s += tx.amount;
    return s;
  }
  int64_t Authorized() const { return Sum(TxType::kAuthorization); }
  bool AnyInitialized() const {
    for (const auto& tx : txs)
      if (tx.state == TxState::kInitialized) return true;
    return false;
  }
  const ModelTx* Auth() const {
    const ModelTx* a = nullptr;
    for (const auto& tx : txs)
      if (tx.type == TxType::kAuthorization) a = &tx;
    return a;
  }
  ModelTx* Auth() {
    ModelTx* a = nullptr;
    for (auto& tx : txs)
      if (tx.type == TxType::kAuthorization) a = &tx;
    return a;
  }
  bool AnyCompleted() const {
    for (const auto& tx : txs)
      if (tx.state == TxState::kCompleted) return true;
    return false;
  }
};

// What PayEx does with a payeeReference it has seen (api: not documented).
enum class DuplicateMode {
  kReplay,  // answers with the first operation's result
  kReject,  // 400 with a PayeeReference problem
  kAllow,   // a new operation: the money moves again (what payorch must survive)
};

struct ModelOptions {
  DuplicateMode duplicates = DuplicateMode::kReplay;
  double initialized_rate = 0.0;           // money transactions left Initialized
  double tx_failed_rate = 0.0;             // money transactions Failed (acquirer said no)
  double instant_approve_rate = 0.0;       // authorization Completed in the POST answer
  double auth_initialized_rate = 0.0;      // authorization Initialized in the POST answer
  bool abort_while_awaiting = true;        // api §8: undocumented; both are modelled
  bool pending_while_awaiting = false;     // payment state Pending while the payer decides
};

class PayexModel {
 public:
  explicit PayexModel(ModelOptions options) : options_(options) {}

  // Executes a call, applying its effect. `roll` in [0,1) picks random outcomes.
  PayexResult Execute(const PayexCall& call, double roll) {
    PayexResult r;
    r.call_id = call.call_id;
    switch (call.kind) {
      case OpKind::kCreate: {
        auto it = create_refs_.find(call.payee_reference);
        if (it != create_refs_.end() && options_.duplicates != DuplicateMode::kAllow) {
          if (options_.duplicates == DuplicateMode::kReject)
            return Problem400("PayeeInfo.PayeeReference");
          r.snapshot = Snapshot(payments_.at(it->second));
          return r;
        }
        ModelPayment p;
        p.id = "/psp/vipps/payments/p" + std::to_string(++counter_);
        p.order_id = call.order_id;
        p.payee_reference = call.payee_reference;
        p.purchase_amount = call.amount;
        create_refs_[call.payee_reference] = p.id;
        payments_[p.id] = p;
        r.snapshot = Snapshot(payments_[p.id]);
        return r;
      }
      case OpKind::kRead: {
        auto* p = Find(call.payment_id);
        if (!p) return Refuse(404, "notfound");
        r.snapshot = Snapshot(*p);
        return r;
      }
      case OpKind::kAuthorize: {
        auto* p = Find(call.payment_id);
        if (!p) return Refuse(404, "notfound");
        const ModelTx* a = p->Auth();
        if (p->state != PaymentState::kReady || (a && a->state != TxState::kFailed))
          return Refuse(403, "forbidden");
        if (!call.msisdn.starts_with("+47") || call.msisdn.size() != 11)
          return Problem400("Transaction.Msisdn");
        ModelTx tx;
        tx.id = p->id + "/transactions/t" + std::to_string(++counter_);
        tx.type = TxType::kAuthorization;
        tx.amount = p->purchase_amount;
        tx.payee_reference = p->payee_reference;
        tx.state = roll < options_.instant_approve_rate ? TxState::kCompleted
                   : roll < options_.instant_approve_rate + options_.auth_initialized_rate
                       ? TxState::kInitialized
                       : TxState::kAwaitingActivity;
        p->txs.push_back(tx);
        ++authorizations_per_order_[p->order_id];
        r.transaction = ToTx(p->txs.back());
        return r;
      }
      case OpKind::kAbort: {
        auto* p = Find(call.payment_id);
        if (!p) return Refuse(404, "notfound");
        if (p->AnyCompleted() || p->AnyInitialized()) return Refuse(403, "forbidden");
        if (p->state == PaymentState::kAborted) {
          r.snapshot = Snapshot(*p);
          return r;
        }
        if (auto* a = p->Auth(); a && a->state == TxState::kAwaitingActivity) {
          if (!options_.abort_while_awaiting) return Refuse(403, "forbidden");
          a->state = TxState::kFailed;
          a->problem_type = "https://api.payex.com/psp/errordetail/vipps/vipps_declined";
        }
        p->state = PaymentState::kAborted;
        r.snapshot = Snapshot(*p);
        return r;
      }
      case OpKind::kCapture:
      case OpKind::kCancel:
      case OpKind::kReverse: {
        auto* p = Find(call.payment_id);
        if (!p) return Refuse(404, "notfound");
        TxType type = call.kind == OpKind::kCapture  ? TxType::kCapture
                      : call.kind == OpKind::kCancel ? TxType::kCancellation
                                                     : TxType::kReversal;
        for (const auto& tx : p->txs)
          if (tx.payee_reference == call.payee_reference && tx.type != TxType::kAuthorization &&
              options_.duplicates != DuplicateMode::kAllow) {
            if (options_.duplicates == DuplicateMode::kReject)
              return Problem400("Transaction.PayeeReference");
            r.transaction = ToTx(tx);
            return r;
          }
        if (p->state != PaymentState::kReady || p->AnyInitialized())
          return Refuse(403, "forbidden");  // (the harness checks what payorch knew)
        int64_t auth = p->Authorized();
        int64_t captured = p->Sum(TxType::kCapture);
        int64_t cancelled = p->Sum(TxType::kCancellation);
        int64_t reversed = p->Sum(TxType::kReversal);
        int64_t amount = call.amount;
        if (auth == 0) {
          ++rule_violations_;  // before authorization
          return Refuse(403, "forbidden");
        }
        if (type == TxType::kCapture && (amount <= 0 || amount > auth - captured - cancelled)) {
          ++rule_violations_;
          return Problem400("Transaction.Amount");
        }
        if (type == TxType::kCancellation) {
          amount = auth - captured - cancelled;
          if (amount <= 0) {
            ++rule_violations_;
            return Refuse(403, "forbidden");
          }
        }
        if (type == TxType::kReversal && (amount <= 0 || amount > captured - reversed)) {
          ++rule_violations_;
          return Problem400("Transaction.Amount");
        }
        ModelTx tx;
        tx.id = p->id + "/transactions/t" + std::to_string(++counter_);
        tx.type = type;
        tx.amount = amount;
        tx.payee_reference = call.payee_reference;
        if (roll < options_.initialized_rate) {
          tx.state = TxState::kInitialized;
        } else if (roll < options_.initialized_rate + options_.tx_failed_rate) {
          tx.state = TxState::kFailed;
          tx.problem_type = "https://api.payex.com/psp/errordetail/vipps/acquirer_error";
        } else {
          tx.state = TxState::kCompleted;
        }
        p->txs.push_back(tx);
        ++effects_by_reference_[call.payee_reference];
        r.transaction = ToTx(p->txs.back());
        return r;
      }
    }
    return r;
  }

  // The payer answers in the app (only an authorization AwaitingActivity changes).
  bool PayerAnswers(const std::string& order_id, bool approve) {
    for (auto& [id, p] : payments_) {
      if (p.order_id != order_id) continue;
      if (auto* a = p.Auth(); a && a->state == TxState::kAwaitingActivity) {
        a->state = approve ? TxState::kCompleted : TxState::kFailed;
        if (!approve)
          a->problem_type = "https://api.payex.com/psp/errordetail/vipps/vipps_declined";
        return true;
      }
    }
    return false;
  }

  // PayEx loses track of an authorization the payer is deciding on (api §13.2).
  bool AuthorizationBecomesInitialized(const std::string& order_id) {
    for (auto& [id, p] : payments_) {
      if (p.order_id != order_id) continue;
      if (auto* a = p.Auth(); a && a->state == TxState::kAwaitingActivity) {
        a->state = TxState::kInitialized;
        return true;
      }
    }
    return false;
  }

  // PayEx settles transactions it held Initialized.
  bool ResolveInitialized(const std::string& order_id, bool complete) {
    bool any = false;
    for (auto& [id, p] : payments_) {
      if (p.order_id != order_id) continue;
      for (auto& tx : p.txs)
        if (tx.state == TxState::kInitialized) {
          tx.state = complete ? TxState::kCompleted : TxState::kFailed;
          if (!complete && tx.type == TxType::kAuthorization)
            tx.problem_type = "https://api.payex.com/psp/errordetail/vipps/vipps_declined";
          any = true;
        }
    }
    return any;
  }

  // The payment of the order that was authorized (at most one may be).
  const ModelPayment* AuthorizedPayment(const std::string& order_id) const {
    const ModelPayment* found = nullptr;
    for (const auto& [id, p] : payments_)
      if (p.order_id == order_id && p.Authorized() > 0) found = &p;
    return found;
  }
  int PaymentsWithAuthorization(const std::string& order_id) const {
    int n = 0;
    for (const auto& [id, p] : payments_)
      if (p.order_id == order_id && p.Auth()) ++n;
    return n;
  }
  const std::map<std::string, int>& EffectsByReference() const { return effects_by_reference_; }
  // Authorizations asked of the payer's phone (AwaitingActivity, or settled at once).
  int AuthorizationsAsked(const std::string& order_id) const {
    auto it = authorizations_per_order_.find(order_id);
    return it == authorizations_per_order_.end() ? 0 : it->second;
  }
  // A read of one payment (for callbacks' and checks' sake), nullopt if unknown.
  std::optional<PaymentSnapshot> Read(const std::string& payment_id) const {
    auto it = payments_.find(payment_id);
    if (it == payments_.end()) return std::nullopt;
    return Snapshot(it->second);
  }
  const std::map<std::string, ModelPayment>& Payments() const { return payments_; }
  int RuleViolations() const { return rule_violations_; }

 private:
  ModelPayment* Find(const std::string& id) {
    auto it = payments_.find(id);
    return it == payments_.end() ? nullptr : &it->second;
  }

  static Transaction ToTx(const ModelTx& m) {
    Transaction t;
    t.id = m.id;
    t.type = m.type;
    t.state = m.state;
    t.amount = m.amount;
    t.payee_reference = m.payee_reference;
    if (!m.problem_type.empty()) t.problem = domain::Problem{m.problem_type, "failed", "", 400, {}};
    return t;
  }

  PaymentSnapshot Snapshot(const ModelPayment& p) const {
    PaymentSnapshot s;
    s.payment_id = p.id;
    const ModelTx* auth = p.Auth();
    const bool awaiting = auth && auth->state == TxState::kAwaitingActivity;
    s.state = (p.AnyInitialized() || (awaiting && options_.pending_while_awaiting)) &&
                      p.state == PaymentState::kReady
                  ? PaymentState::kPending
                  : p.state;
    s.amount = p.Authorized();
    for (const auto& tx : p.txs) s.transactions.push_back(ToTx(tx));
    const ModelTx* a = p.Auth();
    s.can_authorize = p.state == PaymentState::kReady && (!a || a->state == TxState::kFailed);
    s.can_abort = !p.AnyCompleted();
    return s;
  }

  static PayexResult Refuse(int status, const std::string& key) {
    PayexResult r;
    r.result = ResultClass::kDefiniteFailure;
    r.problem =
        domain::Problem{"https://api.payex.com/psp/errordetail/" + key, key, "", status, {}};
    return r;
  }
  static PayexResult Problem400(const std::string& name) {
    PayexResult r = Refuse(400, "inputerror");
    r.problem->problems.push_back({name, "invalid"});
    return r;
  }

  ModelOptions options_;
  std::map<std::string, ModelPayment> payments_;
  std::map<std::string, std::string> create_refs_;
  std::map<std::string, int> effects_by_reference_;
  std::map<std::string, int> authorizations_per_order_;
  int counter_ = 0;
  int rule_violations_ = 0;
};

}  // namespace payorch::testing
