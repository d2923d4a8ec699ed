// Validation and derivation helpers of the domain: MSISDN normalization, masking,
// payeeReference derivation (SHA-256 based, so references never collide in
// practice and a restart derives the same ones), stable event ids, invariants.
#include <array>
#include <cstring>
#include <set>

#include "domain/decide.hpp"

namespace payorch::domain {

std::optional<std::string> NormalizeMsisdn(std::string_view raw) {
  std::string s;
  s.reserve(raw.size());
  for (char c : raw) {
    if (c == ' ' || c == '-' || c == '\t') continue;
    s.push_back(c);
  }
  std::string digits;
  if (s.rfind("+47", 0) == 0) {
    digits = s.substr(3);
  } else if (s.rfind("0047", 0) == 0) {
    digits = s.substr(4);
  } else if (s.size() == 8) {
    digits = s;
  } else {
    return std::nullopt;
  }
  if (digits.size() != 8) return std::nullopt;
  for (char c : digits)
    if (c < '0' || c > '9') return std::nullopt;
  return "+47" + digits;
}

std::string MaskMsisdn(std::string_view msisdn) {
  if (msisdn.size() < 4) return "****";
  std::string out;
  size_t keep_front = msisdn.rfind("+47", 0) == 0 ? 3 : 0;
  out.append(msisdn.substr(0, keep_front));
  out.append("****");
  out.append(msisdn.substr(msisdn.size() - 4));
  return out;
}


namespace {

// SHA-256 (FIPS 180-4), small and self-contained: the domain links nothing but the
// standard library, and payeeReferences need a well-distributed, stable digest.
class Sha256 {
 public:
  void Update(std::string_view data) {
    for (char c : data) {
      block_[block_len_++] = static_cast<uint8_t>(c);
      if (block_len_ == 64) {
        Transform();
        block_len_ = 0;
      }
    }
    bit_len_ += static_cast<uint64_t>(data.size()) * 8;
  }
  std::array<uint8_t, 32> Final() {
    uint64_t bits = bit_len_;
    block_[block_len_++] = 0x80;
    if (block_len_ > 56) {
      while (block_len_ < 64) block_[block_len_++] = 0;
      Transform();
      block_len_ = 0;
    }
    while (block_len_ < 56) block_[block_len_++] = 0;
    for (int i = 7; i >= 0; --i) block_[block_len_++] = static_cast<uint8_t>(bits >> (i * 8));
    Transform();
    std::array<uint8_t, 32> out{};
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 4; ++j) out[i * 4 + j] = static_cast<uint8_t>(h_[i] >> (24 - j * 8));
    return out;
  }

 private:
  static uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void Transform() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t{block_[i * 4]} << 24) | (uint32_t{block_[i * 4 + 1]} << 16) |
             (uint32_t{block_[i * 4 + 2]} << 8) | uint32_t{block_[i * 4 + 3]};
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t s1 = Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = h + s1 + ch + k[i] + w[i];
      uint32_t s0 = Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
  }

  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t block_[64] = {};
  size_t block_len_ = 0;
  uint64_t bit_len_ = 0;
};

char KindLetter(OpKind kind) {
  switch (kind) {
    case OpKind::kCreate: return 'P';
    case OpKind::kCapture: return 'C';
    case OpKind::kCancel: return 'X';
    case OpKind::kReverse: return 'R';
    case OpKind::kAuthorize: return 'A';
    case OpKind::kAbort: return 'B';
    case OpKind::kRead: return 'G';
  }
  return 'Z';
}

}  // namespace

std::string PayeeReference(std::string_view order_id, OpKind kind, std::string_view ref_id,
                           uint32_t attempt) {
  // Length-prefixed fields, so ("a","bc") and ("ab","c") never hash alike.
  Sha256 sha;
  auto field = [&sha](std::string_view v) {
    sha.Update(std::to_string(v.size()));
    sha.Update(":");
    sha.Update(v);
  };
  field("payorch.v1");
  field(order_id);
  field(std::string(1, KindLetter(kind)));
  field(ref_id);
  field(std::to_string(attempt));
  auto digest = sha.Final();

  // 29 base62 digits of the first 22 bytes (176 bits) of the digest, after the
  // kind letter: 30 characters of [A-Za-z0-9], as PayEx's Option A allows.
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::array<uint8_t, 22> num{};
  std::memcpy(num.data(), digest.data(), num.size());
  std::string out(30, '0');
  out[0] = KindLetter(kind);
  for (int pos = 29; pos >= 1; --pos) {
    uint32_t rem = 0;
    for (auto& byte : num) {
      uint32_t cur = (rem << 8) | byte;
      byte = static_cast<uint8_t>(cur / 62);
      rem = cur % 62;
    }
    out[pos] = kAlphabet[rem];
  }
  return out;
}

std::string PaymentEventId(std::string_view order_id, uint64_t sequence) {
  std::string id = "pe:";
  id.append(order_id);
  id.push_back(':');
  id.append(std::to_string(sequence));
  return id;
}

std::string CheckInvariants(const Payment& p) {
  const Balance& b = p.balance;
  if (b.authorized < 0 || b.captured < 0 || b.cancelled < 0 || b.reversed < 0)
    return "negative amount";
  if (b.captured > b.authorized) return "captured > authorized";
  if (b.cancelled > b.authorized - b.captured) return "cancelled > authorized - captured";
  if (b.reversed > b.captured) return "reversed > captured";
  if (p.phase != Phase::kAuthorized && p.phase != Phase::kNew && p.phase != Phase::kCreating &&
      b.authorized != 0 && p.phase != Phase::kAborting)
    return std::string("authorized amount in phase ") + PhaseName(p.phase);
  int in_flight = 0;
  std::set<std::string> refs;
  for (const Op& op : p.ops) {
    if (op.status == OpStatus::kInFlight) {
      ++in_flight;
      if (p.in_flight.call_id == 0 || p.in_flight.op_id != op.id) return "op in flight untracked";
    }
    if (!op.payee_reference.empty() && op.kind != OpKind::kCreate &&
        !refs.insert(op.payee_reference).second)
      return "payeeReference shared by two operations: " + op.payee_reference;
  }
  if (in_flight > 1) return "more than one op in flight";
  if (p.in_flight.call_id != 0 && p.in_flight.op_id != 0 && in_flight != 1)
    return "in-flight op missing";
  return "";
}

}  // namespace payorch::domain
