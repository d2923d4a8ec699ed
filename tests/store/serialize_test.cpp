#include "domain/serialize.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace payorch::domain {
namespace {

using store::testing::FullEvent;
using store::testing::FullPayment;

// ---------------------------------------------------------------------------
// Field counting: the number of members of an aggregate, found by trying to
// brace-initialize it with ever more "anything" values. It turns a new field in
// types.hpp into a failing test here rather than a silently dropped value.

struct AnyField {
  template <typename T>
  operator T() const;  // never defined: only used in unevaluated requires
};

template <typename T, typename... A>
consteval size_t CountFields() {
  if constexpr (requires { T{A{}..., AnyField{}}; }) {
    return CountFields<T, A..., AnyField>();
  } else {
    return sizeof...(A);
  }
}

TEST(SerializeTest, EncodesEveryFieldOfTheTypes) {
  // If one of these fails, a field was added or removed in types.hpp: encode it in
  // src/domain/serialize.cpp (with a new version byte, keeping the old decoder),
  // add it to Dump() below and to FullPayment/FullEvent, then update the count.
  EXPECT_EQ(CountFields<Payment>(), 25u);
  EXPECT_EQ(CountFields<PurchaseRequested>(), 9u);
  EXPECT_EQ(CountFields<Balance>(), 4u);
  EXPECT_EQ(CountFields<Op>(), 16u);
  EXPECT_EQ(CountFields<InFlight>(), 3u);
  EXPECT_EQ(CountFields<PaymentEvent>(), 14u);
  EXPECT_EQ(CountFields<Failure>(), 3u);
}

TEST(SerializeTest, KnowsEveryEnumerator) {
  // serialize.cpp rejects enum values above the last enumerator it knows; these
  // fail when an enumerator is appended (and named) without updating it.
  EXPECT_STREQ(PhaseName(static_cast<Phase>(static_cast<int>(Phase::kAborted) + 1)), "?");
  EXPECT_STREQ(OpKindName(static_cast<OpKind>(static_cast<int>(OpKind::kRead) + 1)), "?");
  EXPECT_STREQ(OpStatusName(static_cast<OpStatus>(static_cast<int>(OpStatus::kFailed) + 1)), "?");
  EXPECT_STREQ(EventKindName(static_cast<EventKind>(static_cast<int>(EventKind::kRejected) + 1)),
               "?");
}

// ---------------------------------------------------------------------------
// A field-by-field rendering, written independently of serialize.cpp, so that a
// field the encoder forgets shows up as a difference.

using Fields = std::vector<std::pair<std::string, std::string>>;

template <typename T>
std::string Str(const T& v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
std::string Str(Time t) {
  return Str(ToMillis(t));
}
template <typename E>
requires std::is_enum_v<E> std::string Str(const E& e) {
  return Str(static_cast<int64_t>(e));
}
std::string Str(const std::string& s) {
  return "\"" + s + "\"" + Str(s.size());
}
std::string Str(bool b) {
  return b ? "true" : "false";
}

void Add(Fields& f, const std::string& prefix, const Balance& b) {
  f.emplace_back(prefix + "authorized", Str(b.authorized));
  f.emplace_back(prefix + "captured", Str(b.captured));
  f.emplace_back(prefix + "cancelled", Str(b.cancelled));
  f.emplace_back(prefix + "reversed", Str(b.reversed));
}

Fields Dump(const Payment& p) {
  Fields f;
#define PAYORCH_FIELD(name) f.emplace_back(#name, Str(p.name))
  PAYORCH_FIELD(order_id);
  PAYORCH_FIELD(phase);
  PAYORCH_FIELD(payment_id);
  PAYORCH_FIELD(purchase_event_id);
  PAYORCH_FIELD(purchase.amount);
  PAYORCH_FIELD(purchase.vat_amount);
  PAYORCH_FIELD(purchase.currency);
  PAYORCH_FIELD(purchase.description);
  PAYORCH_FIELD(purchase.payer_reference);
  PAYORCH_FIELD(purchase.msisdn);
  PAYORCH_FIELD(purchase.user_agent);
  PAYORCH_FIELD(purchase.language);
  std::string metadata;
  for (const auto& [k, v] : p.purchase.metadata) metadata += Str(k) + "=" + Str(v) + ";";
  f.emplace_back("purchase.metadata", metadata);
  PAYORCH_FIELD(msisdn);
  PAYORCH_FIELD(msisdn_event_id);
  PAYORCH_FIELD(cancel_event_id);
  PAYORCH_FIELD(cancel_reason);
  PAYORCH_FIELD(abort_cause);
  PAYORCH_FIELD(cancel_requested);
  PAYORCH_FIELD(authorization_tx);
  Add(f, "balance.", p.balance);
  f.emplace_back("ops.size", Str(p.ops.size()));
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const Op& op = p.ops[i];
    const std::string o = "ops[" + std::to_string(i) + "].";
#define PAYORCH_OP_FIELD(name) f.emplace_back(o + #name, Str(op.name))
    PAYORCH_OP_FIELD(id);
    PAYORCH_OP_FIELD(kind);
    PAYORCH_OP_FIELD(status);
    PAYORCH_OP_FIELD(payee_reference);
    PAYORCH_OP_FIELD(ref_id);
    PAYORCH_OP_FIELD(attempt);
    PAYORCH_OP_FIELD(amount);
    PAYORCH_OP_FIELD(vat_amount);
    PAYORCH_OP_FIELD(description);
    PAYORCH_OP_FIELD(caused_by);
    PAYORCH_OP_FIELD(transient_tries);
    PAYORCH_OP_FIELD(doubt_reads);
    PAYORCH_OP_FIELD(not_before);
    PAYORCH_OP_FIELD(in_transit_until);
    PAYORCH_OP_FIELD(transaction_id);
    PAYORCH_OP_FIELD(failure_code);
#undef PAYORCH_OP_FIELD
  }
  PAYORCH_FIELD(in_flight.call_id);
  PAYORCH_FIELD(in_flight.op_id);
  PAYORCH_FIELD(in_flight.sent_at);
  PAYORCH_FIELD(last_call_id);
  PAYORCH_FIELD(last_sequence);
  PAYORCH_FIELD(read_wanted);
  PAYORCH_FIELD(polls);
  PAYORCH_FIELD(created_at);
  PAYORCH_FIELD(next_poll_at);
  PAYORCH_FIELD(deadline);
  PAYORCH_FIELD(doubt_since);
  PAYORCH_FIELD(updated_at);
  PAYORCH_FIELD(due_at);
#undef PAYORCH_FIELD
  return f;
}

Fields Dump(const PaymentEvent& e) {
  Fields f;
#define PAYORCH_FIELD(name) f.emplace_back(#name, Str(e.name))
  PAYORCH_FIELD(event_id);
  PAYORCH_FIELD(order_id);
  PAYORCH_FIELD(payment_id);
  PAYORCH_FIELD(sequence);
  PAYORCH_FIELD(occurred_at);
  PAYORCH_FIELD(caused_by_event_id);
  Add(f, "balance.", e.balance);
  PAYORCH_FIELD(kind);
  PAYORCH_FIELD(amount);
  PAYORCH_FIELD(transaction_id);
  PAYORCH_FIELD(shipment_id);
  PAYORCH_FIELD(refund_id);
  PAYORCH_FIELD(reason);
  PAYORCH_FIELD(failure.code);
  PAYORCH_FIELD(failure.message);
  PAYORCH_FIELD(failure.payex_problem_type);
#undef PAYORCH_FIELD
  return f;
}

// Every field of `full` differs from a default-constructed value (ops compared
// against a default Op), so the round trip below proves something for each.
template <typename T>
void ExpectAllSet(const T& full) {
  Fields got = Dump(full);
  T empty;
  if constexpr (std::is_same_v<T, Payment>) empty.ops.resize(full.ops.size());
  Fields def = Dump(empty);
  ASSERT_EQ(got.size(), def.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].first == "ops.size") continue;  // made equal above on purpose
    EXPECT_NE(got[i].second, def[i].second) << got[i].first << " is left at its default";
  }
}

