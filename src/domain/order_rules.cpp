#include "domain/order_rules.hpp"

namespace payorch::domain {
namespace {

// Text that reaches PayEx, its pages, logs and the operators' screens: strict
// UTF-8 of at most `max_bytes`, without controls (domain::IsPlainText).
bool PlainText(std::string_view s, size_t max_bytes) {
  return s.size() <= max_bytes && IsPlainText(s);
}

}  // namespace

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (unsigned char c : id)
    if (c < 0x21 || c > 0x7E) return false;
  return true;
}


std::optional<Rejection> CheckAmounts(int64_t amount, int64_t vat_amount) {
  if (amount <= 0) return Rejection{code::kInvalidAmount, "amount must be greater than 0 (minor units)"};
  if (amount > kMaxAmount)
    return Rejection{code::kInvalidAmount,
                     "amount must be at most " + std::to_string(kMaxAmount) + " (minor units)"};
  if (vat_amount < 0 || vat_amount > amount)
    return Rejection{code::kInvalidVatAmount, "vat_amount must be between 0 and amount"};
  return std::nullopt;
}

std::optional<Rejection> CheckDescription(std::string_view description, bool required) {
  const int len = Utf8Length(description);
  if (len < 0 || len > 40 || (required && len == 0) || !IsPlainText(description))
    return Rejection{code::kInvalidDescription,
                     required
                         ? "description must be 1 to 40 characters of UTF-8, no control characters"
                         : "description must be at most 40 characters of UTF-8, no control "
                           "characters"};
  return std::nullopt;
}

std::optional<Rejection> CheckPurchase(const PurchaseRequested& pr) {
  if (auto r = CheckAmounts(pr.amount, pr.vat_amount)) return r;
  if (pr.currency != "NOK") return Rejection{code::kInvalidCurrency, "Vipps accepts only NOK"};
  if (auto r = CheckDescription(pr.description, true)) return r;
  // PayEx documents no length for these; they go to PayEx as they are, so they
  // are kept to what a browser and a merchant's payer id need.
  if (!PlainText(pr.user_agent, kMaxUserAgentBytes))
    return Rejection{code::kInvalidUserAgent,
                     "user_agent must be at most 512 bytes of UTF-8 without control characters"};
  if (!PlainText(pr.payer_reference, kMaxPayerReferenceBytes))
    return Rejection{code::kInvalidPayerReference,
                     "payer_reference must be at most 50 bytes of UTF-8 without control "
                     "characters"};
  if (!pr.language.empty() && pr.language != "nb-NO" && pr.language != "en-US")
    return Rejection{code::kInvalidLanguage, "language must be nb-NO or en-US"};
  if (pr.metadata.size() > kMaxMetadataEntries)
    return Rejection{code::kInvalidMetadata, "metadata must have at most 32 entries"};
  for (const auto& [key, value] : pr.metadata)
    if (key.empty() || !PlainText(key, kMaxMetadataKeyBytes) ||
        !PlainText(value, kMaxMetadataValueBytes))
      return Rejection{code::kInvalidMetadata,
                       "metadata keys must be 1 to 64 bytes and values at most 512 bytes, of "
                       "UTF-8 without control characters"};
  return std::nullopt;
}

std::string CancelDescription(std::string_view reason) {
  if (reason.empty() || !IsPlainText(reason)) return "Order cancelled";
  size_t end = 0;
  for (int chars = 0; end < reason.size() && chars < 40; ++chars) {
    ++end;
    while (end < reason.size() && (static_cast<unsigned char>(reason[end]) & 0xC0) == 0x80) ++end;
  }
  return std::string(reason.substr(0, end));
}

std::optional<Rejection> CheckShipment(const OrderShipped& s) {
  if (!ValidId(s.shipment_id))
    return Rejection{code::kInvalidShipmentId,
                     "shipment_id must be 1 to 128 printable ASCII characters without spaces"};
  if (auto r = CheckAmounts(s.amount, s.vat_amount)) return r;
  return CheckDescription(s.description, false);
}

std::optional<Rejection> CheckRefund(const RefundRequested& r) {
  if (!ValidId(r.refund_id))
    return Rejection{code::kInvalidRefundId,
                     "refund_id must be 1 to 128 printable ASCII characters without spaces"};
  if (auto x = CheckAmounts(r.amount, r.vat_amount)) return x;
  return CheckDescription(r.description, false);
}

}  // namespace payorch::domain
