// The per-payment token in the callbackUrl given to PayEx: base64url (no padding)
// of HMAC-SHA256(secret, order_id), so only who knows the secret can forge a
// callback for an order. Pure functions, any thread; they never throw.
#pragma once

#include <string>
#include <string_view>

namespace payorch::http {

// 43 characters. An empty secret still yields a token, but verifies nothing.
std::string CallbackToken(std::string_view secret, std::string_view order_id);

// Constant-time in the token's content. False for an empty secret (fails closed
// when the secret is missing from the configuration).
bool VerifyCallbackToken(std::string_view secret, std::string_view order_id,
                         std::string_view token);

}  // namespace payorch::http
