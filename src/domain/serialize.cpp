#include "domain/serialize.hpp"

#include <cstdint>
#include <limits>
#include <utility>

namespace payorch::domain {

// Layout: one leading byte that is both magic and version (0xB1: Payment v1,
// 0xB2: Payment v2, which adds Op::in_transit_until; 0xE1: PaymentEvent v1), then the fields in declaration order. Integers are
// varints (unsigned) or zigzag varints (signed, Time as ms since the epoch);
// strings are a varint length and the bytes; bools are one byte 0/1; enums are
// varints checked against their range; vectors and maps a varint count then the
// elements (map keys strictly increasing, so every value has one encoding).
//
// Changing a type in types.hpp means a new version byte here: keep the decoder
// of every version that may sit in a store (a v1 body decodes into the newer
// type with the new fields at their defaults), and encode only the newest.
// tests/store/serialize_test.cpp counts the fields of Payment and PaymentEvent
// and fails when one was added without being handled here.
namespace {

constexpr uint8_t kPaymentV1 = 0xB1;
constexpr uint8_t kPaymentV2 = 0xB2;
constexpr uint8_t kEventV1 = 0xE1;

// Largest valid value of each enum; a value above it in a body is malformed.
// Keep in step with types.hpp (the field-count test does not see new enumerators;
// the enum-range test in serialize_test.cpp does for those with names).
constexpr uint64_t kMaxPhase = static_cast<uint64_t>(Phase::kAborted);
constexpr uint64_t kMaxAbortCause = static_cast<uint64_t>(AbortCause::kPayexRefused);
constexpr uint64_t kMaxOpKind = static_cast<uint64_t>(OpKind::kRead);
constexpr uint64_t kMaxOpStatus = static_cast<uint64_t>(OpStatus::kFailed);
constexpr uint64_t kMaxEventKind = static_cast<uint64_t>(EventKind::kRejected);

class Writer {
 public:
  // `expected` avoids regrowing the buffer for a typical value.
  Writer(uint8_t magic, size_t expected) {
    out_.reserve(expected);
    out_.push_back(static_cast<char>(magic));
  }

