// Tests of the bus codec: round trips of every order and payment event kind, every
// dead-letter error code, and the wire field numbers of contract.md (hand-encoded
// bytes, so renumbering a field in the .proto fails here).
#include "codec/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace payorch::codec {
namespace {

using domain::EventKind;
using domain::FromMillis;

// --- Hand encoding of the protobuf wire format -----------------------------

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string VarintField(int field, uint64_t v) {
  return Varint(uint64_t(field) << 3 | 0) + Varint(v);
}
std::string LenField(int field, std::string_view bytes) {
  return Varint(uint64_t(field) << 3 | 2) + Varint(bytes.size()) + std::string(bytes);
}

// --- Samples ---------------------------------------------------------------

domain::OrderEvent Sample(domain::OrderEventKind kind) {
  domain::OrderEvent e;
  e.event_id = "evt-1";
  e.order_id = "order-42";
  e.occurred_at = FromMillis(1'717'171'717'123);
  e.kind = std::move(kind);
  return e;
}

std::vector<domain::OrderEvent> OrderSamples() {
  domain::PurchaseRequested purchase;
  purchase.amount = 1500;
  purchase.vat_amount = 300;
  purchase.currency = "NOK";
  purchase.description = "Blåbærsyltetøy, 2 glass";
  purchase.payer_reference = "payer-7";
  purchase.msisdn = "+4798765432";
  purchase.user_agent = "Mozilla/5.0";
  purchase.language = "nb-NO";
  purchase.metadata = {{"channel", "web"}, {"cart", "c-9"}};
  return {
      Sample(purchase),
      Sample(domain::PayerMsisdnProvided{"+4791234567"}),
      Sample(domain::OrderShipped{"ship-1", 1000, 200, "first parcel"}),
      Sample(domain::OrderCancelled{"customer changed their mind"}),
      Sample(domain::RefundRequested{"refund-1", 500, 100, "one glass broken"}),
  };
}

void ExpectKindEq(const domain::PurchaseRequested& a, const domain::PurchaseRequested& b) {
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.vat_amount, b.vat_amount);
  EXPECT_EQ(a.currency, b.currency);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.payer_reference, b.payer_reference);
  EXPECT_EQ(a.msisdn, b.msisdn);
  EXPECT_EQ(a.user_agent, b.user_agent);
  EXPECT_EQ(a.language, b.language);
  EXPECT_EQ(a.metadata, b.metadata);
}
void ExpectKindEq(const domain::PayerMsisdnProvided& a, const domain::PayerMsisdnProvided& b) {
  EXPECT_EQ(a.msisdn, b.msisdn);
}
void ExpectKindEq(const domain::OrderShipped& a, const domain::OrderShipped& b) {
  EXPECT_EQ(a.shipment_id, b.shipment_id);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.vat_amount, b.vat_amount);
  EXPECT_EQ(a.description, b.description);
}
void ExpectKindEq(const domain::OrderCancelled& a, const domain::OrderCancelled& b) {
  EXPECT_EQ(a.reason, b.reason);
}
void ExpectKindEq(const domain::RefundRequested& a, const domain::RefundRequested& b) {
  EXPECT_EQ(a.refund_id, b.refund_id);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.vat_amount, b.vat_amount);
  EXPECT_EQ(a.description, b.description);
}

void ExpectOrderEventEq(const domain::OrderEvent& want, const domain::OrderEvent& got) {
  EXPECT_EQ(want.event_id, got.event_id);
  EXPECT_EQ(want.order_id, got.order_id);
  EXPECT_EQ(domain::ToMillis(want.occurred_at), domain::ToMillis(got.occurred_at));
  ASSERT_EQ(want.kind.index(), got.kind.index());
  std::visit([&](const auto& w) { ExpectKindEq(w, std::get<std::decay_t<decltype(w)>>(got.kind)); },
             want.kind);
}

