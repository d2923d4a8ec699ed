#include "app/reconcile_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace payorch::app {

namespace json = boost::json;

namespace {

json::object BalanceJson(const domain::Balance& b) {
  return {{"authorized", b.authorized},
          {"captured", b.captured},
          {"cancelled", b.cancelled},
          {"reversed", b.reversed}};
}

}  // namespace

std::pair<int, std::string> ReconcileJson(const std::string& order_id,
                                          const engine::ReconcileOutcome& o) {
  using S = engine::ReconcileOutcome::Status;
  json::object out{{"order_id", order_id}};
  switch (o.status) {
    case S::kUnknownOrder: out["error"] = "unknown_order"; return {404, json::serialize(out)};
    case S::kStopping: out["error"] = "stopping"; return {503, json::serialize(out)};
    case S::kPayexError:
      out["error"] = "payex_unreachable";
      out["detail"] = o.error;
      return {502, json::serialize(out)};
    case S::kNotCreated:
      out["status"] = "not_created";
      out["phase"] = domain::PhaseName(o.payment.phase);
      out["payorch"] = BalanceJson(o.payment.balance);
      out["mismatches"] = json::array();
      return {200, json::serialize(out)};
    case S::kCompared: break;
  }
  out["status"] = "compared";
  out["payment_id"] = o.payment.payment_id;
  out["phase"] = domain::PhaseName(o.payment.phase);
  out["unsettled"] = o.result.unsettled;
  if (o.result.unsettled) out["unsettled_why"] = o.result.unsettled_why;
  out["payorch"] = BalanceJson(o.payment.balance);
  json::object payex = BalanceJson(o.result.payex_balance);
  payex["state"] = domain::PaymentStateName(o.payex.state);
  out["payex"] = std::move(payex);
  json::array mismatches;
  for (const domain::Mismatch& m : o.result.mismatches)
    mismatches.push_back(
        json::object{{"what", m.what}, {"payorch", m.payorch}, {"payex", m.payex}});
  out["mismatches"] = std::move(mismatches);
  return {200, json::serialize(out)};
}

}  // namespace payorch::app
