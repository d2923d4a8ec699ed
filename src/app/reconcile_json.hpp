// GET /admin/payments/<order>/reconcile's answer (payorchctl reconcile): an engine's
// ReconcileOutcome as HTTP status and JSON.
#pragma once

#include <string>
#include <utility>

#include "engine/engine.hpp"

namespace payorch::app {

// 200 {"order_id","status":"compared|not_created","unsettled","unsettled_why",
// "payment_id","phase","payorch":{balance},"payex":{"state",balance},"mismatches":[...]};
// 404 unknown_order; 502 payex_unreachable (with "error"); 503 stopping.
std::pair<int, std::string> ReconcileJson(const std::string& order_id,
                                          const engine::ReconcileOutcome& o);

}  // namespace payorch::app
