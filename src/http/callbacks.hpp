// The PayEx callback endpoint as a plain function of a Request, so every rule is
// testable without sockets. Runs on the server's thread; never throws itself (an
// exception from on_hint propagates, and the server answers it with a 500).
// A callback is only a hint that an order changed: the engine answers it with a
// GET to PayEx, so the body is checked for being JSON and nothing more.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "http/message.hpp"

namespace payorch::http {

struct CallbackOptions {
  // The callbackUrl is "<base>/<percent-encoded order id>?token=<CallbackToken>",
  // where <base> is served under this prefix.
  std::string path_prefix = "/callbacks/payex/";
  std::string secret;                      // empty: every callback is refused (401)
  std::size_t max_body_bytes = 64 * 1024;  // the server's own limit normally hits first
};

// kElsewhere: a partitioned payorch whose order's partition another instance serves
// (issue 13); PayEx's retry or the holder's polling reaches the payment. kStopping:
// this payorchd is draining; PayEx's retry reaches the next one.
enum class HintResult { kAccepted, kUnknownPayment, kElsewhere, kStopping };

// Checks, in this order (each refusal is a small JSON problem {"error":"<reason>"}):
//   method other than POST            405 method_not_allowed (Allow: POST)
//   not exactly one non-empty order
//   id segment after the prefix       404 not_found
//   missing, repeated or bad token    401 bad_token (one answer for all; constant time)
//   body larger than max_body_bytes   413 body_too_large
//   body not a JSON object            400 malformed_body
//   on_hint(order_id) unknown         404 unknown_payment
//   on_hint(order_id) elsewhere       503 partition_elsewhere (Retry-After: 1)
//   on_hint(order_id) stopping        503 stopping (Retry-After: 1)
//   otherwise                         200, empty body
// on_hint runs only for an authentic callback with a well-formed body. The order
// id is taken from the raw target (then decoded), so an id containing '/' (sent as
// %2F) is still one segment; r.target must be set (ParseTarget does it).
Response HandleCallback(const Request& r, const CallbackOptions& o,
                        const std::function<HintResult(const std::string& order_id)>& on_hint);

}  // namespace payorch::http