domain::PaymentEvent PaymentSample(EventKind kind) {
  domain::PaymentEvent e;
  e.event_id = "order-42:3";
  e.order_id = "order-42";
  e.payment_id = "/psp/vipps/payments/5adc265f-f87f-4313-577e-08d3dca1a26c";
  e.sequence = 3;
  e.occurred_at = FromMillis(1'717'171'800'456);
  e.caused_by_event_id = "evt-1";
  e.balance = {1500, 1000, 0, 200};
  e.kind = kind;
  switch (kind) {
    case EventKind::kAuthorized:
    case EventKind::kCancelled:
      e.amount = 1500;
      e.transaction_id = "/psp/vipps/payments/5adc/transactions/t1";
      break;
    case EventKind::kCaptured:
      e.shipment_id = "ship-1";
      e.amount = 1000;
      e.transaction_id = "/psp/vipps/payments/5adc/transactions/t2";
      break;
    case EventKind::kReversed:
      e.refund_id = "refund-1";
      e.amount = 200;
      e.transaction_id = "/psp/vipps/payments/5adc/transactions/t3";
      break;
    case EventKind::kAborted:
      e.reason = "order cancelled";
      break;
    default:
      e.failure = {"amount_exceeds_remaining", "capture of 2000 exceeds remaining 500",
                   "https://api.payex.com/psp/errordetail/vipps/inputerror"};
      break;
  }
  return e;
}

void ExpectPaymentEventEq(const domain::PaymentEvent& a, const domain::PaymentEvent& b) {
  EXPECT_EQ(a.event_id, b.event_id);
  EXPECT_EQ(a.order_id, b.order_id);
  EXPECT_EQ(a.payment_id, b.payment_id);
  EXPECT_EQ(a.sequence, b.sequence);
  EXPECT_EQ(domain::ToMillis(a.occurred_at), domain::ToMillis(b.occurred_at));
  EXPECT_EQ(a.caused_by_event_id, b.caused_by_event_id);
  EXPECT_EQ(a.balance.authorized, b.balance.authorized);
  EXPECT_EQ(a.balance.captured, b.balance.captured);
  EXPECT_EQ(a.balance.cancelled, b.balance.cancelled);
  EXPECT_EQ(a.balance.reversed, b.balance.reversed);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.transaction_id, b.transaction_id);
  EXPECT_EQ(a.shipment_id, b.shipment_id);
  EXPECT_EQ(a.refund_id, b.refund_id);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.failure.code, b.failure.code);
  EXPECT_EQ(a.failure.message, b.failure.message);
  EXPECT_EQ(a.failure.payex_problem_type, b.failure.payex_problem_type);
}

// The ten kinds of contract.md, with their oneof field numbers.
constexpr std::pair<EventKind, int> kPaymentKinds[] = {
    {EventKind::kAuthorized, 10}, {EventKind::kAuthorizationFailed, 11},
    {EventKind::kCaptured, 12},   {EventKind::kCaptureFailed, 13},
    {EventKind::kCancelled, 14},  {EventKind::kCancelFailed, 15},
    {EventKind::kReversed, 16},   {EventKind::kReversalFailed, 17},
    {EventKind::kAborted, 18},    {EventKind::kRejected, 19},
};

DecodeError ExpectError(const DecodeResult& r) {
  EXPECT_FALSE(r.Ok()) << "decoded an event that should have been refused";
  return r.Ok() ? DecodeError{} : r.Error();
}

// --- Order event round trips -----------------------------------------------

class OrderRoundTrip : public ::testing::TestWithParam<std::tuple<size_t, bool>> {};

TEST_P(OrderRoundTrip, DecodesWhatItEncodes) {
  auto [index, json] = GetParam();
  const domain::OrderEvent event = OrderSamples().at(index);
  std::string body = json ? EncodeOrderEventJson(event) : EncodeOrderEvent(event);
  DecodeResult r = DecodeOrderEvent(body, json ? kContentTypeJson : kContentTypeProtobuf);
  ASSERT_TRUE(r.Ok()) << r.Error().code << ": " << r.Error().detail;
  ExpectOrderEventEq(event, r.Event());
}

