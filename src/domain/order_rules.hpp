// The field rules of order events: what an event is rejected for on its own,
// before the payment's state is looked at (amounts, texts sent to PayEx, ids of
// shipments and refunds, metadata). Pure functions, any thread. Each answers
// nullopt when the fields are usable, else the stable code (types.hpp, code::) and
// a message for the `rejected` payment event that never quotes the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/safe_text.hpp"
#include "domain/types.hpp"

namespace payorch::domain {

// Ids from the bus (event_id, order_id, shipment_id, refund_id) travel as AMQP ids
// (at most 255 bytes), inside payment event ids, in callback URLs, in log lines and
// in the store: 1 to kMaxIdBytes bytes of printable ASCII without spaces
// (0x21..0x7E). Longer or other ids are refused where they enter.
inline constexpr size_t kMaxIdBytes = 128;
bool ValidId(std::string_view id);

// PayEx documents no maximum amount. payorch takes at most 10^12 minor units
// (10 billion kroner) per amount: every sum of a payment's amounts (captured,
// cancelled, reversed, in flight) then stays far inside int64, and every amount is
// an integer any JSON reader holds exactly (below 2^53).
inline constexpr int64_t kMaxAmount = 1'000'000'000'000;
// Bounds on purchase text PayEx documents no length for (userAgent, payerReference).
inline constexpr size_t kMaxUserAgentBytes = 512;
inline constexpr size_t kMaxPayerReferenceBytes = 50;
// metadata: PayEx stores it as given and documents no bounds; these keep one
// purchase's map well under PayEx's and the bus's sizes.
inline constexpr size_t kMaxMetadataEntries = 32;
inline constexpr size_t kMaxMetadataKeyBytes = 64;
inline constexpr size_t kMaxMetadataValueBytes = 512;

struct Rejection {
  const char* code;
  std::string message;
};

// Texts below are domain::IsPlainText: strict UTF-8 without controls.

// 1 <= amount <= kMaxAmount, 0 <= vat_amount <= amount.
std::optional<Rejection> CheckAmounts(int64_t amount, int64_t vat_amount);
// At most 40 characters of UTF-8 without control characters; `required`: not empty.
std::optional<Rejection> CheckDescription(std::string_view description, bool required);
// Everything of a purchase but its MSISDN (normalized by the state machine):
// amounts, currency NOK, description, user_agent, payer_reference, language, metadata.
std::optional<Rejection> CheckPurchase(const PurchaseRequested& purchase);
// A shipment's or refund's own fields: its id, amounts and description.
std::optional<Rejection> CheckShipment(const OrderShipped& shipped);
std::optional<Rejection> CheckRefund(const RefundRequested& refund);
// The cancellation's description toward PayEx from a cancel event's free reason:
// its first 40 characters when it is UTF-8 without control characters, else
// "Order cancelled".
std::string CancelDescription(std::string_view reason);

}  // namespace payorch::domain
