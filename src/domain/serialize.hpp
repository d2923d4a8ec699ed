// Binary encoding of domain values for the store (payment rows, outbox bodies).
// Versioned and self-checking: Decode* returns nullopt on anything malformed.
// Standard library only; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "domain/types.hpp"

namespace payorch::domain {

std::string EncodePayment(const Payment& payment);
std::optional<Payment> DecodePayment(std::string_view bytes);

std::string EncodePaymentEvent(const PaymentEvent& event);
std::optional<PaymentEvent> DecodePaymentEvent(std::string_view bytes);

}  // namespace payorch::domain