INSTANTIATE_TEST_SUITE_P(AllKinds, OrderRoundTrip,
                         ::testing::Combine(::testing::Range<size_t>(0, 5), ::testing::Bool()),
                         [](const auto& info) {
                           // (no structured binding here: its comma would split the macro's
                           // arguments)
                           return std::string(domain::OrderEventKindName(
                                      OrderSamples().at(std::get<0>(info.param)).kind)) +
                                  (std::get<1>(info.param) ? "_json" : "_protobuf");
                         });

TEST(OrderEvent, PrettyJsonRoundTrips) {
  auto event = OrderSamples().at(0);
  DecodeResult r =
      DecodeOrderEvent(EncodeOrderEventJson(event, /*pretty=*/true), "application/json");
  ASSERT_TRUE(r.Ok()) << r.Error().detail;
  ExpectOrderEventEq(event, r.Event());
}

TEST(OrderEvent, JsonIsCanonicalMapping) {
  std::string json = EncodeOrderEventJson(OrderSamples().at(2));
  EXPECT_NE(json.find("\"eventId\":\"evt-1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"shipmentId\":\"ship-1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"amount\":\"1000\""), std::string::npos) << json;  // int64 as string
  EXPECT_NE(json.find("\"occurredAt\":\"2024-05-31T16:08:37.123Z\""), std::string::npos) << json;
}

TEST(OrderEvent, HandWrittenJsonWithProtoNamesAndNumbers) {
  // What a person publishing by hand writes: proto field names, plain numbers.
  DecodeResult r = DecodeOrderEvent(R"({
      "event_id": "e-7", "order_id": "o-7", "occurred_at": "2024-06-01T12:00:00+02:00",
      "refund_requested": {"refund_id": "r-1", "amount": 250, "vat_amount": 50}})",
                                    "application/json");
  ASSERT_TRUE(r.Ok()) << r.Error().detail;
  EXPECT_EQ(r.Event().event_id, "e-7");
  EXPECT_EQ(domain::ToMillis(r.Event().occurred_at), 1'717'236'000'000);
  const auto& refund = std::get<domain::RefundRequested>(r.Event().kind);
  EXPECT_EQ(refund.refund_id, "r-1");
  EXPECT_EQ(refund.amount, 250);
  EXPECT_EQ(refund.vat_amount, 50);
}

TEST(OrderEvent, TimestampsBeforeEpochAndBelowMillis) {
  auto event = Sample(domain::OrderCancelled{"x"});
  event.occurred_at = FromMillis(-1);  // 1969-12-31T23:59:59.999Z
  for (bool json : {false, true}) {
    std::string body = json ? EncodeOrderEventJson(event) : EncodeOrderEvent(event);
    DecodeResult r = DecodeOrderEvent(body, json ? kContentTypeJson : kContentTypeProtobuf);
    ASSERT_TRUE(r.Ok()) << r.Error().detail;
    EXPECT_EQ(domain::ToMillis(r.Event().occurred_at), -1);
  }
  // Sub-millisecond digits are dropped.
  DecodeResult r = DecodeOrderEvent(
      R"({"eventId":"e","orderId":"o","occurredAt":"1970-01-01T00:00:01.002999999Z","cancelled":{}})",
      "application/json");
  ASSERT_TRUE(r.Ok()) << r.Error().detail;
  EXPECT_EQ(domain::ToMillis(r.Event().occurred_at), 1002);
}

TEST(OrderEvent, AbsentOccurredAtIsEpoch) {
  auto event = Sample(domain::OrderCancelled{});
  event.occurred_at = {};
  std::string body = EncodeOrderEvent(event);
  EXPECT_EQ(body, LenField(1, "evt-1") + LenField(2, "order-42") + LenField(13, ""));
  DecodeResult r = DecodeOrderEvent(body, kContentTypeProtobuf);
  ASSERT_TRUE(r.Ok()) << r.Error().detail;
  EXPECT_EQ(r.Event().occurred_at, domain::Time{});
}