  void U64(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void I64(int64_t v) { U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void Bool(bool v) { out_.push_back(v ? 1 : 0); }
  void Str(const std::string& s) {
    U64(s.size());
    out_.append(s);
  }
  void At(Time t) { I64(ToMillis(t)); }
  template <typename E>
  void Enum(E e) {
    U64(static_cast<uint64_t>(e));
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields in order; the first malformed one sets failed_ and every later
// read returns a default, so decoders check once at the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool Starts(uint8_t magic) const {
    return !in_.empty() && static_cast<uint8_t>(in_[0]) == magic;
  }

  bool Magic(uint8_t magic) {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != magic) return Fail();
    in_.remove_prefix(1);
    return true;
  }

  uint64_t U64() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) {
        Fail();
        return 0;
      }
      const uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      // The tenth byte may carry only the top bit of a 64-bit value.
      if (shift == 63 && b > 1) {
        Fail();
        return 0;
      }
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        // A trailing zero byte would be a second encoding of the same value.
        if (b == 0 && shift != 0) {
          Fail();
          return 0;
        }
        return v;
      }
    }
    Fail();  // not reached: the tenth byte ends the loop either way
    return 0;
  }
  uint32_t U32() {
    const uint64_t v = U64();
    if (v > std::numeric_limits<uint32_t>::max()) {
      Fail();
      return 0;
    }
    return static_cast<uint32_t>(v);
  }
  int64_t I64() {
    const uint64_t z = U64();
    return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  bool Bool() {
    if (in_.empty()) return Fail();
    const uint8_t b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    if (b > 1) return Fail();
    return b == 1;
  }
  std::string Str() {
    const uint64_t n = U64();
    if (n > in_.size()) {
      Fail();
      return std::string();
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  Time At() { return FromMillis(I64()); }
  template <typename E>
  E Enum(uint64_t max) {
    const uint64_t v = U64();
    if (v > max) {
      Fail();
      return E{};
    }
    return static_cast<E>(v);
  }
  // An element count: each element takes at least one byte, so a count above the
  // bytes left is malformed (and never drives a huge allocation).
  size_t Count() {
    const uint64_t n = U64();
    if (n > in_.size()) {
      Fail();
      return 0;
    }
    return static_cast<size_t>(n);
  }

  bool failed() const { return failed_; }
  // True when every read succeeded and nothing is left over.
  bool Done() const { return !failed_ && in_.empty(); }

  // Marks the input malformed for a reason only the caller can see.
  bool Fail() {
    failed_ = true;
    in_ = {};
    return false;
  }

 private:
  std::string_view in_;
  bool failed_ = false;
};

void PutBalance(Writer& w, const Balance& b) {
  w.I64(b.authorized);
  w.I64(b.captured);
  w.I64(b.cancelled);
  w.I64(b.reversed);
}

Balance GetBalance(Reader& r) {
  Balance b;
  b.authorized = r.I64();
  b.captured = r.I64();
  b.cancelled = r.I64();
  b.reversed = r.I64();
  return b;
}

void PutPurchase(Writer& w, const PurchaseRequested& p) {
  w.I64(p.amount);
  w.I64(p.vat_amount);
  w.Str(p.currency);
  w.Str(p.description);
  w.Str(p.payer_reference);
  w.Str(p.msisdn);
  w.Str(p.user_agent);
  w.Str(p.language);
  w.U64(p.metadata.size());
  for (const auto& [key, value] : p.metadata) {
    w.Str(key);
    w.Str(value);
  }
}

PurchaseRequested GetPurchase(Reader& r) {
  PurchaseRequested p;
  p.amount = r.I64();
  p.vat_amount = r.I64();
  p.currency = r.Str();
  p.description = r.Str();
  p.payer_reference = r.Str();
  p.msisdn = r.Str();
  p.user_agent = r.Str();
  p.language = r.Str();
  const size_t n = r.Count();
  for (size_t i = 0; i < n && !r.failed(); ++i) {
    std::string key = r.Str();
    std::string value = r.Str();
    // Strictly increasing keys: a duplicate would be silently dropped otherwise.
    if (!p.metadata.empty() && !(p.metadata.rbegin()->first < key)) {
      r.Fail();
      break;
    }
    p.metadata.emplace_hint(p.metadata.end(), std::move(key), std::move(value));
  }
  return p;
}

void PutOp(Writer& w, const Op& op) {
  w.U64(op.id);
  w.Enum(op.kind);
  w.Enum(op.status);
  w.Str(op.payee_reference);
  w.Str(op.ref_id);
  w.U64(op.attempt);
  w.I64(op.amount);
  w.I64(op.vat_amount);
  w.Str(op.description);
  w.Str(op.caused_by);
  w.U64(op.transient_tries);
  w.U64(op.doubt_reads);
  w.At(op.not_before);
  w.At(op.in_transit_until);
  w.Str(op.transaction_id);
  w.Str(op.failure_code);
}

Op GetOp(Reader& r, bool v2) {
  Op op;
  op.id = r.U32();
  op.kind = r.Enum<OpKind>(kMaxOpKind);
  op.status = r.Enum<OpStatus>(kMaxOpStatus);
  op.payee_reference = r.Str();
  op.ref_id = r.Str();
  op.attempt = r.U32();
  op.amount = r.I64();
  op.vat_amount = r.I64();
  op.description = r.Str();
  op.caused_by = r.Str();
  op.transient_tries = r.U32();
  op.doubt_reads = r.U32();
  op.not_before = r.At();
  if (v2) op.in_transit_until = r.At();  // v1: zero (Decide falls back to doubt_since)
  op.transaction_id = r.Str();
  op.failure_code = r.Str();
  return op;
}

}  // namespace

std::string EncodePayment(const Payment& p) {
  Writer w(kPaymentV2, 1024);
  w.Str(p.order_id);
  w.Enum(p.phase);
  w.Str(p.payment_id);
  w.Str(p.purchase_event_id);
  PutPurchase(w, p.purchase);
  w.Str(p.msisdn);
  w.Str(p.msisdn_event_id);
  w.Str(p.cancel_event_id);
  w.Str(p.cancel_reason);
  w.Enum(p.abort_cause);
  w.Bool(p.cancel_requested);
  w.Str(p.authorization_tx);
  PutBalance(w, p.balance);
  w.U64(p.ops.size());
  for (const Op& op : p.ops) PutOp(w, op);
  w.U64(p.in_flight.call_id);
  w.U64(p.in_flight.op_id);
  w.At(p.in_flight.sent_at);
  w.U64(p.last_call_id);
  w.U64(p.last_sequence);
  w.Bool(p.read_wanted);
  w.U64(p.polls);
  w.At(p.created_at);
  w.At(p.next_poll_at);
  w.At(p.deadline);
  w.At(p.doubt_since);
  w.At(p.updated_at);
  w.At(p.due_at);
  return w.Take();
}

std::optional<Payment> DecodePayment(std::string_view bytes) {
  Reader r(bytes);
  const bool v2 = r.Starts(kPaymentV2);
  if (!r.Magic(v2 ? kPaymentV2 : kPaymentV1)) return std::nullopt;
  Payment p;
  p.order_id = r.Str();
  p.phase = r.Enum<Phase>(kMaxPhase);
  p.payment_id = r.Str();
  p.purchase_event_id = r.Str();
  p.purchase = GetPurchase(r);
  p.msisdn = r.Str();
  p.msisdn_event_id = r.Str();
  p.cancel_event_id = r.Str();
  p.cancel_reason = r.Str();
  p.abort_cause = r.Enum<AbortCause>(kMaxAbortCause);
  p.cancel_requested = r.Bool();
  p.authorization_tx = r.Str();
  p.balance = GetBalance(r);
  const size_t n_ops = r.Count();
  p.ops.reserve(n_ops);
  for (size_t i = 0; i < n_ops && !r.failed(); ++i) p.ops.push_back(GetOp(r, v2));
  p.in_flight.call_id = r.U64();
  p.in_flight.op_id = r.U32();
  p.in_flight.sent_at = r.At();
  p.last_call_id = r.U64();
  p.last_sequence = r.U64();
  p.read_wanted = r.Bool();
  p.polls = r.U32();
  p.created_at = r.At();
  p.next_poll_at = r.At();
  p.deadline = r.At();
  p.doubt_since = r.At();
  p.updated_at = r.At();
  p.due_at = r.At();
  if (!r.Done()) return std::nullopt;
  return p;
}

std::string EncodePaymentEvent(const PaymentEvent& e) {
  Writer w(kEventV1, 256);
  w.Str(e.event_id);
  w.Str(e.order_id);
  w.Str(e.payment_id);
  w.U64(e.sequence);
  w.At(e.occurred_at);
  w.Str(e.caused_by_event_id);
  PutBalance(w, e.balance);
  w.Enum(e.kind);
  w.I64(e.amount);
  w.Str(e.transaction_id);
  w.Str(e.shipment_id);
  w.Str(e.refund_id);
  w.Str(e.reason);
  w.Str(e.failure.code);
  w.Str(e.failure.message);
  w.Str(e.failure.payex_problem_type);
  return w.Take();
}

std::optional<PaymentEvent> DecodePaymentEvent(std::string_view bytes) {
  Reader r(bytes);
  if (!r.Magic(kEventV1)) return std::nullopt;
  PaymentEvent e;
  e.event_id = r.Str();
  e.order_id = r.Str();
  e.payment_id = r.Str();
  e.sequence = r.U64();
  e.occurred_at = r.At();
  e.caused_by_event_id = r.Str();
  e.balance = GetBalance(r);
  e.kind = r.Enum<EventKind>(kMaxEventKind);
  e.amount = r.I64();
  e.transaction_id = r.Str();
  e.shipment_id = r.Str();
  e.refund_id = r.Str();
  e.reason = r.Str();
  e.failure.code = r.Str();
  e.failure.message = r.Str();
  e.failure.payex_problem_type = r.Str();
  if (!r.Done()) return std::nullopt;
  return e;
}

}  // namespace payorch::domain
