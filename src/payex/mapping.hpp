// JSON <-> domain mapping of the PayEx Vipps API (payex-vipps-api.md): request
// bodies, liberal parsing of payment, transaction, list and problem resources, and
// the outcome classification of an HTTP exchange. Pure functions, no IO, no
// Boost in this header; safe on any thread. Parsers never throw: a body they cannot
// use comes back as an error string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/types.hpp"
#include "payex/options.hpp"

namespace payorch::payex {

// One entry of a resource's "operations" array (api §4.2).
struct Operation {
  std::string rel;
  std::string method;
  std::string href;
  std::string content_type;
};

// A payment resource (create, GET, PATCH answers): the snapshot the state machine
// reads plus the operations offered now.
struct PaymentResource {
  domain::PaymentSnapshot snapshot;
  int64_t number = 0;
  std::vector<Operation> operations;
};

template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;  // why value is empty
  explicit operator bool() const { return value.has_value(); }
};

// The rels of the direct authorization, in the order they are looked for (§4.3).
inline constexpr const char* kAuthorizationRels[] = {"create-authorization",
                                                     "direct-authorization"};

// ---- parsing -----------------------------------------------------------------

// {"payment":{...}, "operations":[...]} with any $expand'ed lists inlined.
Parsed<PaymentResource> ParsePaymentResource(std::string_view body);
// A created or single transaction: {"payment":..., "authorization"|"capture"|
// "cancellation"|"reversal"|"transaction": {...}}; items wrapped or flat.
Parsed<domain::Transaction> ParseTransactionResource(std::string_view body);
// Any list answer ({"transactions":{"transactionList":[...]}}, captures, ...).
Parsed<std::vector<domain::Transaction>> ParseTransactionList(std::string_view body);
// An RFC 7807 problem, bare or wrapped in {"problem":{...}} (failed-payment).
Parsed<domain::Problem> ParseProblem(std::string_view body);

domain::PaymentState ParsePaymentState(std::string_view s);  // case-insensitive
domain::TxState ParseTxState(std::string_view s);
domain::TxType ParseTxType(std::string_view s);

// The first operation whose rel equals one of `rels` (case-insensitive), in the
// order of `rels`; nullptr when none is offered.
const Operation* FindOperation(const std::vector<Operation>& ops,
                               const std::vector<std::string_view>& rels);
std::string OperationRels(const std::vector<Operation>& ops);  // "a,b,c" for messages

// ---- request bodies ----------------------------------------------------------

// POST /psp/vipps/payments (api §4.1). `callback_url` may be empty.
std::string BuildCreateBody(const domain::PayexCall& call, const ClientOptions& options,
                            const std::string& callback_url);
std::string BuildAuthorizeBody(std::string_view msisdn, MsisdnField field);
std::string BuildCaptureBody(const domain::PayexCall& call);  // also reversal
std::string BuildCancelBody(const domain::PayexCall& call);
std::string BuildAbortBody(std::string_view abort_reason);

// "<base>/<pct(order_id)>?token=<pct(token)>": see ClientOptions::callback_url_base.
std::string CallbackUrlFor(const ClientOptions& options, const std::string& order_id);

// ---- classification (design.md §4) ---------------------------------------------

// How an HTTP exchange ended, as the transport saw it.
enum class Transport {
  kAnswered,       // a complete response was read
  kNotSent,        // connect/TLS/pool failure: the request never left
  kLostAfterSend,  // reset, EOF or truncated body after the request went out
  kTimeoutAfterSend,
  kBadResponse,  // unreadable HTTP (garbage, too large) after sending
};

struct Exchange {
  Transport transport = Transport::kAnswered;
  bool effectful = false;  // POST/PATCH: the request may change PayEx
  int status = 0;
  std::string content_type;
  std::string body;
  std::string error;  // transport detail for kNotSent/... (no secrets)
};

// The result class of an exchange and, for failures, the problem to report.
// Successful 2xx answers are kSuccess with no problem; the caller then parses the
// body and demotes an unusable one with ClassifyUnusableBody.
struct Classified {
  domain::ResultClass result = domain::ResultClass::kSuccess;
  std::optional<domain::Problem> problem;
};
Classified Classify(const Exchange& exchange);
// A 2xx whose body could not be used (bad JSON, wrong content type, missing id):
// in doubt after an effectful request, transient after a read.
Classified ClassifyUnusableBody(const Exchange& exchange, const std::string& why);
// application/json or application/problem+json (any parameters), or +json.
bool IsJsonContentType(std::string_view content_type);

// payorch's own problem types for outcomes PayEx did not describe.
namespace problem_type {
inline constexpr const char* kConnect = "urn:payorch:connect-failed";
inline constexpr const char* kPoolTimeout = "urn:payorch:pool-timeout";
inline constexpr const char* kTimeout = "urn:payorch:timeout";
inline constexpr const char* kConnectionLost = "urn:payorch:connection-lost";
inline constexpr const char* kBadResponse = "urn:payorch:bad-response";
inline constexpr const char* kHttpStatus = "urn:payorch:http-status";
inline constexpr const char* kOperationNotOffered = "urn:payorch:operation-not-offered";
inline constexpr const char* kForeignHref = "urn:payorch:foreign-operation-href";
inline constexpr const char* kBadCall = "urn:payorch:bad-call";
}  // namespace problem_type

// A fresh random RFC 4122 version-4 UUID (Session-Id).
std::string NewSessionId();

}  // namespace payorch::payex