TEST(SerializeTest, PaymentRoundTripsEveryField) {
  const Payment p = FullPayment("order-ø-1", 3);
  ExpectAllSet(p);
  const std::string bytes = EncodePayment(p);
  const auto back = DecodePayment(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(Dump(*back), Dump(p));
  EXPECT_EQ(EncodePayment(*back), bytes);
}

TEST(SerializeTest, PaymentEventRoundTripsEveryField) {
  const PaymentEvent e = FullEvent("order-1", 7, 2);
  ExpectAllSet(e);
  const std::string bytes = EncodePaymentEvent(e);
  const auto back = DecodePaymentEvent(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(Dump(*back), Dump(e));
}

TEST(SerializeTest, DefaultsRoundTrip) {
  const auto p = DecodePayment(EncodePayment(Payment{}));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(Dump(*p), Dump(Payment{}));
  const auto e = DecodePaymentEvent(EncodePaymentEvent(PaymentEvent{}));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(Dump(*e), Dump(PaymentEvent{}));
}

TEST(SerializeTest, DecodesAVersion1PaymentWithTheHorizonAtItsDefault) {
  // v1 (0xB1) differs from v2 only by Op::in_transit_until, after not_before. A v1
  // body is the v2 one with that field taken out of every op.
  Payment p = FullPayment("order-1", 2);
  for (Op& op : p.ops) op.in_transit_until = Time{};  // encoded as one zero byte
  std::string v2 = EncodePayment(p);
  ASSERT_EQ(static_cast<uint8_t>(v2[0]), 0xB2);
  // Find each op's zero byte by encoding the op list with a marker value instead.
  Payment marked = p;
  for (Op& op : marked.ops) op.in_transit_until = FromMillis(63);  // zigzag 126: one byte
  std::string with_marker = EncodePayment(marked);
  ASSERT_EQ(with_marker.size(), v2.size());
  std::string v1;
  v1.push_back(static_cast<char>(0xB1));
  for (size_t i = 1; i < v2.size(); ++i) {
    if (v2[i] != with_marker[i]) continue;  // the horizon's byte: dropped
    v1.push_back(v2[i]);
  }
  ASSERT_EQ(v1.size(), v2.size() - p.ops.size());
  const auto back = DecodePayment(v1);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(Dump(*back), Dump(p));
}

TEST(SerializeTest, ExtremeIntegersRoundTrip) {
  Payment p = FullPayment("o", 1);
  p.balance = {INT64_MIN, INT64_MAX, -1, 0};
  p.last_call_id = UINT64_MAX;
  p.ops[0].id = UINT32_MAX;
  p.due_at = FromMillis(INT64_MIN);
  p.deadline = FromMillis(INT64_MAX);
  const auto back = DecodePayment(EncodePayment(p));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(Dump(*back), Dump(p));
}

TEST(SerializeTest, RejectsEveryTruncation) {
  const std::string payment = EncodePayment(FullPayment("order-1"));
  for (size_t n = 0; n < payment.size(); ++n)
    EXPECT_FALSE(DecodePayment(payment.substr(0, n)).has_value()) << "prefix of " << n;
  const std::string event = EncodePaymentEvent(FullEvent("order-1", 1));
  for (size_t n = 0; n < event.size(); ++n)
    EXPECT_FALSE(DecodePaymentEvent(event.substr(0, n)).has_value()) << "prefix of " << n;
}

TEST(SerializeTest, RejectsTrailingBytesWrongVersionAndWrongType) {
  const std::string payment = EncodePayment(FullPayment("order-1"));
  const std::string event = EncodePaymentEvent(FullEvent("order-1", 1));
  EXPECT_FALSE(DecodePayment(payment + '\0').has_value());
  EXPECT_FALSE(DecodePaymentEvent(event + 'x').has_value());
  EXPECT_FALSE(DecodePayment(event).has_value());
  EXPECT_FALSE(DecodePaymentEvent(payment).has_value());
  for (int v = 0; v < 256; ++v) {
    std::string other = payment;
    other[0] = static_cast<char>(v);
    if (other[0] != payment[0]) {
      EXPECT_FALSE(DecodePayment(other).has_value()) << v;
    }
  }
}

TEST(SerializeTest, RejectsEnumValuesOutOfRange) {
  Payment p = FullPayment("order-1");
  p.phase = static_cast<Phase>(9);
  EXPECT_FALSE(DecodePayment(EncodePayment(p)).has_value());
  p = FullPayment("order-1");
  p.abort_cause = static_cast<AbortCause>(static_cast<int>(AbortCause::kPayexRefused) + 1);
  EXPECT_FALSE(DecodePayment(EncodePayment(p)).has_value());
  p = FullPayment("order-1");
  p.ops[1].kind = static_cast<OpKind>(7);
  EXPECT_FALSE(DecodePayment(EncodePayment(p)).has_value());
  p = FullPayment("order-1");
  p.ops[2].status = static_cast<OpStatus>(7);
  EXPECT_FALSE(DecodePayment(EncodePayment(p)).has_value());
  PaymentEvent e = FullEvent("order-1", 1);
  e.kind = static_cast<EventKind>(10);
  EXPECT_FALSE(DecodePaymentEvent(EncodePaymentEvent(e)).has_value());
}

TEST(SerializeTest, RejectsHugeLengthsWithoutAllocating) {
  // magic, then an order_id length of 2^62: must fail, not try to allocate it.
  std::string bytes = EncodePayment(Payment{}).substr(0, 1);
  for (int i = 0; i < 8; ++i) bytes += '\xff';
  bytes += '\x3f';
  EXPECT_FALSE(DecodePayment(bytes).has_value());
  // An 11-byte varint, and a 10-byte one that overflows 64 bits.
  std::string overlong = bytes.substr(0, 1) + std::string(10, '\x80') + '\x01';
  EXPECT_FALSE(DecodePayment(overlong).has_value());
  std::string overflow = bytes.substr(0, 1) + std::string(9, '\xff') + '\x02';
  EXPECT_FALSE(DecodePayment(overflow).has_value());
}

TEST(SerializeTest, RejectsNonCanonicalEncodings) {
  // A padded varint would decode to a value that re-encodes differently.
  Payment p;
  std::string bytes = EncodePayment(p);
  // order_id's length 0 written as two bytes
  std::string padded = bytes.substr(0, 1) + std::string("\x80\x00", 2) + bytes.substr(2);
  EXPECT_FALSE(DecodePayment(padded).has_value());
  // Duplicate metadata keys.
  p.purchase.metadata = {{"a", "1"}, {"b", "2"}};
  bytes = EncodePayment(p);
  const size_t at =
      bytes.find(std::string("\x01"
                             "b",
                             2));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] = 'a';
  EXPECT_FALSE(DecodePayment(bytes).has_value());
}

// Random damage never crashes, and whatever still decodes is canonical: it
// re-encodes to exactly the bytes it came from.
TEST(SerializeTest, RandomDamageNeverCrashes) {
  std::mt19937_64 rng(20240601);
  const std::string payment = EncodePayment(FullPayment("order-fuzz", 5));
  const std::string event = EncodePaymentEvent(FullEvent("order-fuzz", 9, 5));
  int decoded = 0;
  for (int round = 0; round < 20000; ++round) {
    const bool is_payment = round % 2 == 0;
    std::string bytes = is_payment ? payment : event;
    switch (rng() % 4) {
      case 0:  // bit flips
        for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k)
          bytes[rng() % bytes.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // a random byte
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
        break;
      case 2:  // cut somewhere, then damage
        bytes.resize(rng() % bytes.size());
        if (!bytes.empty()) bytes[rng() % bytes.size()] ^= 0x40;
        break;
      case 3:  // random garbage after a valid magic byte
        bytes.resize(1 + rng() % 64);
        for (size_t i = 1; i < bytes.size(); ++i) bytes[i] = static_cast<char>(rng());
        break;
    }
    if (is_payment) {
      if (auto p = DecodePayment(bytes)) {
        ++decoded;
        EXPECT_EQ(EncodePayment(*p), bytes);
      }
    } else if (auto e = DecodePaymentEvent(bytes)) {
      ++decoded;
      EXPECT_EQ(EncodePaymentEvent(*e), bytes);
    }
  }
  // Flips inside string bytes leave valid encodings: some must decode.
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace payorch::domain