TEST(OrderEvent, ContentTypeParametersAndCase) {
  auto event = OrderSamples().at(1);
  for (const char* ct : {"application/x-protobuf", "Application/X-Protobuf",
                         "application/x-protobuf; proto=payorch.v1.OrderEvent",
                         "  application/x-protobuf ;charset=binary"}) {
    DecodeResult r = DecodeOrderEvent(EncodeOrderEvent(event), ct);
    EXPECT_TRUE(r.Ok()) << ct << ": " << (r.Ok() ? "" : r.Error().detail);
  }
  for (const char* ct : {"application/json", "APPLICATION/JSON; charset=UTF-8",
                         "application/json;charset=\"utf-8\"", "application/json; charset=utf8"}) {
    DecodeResult r = DecodeOrderEvent(EncodeOrderEventJson(event), ct);
    EXPECT_TRUE(r.Ok()) << ct << ": " << (r.Ok() ? "" : r.Error().detail);
  }
}

TEST(OrderEvent, UnknownFieldsNextToKnownOnesAreTolerated) {
  // A newer publisher may add fields; binary decoding keeps working.
  std::string body = EncodeOrderEvent(OrderSamples().at(3)) + VarintField(99, 7) + LenField(4, "x");
  DecodeResult r = DecodeOrderEvent(body, kContentTypeProtobuf);
  ASSERT_TRUE(r.Ok()) << r.Error().detail;
  ExpectOrderEventEq(OrderSamples().at(3), r.Event());
}

// --- Error codes -----------------------------------------------------------

TEST(OrderEventErrors, UnsupportedContentType) {
  std::string body = EncodeOrderEvent(OrderSamples().at(0));
  for (const char* ct : {"", "text/plain", "application/protobuf-ish", "application/octet-stream",
                         "application/json; charset=iso-8859-1", "application/jsonx"}) {
    DecodeError e = ExpectError(DecodeOrderEvent(body, ct));
    EXPECT_EQ(e.code, error::kUnsupportedContentType) << ct;
    EXPECT_FALSE(e.detail.empty());
  }
}

