// Order-event decoding (codec::DecodeOrderEvent), protobuf and JSON: what any
// publisher on the bus can send. Beyond not crashing: a decoded event has valid ids
// and survives Encode/Decode unchanged in both formats; a refused one has a known
// code and a detail fit for a header (masked, one line, bounded). The first byte
// picks the content type. Payment-event decoding (payorchctl, the demo) rides along.
#include <set>
#include <string>

#include "codec/codec.hpp"
#include "domain/decide.hpp"
#include "domain/safe_text.hpp"
#include "fuzz_support.hpp"

using namespace payorch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  static const char* kTypes[] = {"application/x-protobuf", "application/json",
                                 "application/json; charset=utf-8", "Application/X-Protobuf; v=1"};
  const uint8_t pick = in.Byte();
  std::string content_type = pick < 4 * 60 ? kTypes[pick % 4] : in.String(80);
  const std::string_view body = in.Rest();

  codec::DecodeResult r = codec::DecodeOrderEvent(body, content_type);
  if (r) {
    const domain::OrderEvent& e = r.Event();
    FUZZ_CHECK(domain::ValidId(e.event_id) && domain::ValidId(e.order_id), e.event_id);
    codec::DecodeResult again = codec::DecodeOrderEvent(codec::EncodeOrderEvent(e),
                                                        codec::kContentTypeProtobuf);
    FUZZ_CHECK(again && again.Event() == e, "protobuf round trip changed the event");
    codec::DecodeResult json = codec::DecodeOrderEvent(codec::EncodeOrderEventJson(e),
                                                       codec::kContentTypeJson);
    FUZZ_CHECK(json, json.Error().code + ": " + json.Error().detail);
    FUZZ_CHECK(json.Event() == e, "JSON round trip changed the event");
    (void)codec::OrderRoutingKey(e.kind);
  } else {
    static const std::set<std::string> kCodes = {
        codec::error::kUnsupportedContentType, codec::error::kMalformedBody,
        codec::error::kMissingEventId,         codec::error::kMissingOrderId,
        codec::error::kInvalidEventId,         codec::error::kInvalidOrderId,
        codec::error::kMissingKind};
    FUZZ_CHECK(kCodes.count(r.Error().code), r.Error().code);
    FUZZ_CHECK(domain::IsSafeDetail(r.Error().detail), r.Error().detail);
  }

  if (auto p = codec::DecodePaymentEvent(body)) {
    auto back = codec::DecodePaymentEvent(codec::EncodePaymentEvent(*p));
    FUZZ_CHECK(back && *back == *p, "payment event round trip changed it");
    (void)codec::PaymentEventToJson(*p, pick & 1);
  }
  return 0;
}
