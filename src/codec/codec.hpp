// Maps the bus contract (proto/payorch/v1, contract.md) to and from domain values:
// decodes inbound order events (protobuf or JSON) and encodes outbound payment events.
// Pure functions, any thread. Bad input is a DecodeResult error with a stable code, never a throw.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "domain/types.hpp"

namespace payorch::codec {

// AMQP `content_type` values (contract.md) and `type` property values.
inline constexpr std::string_view kContentTypeProtobuf = "application/x-protobuf";
inline constexpr std::string_view kContentTypeJson = "application/json";
inline constexpr std::string_view kOrderEventType = "payorch.v1.OrderEvent";
inline constexpr std::string_view kPaymentEventType = "payorch.v1.PaymentEvent";

// Stable codes for `x-payorch-error` when an order event is dead-lettered.
namespace error {
inline constexpr const char* kUnsupportedContentType = "unsupported_content_type";
inline constexpr const char* kMalformedBody = "malformed_body";
inline constexpr const char* kMissingEventId = "missing_event_id";
inline constexpr const char* kMissingOrderId = "missing_order_id";
inline constexpr const char* kInvalidEventId = "invalid_event_id";
inline constexpr const char* kInvalidOrderId = "invalid_order_id";
inline constexpr const char* kMissingKind = "missing_kind";
}  // namespace error

struct DecodeError {
  std::string code;    // one of codec::error
  std::string detail;  // for people (`x-payorch-detail`): one line, bounded; may quote the parser
};

// Either a decoded order event or the reason there is none.
class [[nodiscard]] DecodeResult {
 public:
  DecodeResult(domain::OrderEvent event) : value_(std::move(event)) {}
  DecodeResult(DecodeError error) : value_(std::move(error)) {}

  bool Ok() const { return std::holds_alternative<domain::OrderEvent>(value_); }
  explicit operator bool() const { return Ok(); }
  // Precondition: Ok().
  const domain::OrderEvent& Event() const& { return std::get<domain::OrderEvent>(value_); }
  domain::OrderEvent&& Event() && { return std::get<domain::OrderEvent>(std::move(value_)); }
  // Precondition: !Ok().
  const DecodeError& Error() const { return std::get<DecodeError>(value_); }

 private:
  std::variant<domain::OrderEvent, DecodeError> value_;
};

// Decodes an inbound order event body according to its AMQP content_type.
//
// content_type: `application/x-protobuf` or `application/json`, case-insensitive,
// parameters allowed (`application/json; charset=utf-8`); a `charset` other than
// utf-8 on JSON, anything else or nothing at all is `unsupported_content_type`.
//
// `malformed_body` when:
//  - protobuf: the bytes do not parse (bad wire format, invalid UTF-8 in a string,
//    an out-of-range occurred_at), or the body is empty, or it parses only into
//    unknown fields (not an OrderEvent at all: random bytes often "parse").
//    Unknown fields next to known ones are tolerated, for forward compatibility.
//  - JSON: JsonStringToMessage refuses it (its message is the detail). JSON is
//    strict: unknown field names are refused, since hand-written JSON with a typo
//    ("ammount") must not pass as an event with amount 0.
// Then, in this order: `missing_event_id`, `invalid_event_id`, `missing_order_id`,
// `invalid_order_id` (an id that is not domain::ValidId: longer than 128 bytes, or
// not printable ASCII without spaces; its answer could not be published) and
// `missing_kind` (no oneof member set, which includes a kind newer than this build).
// A missing occurred_at decodes as the epoch (Time{}); the engine decides what it means.
// Amounts, currency, MSISDN etc. are not checked here: that is domain validation,
// answered with `rejected` payment events rather than dead-lettering.
DecodeResult DecodeOrderEvent(std::string_view body, std::string_view content_type);

// Protobuf bytes of an order event (what publishers send). occurred_at is truncated
// to milliseconds on the way in, so Encode/Decode round-trips exactly.
std::string EncodeOrderEvent(const domain::OrderEvent& event);
// The same in protobuf's canonical JSON mapping (lowerCamelCase names, int64 as strings).
std::string EncodeOrderEventJson(const domain::OrderEvent& event, bool pretty = false);

// Protobuf bytes of a payment event: the flattened domain::PaymentEvent mapped onto
// the `kind` oneof; fields the kind does not carry are not encoded.
std::string EncodePaymentEvent(const domain::PaymentEvent& event);
// nullopt if the bytes do not parse or carry no kind. Fields the kind does not
// carry stay empty in the result.
std::optional<domain::PaymentEvent> DecodePaymentEvent(std::string_view bytes);

// Canonical JSON of a payment event, for the CLI, logs of tools and the demo.
std::string PaymentEventToJson(const domain::PaymentEvent& event, bool pretty = false);
// nullopt if `bytes` is not a PaymentEvent (does not parse, or no kind), as DecodePaymentEvent.
std::optional<std::string> PaymentEventToJson(std::string_view bytes, bool pretty = false);

// "payment." + EventKindName(kind), e.g. "payment.capture_failed".
std::string RoutingKey(domain::EventKind kind);
// "order." + OrderEventKindName(kind), e.g. "order.shipped" (for publishers and tools).
std::string OrderRoutingKey(const domain::OrderEventKind& kind);

}  // namespace payorch::codec
