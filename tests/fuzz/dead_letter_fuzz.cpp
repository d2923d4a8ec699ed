// payorchctl's dead-letter parsing (ctl/dead_letters.hpp): a message taken from the
// dead-letter queue, whose headers anyone who can publish to the dead-letter
// exchange (or the broker) wrote: x-payorch-*, x-death with nested tables and
// arrays, and whatever else, nested deep. The input is a small program that builds
// the message. Beyond not crashing: the reason and detail payorchctl shows are fit
// for a terminal, the id is stable, and a replay drops every x-payorch-* and
// x-death header but its own two.
#include <string>

#include "codec/codec.hpp"
#include "ctl/dead_letters.hpp"
#include "ctl/output.hpp"
#include "domain/safe_text.hpp"
#include "fuzz_support.hpp"

using namespace payorch;

namespace {

bus::FieldValue Value(fuzz::Input& in, int depth);

bus::Table MakeTable(fuzz::Input& in, int depth) {
  bus::Table t;
  const int n = in.Byte() % 5;
  for (int i = 0; i < n; ++i) {
    std::string key = in.String(16);
    t[key] = Value(in, depth + 1);
  }
  return t;
}

bus::FieldValue Value(fuzz::Input& in, int depth) {
  static const char kKinds[] = "tbBsuIilLfdDSxTAFV";
  bus::FieldValue v;
  v.kind = kKinds[in.Byte() % 18];
  if (depth > 24 && (v.kind == 'A' || v.kind == 'F')) v.kind = 'S';
  switch (v.kind) {
    case 'S':
    case 'x': v.s = in.String(300); break;
    case 'f':
    case 'd': {
      uint64_t bits = in.Uint64();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      v.f = d;
      break;
    }
    case 'A': {
      const int n = in.Byte() % 4;
      for (int i = 0; i < n; ++i) v.array.push_back(Value(in, depth + 1));
      break;
    }
    case 'F': v.table = MakeTable(in, depth); break;
    case 'D': v.decimals = in.Byte(); v.u = in.Uint64(); break;
    default:
      v.i = static_cast<int64_t>(in.Uint64());
      v.u = in.Uint64();
  }
  return v;
}

// An array nested `levels` deep around a string: what a hostile publisher can put
// in a header within one frame.
bus::FieldValue Deep(int levels) {
  bus::FieldValue v = bus::FieldValue::String("bottom");
  for (int i = 0; i < levels; ++i) {
    bus::FieldValue outer;
    outer.kind = (i % 2) ? 'A' : 'F';
    if (outer.kind == 'A')
      outer.array.push_back(std::move(v));
    else
      outer.table["x"] = std::move(v);
    v = std::move(outer);
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  bus::GotMessage m;
  m.exchange = in.String(40);
  m.routing_key = in.String(80);
  const uint8_t flags = in.Byte();
  if (flags & 1) m.properties.content_type = (flags & 2) ? "application/x-protobuf" : in.String(60);
  if (flags & 4) m.properties.message_id = in.String(255);
  bus::Table& h = m.properties.headers;
  if (flags & 8) h["x-payorch-error"] = (flags & 16) ? bus::FieldValue::String(in.String(40))
                                                     : Value(in, 0);
  if (flags & 32) h["x-payorch-detail"] = bus::FieldValue::String(in.String(2000));
  if (flags & 64) {
    bus::FieldValue deaths;
    deaths.kind = 'A';
    const int n = 1 + in.Byte() % 3;
    for (int i = 0; i < n; ++i) {
      bus::FieldValue death;
      death.kind = 'F';
      death.table["reason"] = bus::FieldValue::String(in.String(30));
      death.table["queue"] = bus::FieldValue::String(in.String(60));
      death.table["count"] = Value(in, 20);
      death.table["time"] = Value(in, 20);
      death.table["exchange"] = Value(in, 20);
      death.table["routing-keys"] = Value(in, 20);
      deaths.array.push_back(std::move(death));
    }
    h["x-death"] = std::move(deaths);
  }
  if (flags & 128) h["x-payorch-dead-lettered-at"] = Value(in, 20);
  const uint8_t more = in.Byte();
  if (more & 1) h["x-payorch-original-routing-key"] = Value(in, 20);
  if (more & 2) h["x-payorch-original-exchange"] = Value(in, 20);
  if (more & 4) h[ctl::kReplayIdHeader] = Value(in, 20);
  if (more & 8) h[in.String(20)] = Deep(1 + in.Byte());
  for (int i = 0; i < (more >> 4) % 4; ++i) h[in.String(20)] = Value(in, 0);
  if (more & 64) {
    // A well-formed event, so that the decoded path is reached too.
    domain::OrderEvent e;
    e.event_id = in.String(40);
    e.order_id = in.String(40);
    e.occurred_at = domain::FromMillis(static_cast<int64_t>(in.Uint64() % 4'000'000'000'000ull));
    domain::OrderShipped s;
    s.shipment_id = in.String(20);
    s.amount = static_cast<int64_t>(in.Uint64());
    e.kind = s;
    m.body = codec::EncodeOrderEvent(e);
    m.properties.content_type = "application/x-protobuf";
  } else {
    m.body = std::string(in.Rest());
  }

  bus::Topology topology;
  ctl::DeadLetter d = ctl::Describe(m, topology);
  // What a terminal shows of the publisher's names: plain text, bounded.
  for (const std::string* s : {&d.id, &d.routing_key, &d.original_exchange, &d.order_id})
    FUZZ_CHECK(domain::IsPlainText(ctl::ShowText(*s)) && ctl::ShowText(*s).size() <= 256 + 32,
               "shown raw: " + ctl::ShowText(*s));
  FUZZ_CHECK(domain::IsSafeDetail(d.reason, 100), d.reason);
  FUZZ_CHECK(domain::IsSafeDetail(d.detail, 1000), d.detail);
  if (d.decode_error) FUZZ_CHECK(domain::IsSafeDetail(d.decode_error->detail), "decode detail");

  ctl::Filter f;
  f.ids = {d.id};
  f.reason = d.reason;
  f.since = std::chrono::hours(1);
  (void)f.Matches(d, domain::FromMillis(1'800'000'000'000));
  (void)f.Describe();
  (void)ctl::IsKnownErrorCode(d.reason);
  (void)ctl::ShowBytes(d.message.body, 512);

  bus::Message replay = ctl::ReplayMessage(d, "fuzz", "r-1");
  for (const auto& [key, value] : replay.properties.headers) {
    const bool ours = key == ctl::kReplayedByHeader || key == ctl::kReplayIdHeader;
    FUZZ_CHECK(ours || (key.rfind("x-payorch-", 0) != 0 && key != "x-death"), key);
  }
  FUZZ_CHECK(replay.body == m.body, "a replay changed the body");
  return 0;
}
