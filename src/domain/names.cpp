#include <array>
#include <utility>

#include "domain/types.hpp"

namespace payorch::domain {

const char* OrderEventKindName(const OrderEventKind& kind) {
  static constexpr std::array<const char*, 5> kNames = {
      "purchase_requested", "payer_msisdn_provided", "shipped", "cancelled", "refund_requested"};
  return kNames[kind.index()];
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kCreate: return "create";
    case OpKind::kAuthorize: return "authorize";
    case OpKind::kCapture: return "capture";
    case OpKind::kCancel: return "cancel";
    case OpKind::kReverse: return "reverse";
    case OpKind::kAbort: return "abort";
    case OpKind::kRead: return "read";
  }
  return "?";
}

const char* OpStatusName(OpStatus status) {
  switch (status) {
    case OpStatus::kWaiting: return "waiting";
    case OpStatus::kQueued: return "queued";
    case OpStatus::kInFlight: return "in_flight";
    case OpStatus::kInDoubt: return "in_doubt";
    case OpStatus::kPending: return "pending";
    case OpStatus::kDone: return "done";
    case OpStatus::kFailed: return "failed";
  }
  return "?";
}

const char* PaymentStateName(PaymentState s) {
  switch (s) {
    case PaymentState::kReady: return "Ready";
    case PaymentState::kPending: return "Pending";
    case PaymentState::kFailed: return "Failed";
    case PaymentState::kAborted: return "Aborted";
    case PaymentState::kUnknown: break;
  }
  return "unknown";
}

const char* ResultClassName(ResultClass c) {
  switch (c) {
    case ResultClass::kSuccess: return "success";
    case ResultClass::kDefiniteFailure: return "definite_failure";
    case ResultClass::kTransient: return "transient";
    case ResultClass::kInDoubt: return "in_doubt";
  }
  return "?";
}

namespace {
constexpr std::array<std::pair<Phase, const char*>, 9> kPhases = {{
    {Phase::kNew, "new"},
    {Phase::kCreating, "creating"},
    {Phase::kAwaitingMsisdn, "awaiting_msisdn"},
    {Phase::kAuthorizing, "authorizing"},
    {Phase::kAwaitingPayer, "awaiting_payer"},
    {Phase::kAborting, "aborting"},
    {Phase::kAuthorized, "authorized"},
    {Phase::kFailed, "failed"},
    {Phase::kAborted, "aborted"},
}};
constexpr std::array<std::pair<EventKind, const char*>, 10> kEventKinds = {{
    {EventKind::kAuthorized, "authorized"},
    {EventKind::kAuthorizationFailed, "authorization_failed"},
    {EventKind::kCaptured, "captured"},
    {EventKind::kCaptureFailed, "capture_failed"},
    {EventKind::kCancelled, "cancelled"},
    {EventKind::kCancelFailed, "cancel_failed"},
    {EventKind::kReversed, "reversed"},
    {EventKind::kReversalFailed, "reversal_failed"},
    {EventKind::kAborted, "aborted"},
    {EventKind::kRejected, "rejected"},
}};
}  // namespace

const char* PhaseName(Phase phase) {
  for (const auto& [p, name] : kPhases)
    if (p == phase) return name;
  return "?";
}

std::optional<Phase> PhaseFromName(const std::string& name) {
  for (const auto& [p, n] : kPhases)
    if (name == n) return p;
  return std::nullopt;
}

const char* EventKindName(EventKind kind) {
  for (const auto& [k, name] : kEventKinds)
    if (k == kind) return name;
  return "?";
}

std::optional<EventKind> EventKindFromName(const std::string& name) {
  for (const auto& [k, n] : kEventKinds)
    if (name == n) return k;
  return std::nullopt;
}

bool IsFailureKind(EventKind kind) {
  switch (kind) {
    case EventKind::kAuthorizationFailed:
    case EventKind::kCaptureFailed:
    case EventKind::kCancelFailed:
    case EventKind::kReversalFailed:
    case EventKind::kRejected: return true;
    default: return false;
  }
}

const char* InputName(const Input& input) {
  static constexpr std::array<const char*, 5> kNames = {"order_event", "payex_result", "tick",
                                                        "callback", "resume"};
  return kNames[input.index()];
}

}  // namespace payorch::domain