TEST(OrderEventErrors, MalformedProtobuf) {
  const std::string cases[] = {
      "",                                              // empty
      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  // varint longer than 10 bytes
      LenField(1, "evt-1").substr(0, 4),               // length-delimited field cut short
      std::string("\x0f", 1),                          // wire type 7 does not exist
      VarintField(99, 1) + LenField(98, "zz"),         // parses, but only into unknown fields
      "hello, world",                                  // text where bytes were promised
      LenField(1, "\xc3\x28") + LenField(2, "o") + LenField(13, ""),  // invalid UTF-8 in a string
      LenField(1, "e") + LenField(2, "o") + LenField(3, VarintField(1, 300'000'000'000ULL)) +
          LenField(13, ""),  // occurred_at after year 9999
  };
  for (const auto& body : cases) {
    DecodeError e = ExpectError(DecodeOrderEvent(body, kContentTypeProtobuf));
    EXPECT_EQ(e.code, error::kMalformedBody) << testing::PrintToString(body);
    EXPECT_FALSE(e.detail.empty());
  }
}

TEST(OrderEventErrors, MalformedJsonCarriesParserMessage) {
  const char* cases[] = {
      "",
      "{not json",
      R"({"eventId":"e","orderId":"o","shipped":{"ammount":"1"}})",    // unknown field (typo)
      R"({"eventId":"e","orderId":"o","shipped":{"amount":"lots"}})",  // wrong type
      R"({"eventId":"e","orderId":"o","occurredAt":"yesterday","cancelled":{}})",
      R"({"eventId":"e","orderId":"o","cancelled":{},"shipped":{}})",  // two kinds
      R"([1,2,3])",
  };
  for (const char* body : cases) {
    DecodeError e = ExpectError(DecodeOrderEvent(body, kContentTypeJson));
    EXPECT_EQ(e.code, error::kMalformedBody) << body;
    EXPECT_GT(e.detail.size(), std::string("not a valid payorch.v1.OrderEvent in JSON: ").size())
        << body << " -> " << e.detail;
    EXPECT_EQ(e.detail.find('\n'), std::string::npos) << "detail must be one line: " << e.detail;
  }
}

TEST(OrderEventErrors, JsonGivenAsProtobufAndViceVersa) {
  auto event = OrderSamples().at(0);
  EXPECT_EQ(ExpectError(DecodeOrderEvent(EncodeOrderEvent(event), kContentTypeJson)).code,
            error::kMalformedBody);
  EXPECT_FALSE(DecodeOrderEvent(EncodeOrderEventJson(event), kContentTypeProtobuf).Ok());
}

TEST(OrderEventErrors, MissingRequiredFields) {
  auto no_event_id = Sample(domain::OrderCancelled{"r"});
  no_event_id.event_id.clear();
  auto no_order_id = Sample(domain::OrderCancelled{"r"});
  no_order_id.order_id.clear();
  const std::string no_kind = LenField(1, "evt-1") + LenField(2, "order-42");
  const std::string newer_kind = no_kind + LenField(15, VarintField(1, 5));

  struct Case {
    std::string body;
    bool json;
    const char* code;
  };
  const Case cases[] = {
      {EncodeOrderEvent(no_event_id), false, error::kMissingEventId},
      {EncodeOrderEventJson(no_event_id), true, error::kMissingEventId},
      {R"({"orderId":"o","cancelled":{}})", true, error::kMissingEventId},
      {"{}", true, error::kMissingEventId},
      {EncodeOrderEvent(no_order_id), false, error::kMissingOrderId},
      {EncodeOrderEventJson(no_order_id), true, error::kMissingOrderId},
      {no_kind, false, error::kMissingKind},
      {newer_kind, false, error::kMissingKind},
      {R"({"eventId":"e","orderId":"o"})", true, error::kMissingKind},
      {LenField(2, "o"), false, error::kMissingEventId},  // event_id checked first
      {LenField(1, "e"), false, error::kMissingOrderId},  // then order_id, then kind
  };
  for (const auto& c : cases) {
    DecodeError e =
        ExpectError(DecodeOrderEvent(c.body, c.json ? kContentTypeJson : kContentTypeProtobuf));
    EXPECT_EQ(e.code, c.code) << testing::PrintToString(c.body) << " -> " << e.detail;
    EXPECT_FALSE(e.detail.empty());
  }
  DecodeError e = ExpectError(DecodeOrderEvent(newer_kind, kContentTypeProtobuf));
  EXPECT_NE(e.detail.find("15"), std::string::npos) << e.detail;
}

TEST(OrderEventErrors, IdsThatCouldNotTravelAreRefusedWithoutEchoingThem) {
  auto with = [](std::string event_id, std::string order_id) {
    auto e = Sample(domain::OrderCancelled{"r"});
    e.event_id = std::move(event_id);
    e.order_id = std::move(order_id);
    return e;
  };
  const std::string huge(100 * 1024, 'o');
  const std::string esc = "o-\x1b[2J\x1b]0;pwned\x07";  // terminal escapes
  struct Case {
    domain::OrderEvent ev;
    const char* code;
  };
  const Case cases[] = {
      {with("e-1", huge), error::kInvalidOrderId},
      {with("e-1", std::string(129, 'o')), error::kInvalidOrderId},
      {with("e-1", "order 42"), error::kInvalidOrderId},
      {with("e-1", esc), error::kInvalidOrderId},
      {with("e-1", "ordre-\xc3\xa6"), error::kInvalidOrderId},
      {with(huge, "o-1"), error::kInvalidEventId},
      {with("e\t1", "o-1"), error::kInvalidEventId},
  };
  for (const auto& c : cases) {
    for (bool json : {false, true}) {
      std::string body = json ? EncodeOrderEventJson(c.ev) : EncodeOrderEvent(c.ev);
      DecodeResult r = DecodeOrderEvent(body, json ? kContentTypeJson : kContentTypeProtobuf);
      DecodeError e = ExpectError(std::move(r));
      EXPECT_EQ(e.code, c.code) << e.detail;
      EXPECT_LT(e.detail.size(), 300u) << "the detail grows with the id";
      EXPECT_EQ(e.detail.find('\x1b'), std::string::npos) << "escape codes reach the header";
    }
  }
  // 128 printable characters is the longest id that is taken.
  EXPECT_TRUE(DecodeOrderEvent(EncodeOrderEvent(with(std::string(128, 'e'), std::string(128, 'o'))),
                               kContentTypeProtobuf)
                  .Ok());
}

// --- Wire field numbers (contract.md) --------------------------------------

TEST(WireFormat, OrderEventFieldNumbers) {
  const std::string ts = VarintField(1, 1'717'171'717) + VarintField(2, 123'000'000);
  const std::string head = LenField(1, "evt-1") + LenField(2, "order-42") + LenField(3, ts);
  const std::string purchase = VarintField(1, 1500) + VarintField(2, 300) + LenField(3, "NOK") +
                               LenField(4, "Blåbærsyltetøy, 2 glass") + LenField(5, "payer-7") +
                               LenField(6, "+4798765432") + LenField(7, "Mozilla/5.0") +
                               LenField(8, "nb-NO") +
                               LenField(9, LenField(1, "channel") + LenField(2, "web")) +
                               LenField(9, LenField(1, "cart") + LenField(2, "c-9"));
  const std::string bodies[] = {
      head + LenField(10, purchase),
      head + LenField(11, LenField(1, "+4791234567")),
      head + LenField(12, LenField(1, "ship-1") + VarintField(2, 1000) + VarintField(3, 200) +
                              LenField(4, "first parcel")),
      head + LenField(13, LenField(1, "customer changed their mind")),
      head + LenField(14, LenField(1, "refund-1") + VarintField(2, 500) + VarintField(3, 100) +
                              LenField(4, "one glass broken")),
  };
  auto samples = OrderSamples();
  for (size_t i = 0; i < samples.size(); ++i) {
    SCOPED_TRACE(domain::OrderEventKindName(samples[i].kind));
    DecodeResult r = DecodeOrderEvent(bodies[i], kContentTypeProtobuf);
    ASSERT_TRUE(r.Ok()) << r.Error().code << ": " << r.Error().detail;
    ExpectOrderEventEq(samples[i], r.Event());
  }
  // The encoder writes fields in number order; without a map, its bytes are exact.
  EXPECT_EQ(EncodeOrderEvent(samples[2]), bodies[2]);
  EXPECT_EQ(EncodeOrderEvent(samples[4]), bodies[4]);
}

std::string HandEncodedPayment(const domain::PaymentEvent& e, int kind_field) {
  std::string kind;
  switch (e.kind) {
    case EventKind::kAuthorized:
    case EventKind::kCancelled:
      kind = VarintField(1, e.amount) + LenField(2, e.transaction_id);
      break;
    case EventKind::kCaptured:
      kind = LenField(1, e.shipment_id) + VarintField(2, e.amount) + LenField(3, e.transaction_id);
      break;
    case EventKind::kReversed:
      kind = LenField(1, e.refund_id) + VarintField(2, e.amount) + LenField(3, e.transaction_id);
      break;
    case EventKind::kAborted:
      kind = LenField(1, e.reason);
      break;
    default:
      kind = LenField(1, e.failure.code) + LenField(2, e.failure.message) +
             LenField(3, e.failure.payex_problem_type);
      break;
  }
  // balance {1500, 1000, 0, 200}: a zero is not on the wire in proto3.
  const std::string balance = VarintField(1, 1500) + VarintField(2, 1000) + VarintField(4, 200);
  const std::string ts = VarintField(1, 1'717'171'800) + VarintField(2, 456'000'000);
  return LenField(1, e.event_id) + LenField(2, e.order_id) + LenField(3, e.payment_id) +
         VarintField(4, e.sequence) + LenField(5, ts) + LenField(6, e.caused_by_event_id) +
         LenField(7, balance) + LenField(kind_field, kind);
}

TEST(WireFormat, PaymentEventFieldNumbers) {
  for (auto [kind, field] : kPaymentKinds) {
    SCOPED_TRACE(domain::EventKindName(kind));
    const domain::PaymentEvent event = PaymentSample(kind);
    const std::string wire = HandEncodedPayment(event, field);
    EXPECT_EQ(EncodePaymentEvent(event), wire);
    auto decoded = DecodePaymentEvent(wire);
    ASSERT_TRUE(decoded.has_value());
    ExpectPaymentEventEq(event, *decoded);
  }
}

// --- Payment events --------------------------------------------------------

TEST(PaymentEvent, EveryKindRoundTrips) {
  for (auto [kind, field] : kPaymentKinds) {
    SCOPED_TRACE(domain::EventKindName(kind));
    const domain::PaymentEvent event = PaymentSample(kind);
    auto decoded = DecodePaymentEvent(EncodePaymentEvent(event));
    ASSERT_TRUE(decoded.has_value());
    ExpectPaymentEventEq(event, *decoded);
  }
}

TEST(PaymentEvent, FieldsTheKindDoesNotCarryAreDropped) {
  domain::PaymentEvent event = PaymentSample(EventKind::kAborted);
  event.amount = 99;
  event.failure.code = "declined";
  event.shipment_id = "s";
  auto decoded = DecodePaymentEvent(EncodePaymentEvent(event));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->reason, "order cancelled");
  EXPECT_EQ(decoded->amount, 0);
  EXPECT_EQ(decoded->failure.code, "");
  EXPECT_EQ(decoded->shipment_id, "");
}

TEST(PaymentEvent, DecodeRefusesGarbageAndKindless) {
  EXPECT_FALSE(DecodePaymentEvent("").has_value());
  EXPECT_FALSE(DecodePaymentEvent("\xff\xff\xff").has_value());
  EXPECT_FALSE(DecodePaymentEvent(LenField(1, "e") + LenField(2, "o")).has_value());
  EXPECT_FALSE(PaymentEventToJson(std::string_view("\xff\xff\xff")).has_value());
}

TEST(PaymentEvent, Json) {
  const auto event = PaymentSample(EventKind::kCaptured);
  std::string json = PaymentEventToJson(event);
  EXPECT_NE(json.find("\"captured\":{\"shipmentId\":\"ship-1\",\"amount\":\"1000\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"sequence\":\"3\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"occurredAt\":\"2024-05-31T16:10:00.456Z\""), std::string::npos) << json;
  auto from_bytes = PaymentEventToJson(std::string_view(EncodePaymentEvent(event)));
  ASSERT_TRUE(from_bytes.has_value());
  EXPECT_EQ(*from_bytes, json);
  std::string pretty = PaymentEventToJson(event, /*pretty=*/true);
  EXPECT_NE(pretty.find('\n'), std::string::npos);

  auto rejected = PaymentSample(EventKind::kRejected);
  json = PaymentEventToJson(rejected);
  EXPECT_NE(json.find("\"rejected\":{\"code\":\"amount_exceeds_remaining\""), std::string::npos)
      << json;
}

TEST(PaymentEvent, RoutingKeysOfContract) {
  const std::vector<std::string> want = {"payment.authorized", "payment.authorization_failed",
                                         "payment.captured",   "payment.capture_failed",
                                         "payment.cancelled",  "payment.cancel_failed",
                                         "payment.reversed",   "payment.reversal_failed",
                                         "payment.aborted",    "payment.rejected"};
  std::vector<std::string> got;
  for (auto [kind, field] : kPaymentKinds) got.push_back(RoutingKey(kind));
  EXPECT_EQ(got, want);
}

TEST(OrderEvent, RoutingKeysOfContract) {
  std::vector<std::string> got;
  for (const auto& e : OrderSamples()) got.push_back(OrderRoutingKey(e.kind));
  EXPECT_EQ(got, (std::vector<std::string>{"order.purchase_requested",
                                           "order.payer_msisdn_provided", "order.shipped",
                                           "order.cancelled", "order.refund_requested"}));
}

}  // namespace
}  // namespace payorch::codec
