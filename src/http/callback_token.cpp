#include "http/callback_token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <string>

namespace payorch::http {
namespace {

std::string Base64Url(const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (size - i == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (size - i == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

// An HMAC-SHA256 context keyed once per thread and secret, initialised again for
// each token: OpenSSL 3's one-shot HMAC() looks the algorithms up on every call,
// which cost more than the MAC itself (about 4% of payorchd's engine thread).
// It keeps a copy of the secret (to notice another one) for the thread's life,
// cleansed when replaced; the process holds the secret in its configuration anyway.
class KeyedHmac {
 public:
  ~KeyedHmac() { Reset(); }
  // The MAC of `data`, or false (allocation failure).
  bool Mac(std::string_view secret, std::string_view data, unsigned char* out, size_t* size) {
    if (!ctx_ || secret != secret_) {
      Reset();
      if (!Key(secret)) return false;
    } else if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1) {  // the same key again
      return false;
    }
    static const unsigned char kEmpty = 0;
    const unsigned char* bytes =
        data.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(data.data());
    return EVP_MAC_update(ctx_, bytes, data.size()) == 1 &&
           EVP_MAC_final(ctx_, out, size, EVP_MAX_MD_SIZE) == 1;
  }

 private:
  bool Key(std::string_view secret) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!mac_) return false;
    ctx_ = EVP_MAC_CTX_new(mac_);
    if (!ctx_) return false;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    // A non-null key pointer even for an empty key.
    static const unsigned char kEmpty = 0;
    const unsigned char* key =
        secret.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(secret.data());
    if (EVP_MAC_init(ctx_, key, secret.size(), params) != 1) {
      Reset();
      return false;
    }
    secret_ = std::string(secret);
    return true;
  }
  void Reset() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
    ctx_ = nullptr;
    mac_ = nullptr;
    OPENSSL_cleanse(secret_.data(), secret_.size());
    secret_.clear();
  }

  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
  std::string secret_;
};

}  // namespace

std::string CallbackToken(std::string_view secret, std::string_view order_id) {
  thread_local KeyedHmac hmac;
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_size = 0;
  if (!hmac.Mac(secret, order_id, mac, &mac_size))
    return {};  // only on allocation failure; an empty token never verifies
  return Base64Url(mac, mac_size);
}

bool VerifyCallbackToken(std::string_view secret, std::string_view order_id,
                         std::string_view token) {
  if (secret.empty()) return false;
  std::string expected = CallbackToken(secret, order_id);
  // The length is public (always 43); only the content is compared in constant time.
  if (expected.empty() || token.size() != expected.size()) return false;
  return CRYPTO_memcmp(expected.data(), token.data(), expected.size()) == 0;
}

}  // namespace payorch::http
