#include "codec/codec.hpp"

#include "domain/safe_text.hpp"

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <string>

#include "domain/decide.hpp"
#include "payorch/v1/order_event.pb.h"
#include "payorch/v1/payment_event.pb.h"

namespace payorch::codec {
namespace {

namespace pb = ::payorch::v1;
using google::protobuf::util::TimeUtil;

// --- Timestamps ------------------------------------------------------------

bool TimestampValid(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= TimeUtil::kTimestampMinSeconds &&
         ts.seconds() <= TimeUtil::kTimestampMaxSeconds && ts.nanos() >= 0 &&
         ts.nanos() <= 999'999'999;
}

// Precondition: TimestampValid(ts). Sub-millisecond digits are dropped: the
// domain counts milliseconds.
domain::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return domain::FromMillis(ts.seconds() * 1000 + ts.nanos() / 1'000'000);
}

// Clamped into Timestamp's range (years 1..9999) so that the JSON printer, which
// refuses anything outside it, can always print what we encode.
void ToTimestamp(domain::Time t, google::protobuf::Timestamp* ts) {
  int64_t ms = domain::ToMillis(t);
  int64_t seconds = ms / 1000;
  int64_t millis = ms % 1000;
  if (millis < 0) {  // floor, so nanos stays in [0, 1e9)
    seconds -= 1;
    millis += 1000;
  }
  if (seconds < TimeUtil::kTimestampMinSeconds) {
    seconds = TimeUtil::kTimestampMinSeconds;
    millis = 0;
  } else if (seconds > TimeUtil::kTimestampMaxSeconds) {
    seconds = TimeUtil::kTimestampMaxSeconds;
    millis = 999;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(millis * 1'000'000));
}

// Details go into an AMQP header and one-line logs: keep them to one line and
// bounded. The JSON parser appends an excerpt of the input with a caret line
// below it, which means nothing once flattened, so only its first line is kept.
std::string OneLine(std::string_view s, size_t max = 300) {
  s = s.substr(0, s.find('\n'));
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (s.size() > max) out += "...";
  return out;
}

// --- Content type ----------------------------------------------------------

enum class Format { kProtobuf, kJson };

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The media type is matched exactly (case-insensitive); of the parameters only
// charset means anything, and JSON is UTF-8 by definition (RFC 8259), so any
// other charset would make us misread the body.
std::variant<Format, DecodeError> ParseContentType(std::string_view content_type) {
  auto unsupported = [&](std::string why) {
    return DecodeError{error::kUnsupportedContentType, std::move(why)};
  };
  size_t semi = content_type.find(';');
  std::string media = Lower(Trim(content_type.substr(0, semi)));
  Format format;
  if (media == kContentTypeProtobuf) {
    format = Format::kProtobuf;
  } else if (media == kContentTypeJson) {
    format = Format::kJson;
  } else if (media.empty()) {
    return unsupported("no content_type; expected application/x-protobuf or application/json");
  } else {
    return unsupported("content_type \"" + OneLine(content_type, 100) +
                       "\"; expected application/x-protobuf or application/json");
  }
  std::string_view params = semi == std::string_view::npos ? "" : content_type.substr(semi + 1);
  while (!params.empty()) {
    size_t next = params.find(';');
    std::string_view param = Trim(params.substr(0, next));
    params = next == std::string_view::npos ? "" : params.substr(next + 1);
    size_t eq = param.find('=');
    if (eq == std::string_view::npos || Lower(Trim(param.substr(0, eq))) != "charset") continue;
    std::string_view value = Trim(param.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    std::string charset = Lower(value);
    if (format == Format::kJson && charset != "utf-8" && charset != "utf8")
      return unsupported("content_type \"" + OneLine(content_type, 100) +
                         "\": JSON bodies must be utf-8");
  }
  return format;
}

// --- Order events ----------------------------------------------------------

bool NoKnownField(const pb::OrderEvent& m) {
  return m.event_id().empty() && m.order_id().empty() && !m.has_occurred_at() &&
         m.kind_case() == pb::OrderEvent::KIND_NOT_SET;
}

std::string UnknownFieldNumbers(const google::protobuf::Message& m) {
  const auto& unknown = m.GetReflection()->GetUnknownFields(m);
  std::string out;
  for (int i = 0; i < unknown.field_count(); ++i) {
    if (!out.empty()) out += ",";
    out += std::to_string(unknown.field(i).number());
  }
  return out;
}

domain::OrderEvent FromProto(const pb::OrderEvent& m) {
  domain::OrderEvent e;
  e.event_id = m.event_id();
  e.order_id = m.order_id();
  if (m.has_occurred_at()) e.occurred_at = FromTimestamp(m.occurred_at());
  switch (m.kind_case()) {
    case pb::OrderEvent::kPurchaseRequested: {
      const auto& p = m.purchase_requested();
      domain::PurchaseRequested k;
      k.amount = p.amount();
      k.vat_amount = p.vat_amount();
      k.currency = p.currency();
      k.description = p.description();
      k.payer_reference = p.payer_reference();
      k.msisdn = p.msisdn();
      k.user_agent = p.user_agent();
      k.language = p.language();
      k.metadata.insert(p.metadata().begin(), p.metadata().end());
      e.kind = std::move(k);
      break;
    }
    case pb::OrderEvent::kPayerMsisdnProvided:
      e.kind = domain::PayerMsisdnProvided{m.payer_msisdn_provided().msisdn()};
      break;
    case pb::OrderEvent::kShipped: {
      const auto& s = m.shipped();
      e.kind = domain::OrderShipped{s.shipment_id(), s.amount(), s.vat_amount(), s.description()};
      break;
    }
    case pb::OrderEvent::kCancelled:
      e.kind = domain::OrderCancelled{m.cancelled().reason()};
      break;
    case pb::OrderEvent::kRefundRequested: {
      const auto& r = m.refund_requested();
      e.kind = domain::RefundRequested{r.refund_id(), r.amount(), r.vat_amount(), r.description()};
      break;
    }
    case pb::OrderEvent::KIND_NOT_SET:
      break;  // checked by the caller
  }
  return e;
}

pb::OrderEvent ToProto(const domain::OrderEvent& e) {
  pb::OrderEvent m;
  m.set_event_id(e.event_id);
  m.set_order_id(e.order_id);
  // The epoch is what an absent occurred_at decodes to; leave it absent.
  if (e.occurred_at != domain::Time{}) ToTimestamp(e.occurred_at, m.mutable_occurred_at());
  struct Visitor {
    pb::OrderEvent& m;
    void operator()(const domain::PurchaseRequested& k) {
      auto* p = m.mutable_purchase_requested();
      p->set_amount(k.amount);
      p->set_vat_amount(k.vat_amount);
      p->set_currency(k.currency);
      p->set_description(k.description);
      p->set_payer_reference(k.payer_reference);
      p->set_msisdn(k.msisdn);
      p->set_user_agent(k.user_agent);
      p->set_language(k.language);
      p->mutable_metadata()->insert(k.metadata.begin(), k.metadata.end());
    }
    void operator()(const domain::PayerMsisdnProvided& k) {
      m.mutable_payer_msisdn_provided()->set_msisdn(k.msisdn);
    }
    void operator()(const domain::OrderShipped& k) {
      auto* s = m.mutable_shipped();
      s->set_shipment_id(k.shipment_id);
      s->set_amount(k.amount);
      s->set_vat_amount(k.vat_amount);
      s->set_description(k.description);
    }
    void operator()(const domain::OrderCancelled& k) {
      m.mutable_cancelled()->set_reason(k.reason);
    }
    void operator()(const domain::RefundRequested& k) {
      auto* r = m.mutable_refund_requested();
      r->set_refund_id(k.refund_id);
      r->set_amount(k.amount);
      r->set_vat_amount(k.vat_amount);
      r->set_description(k.description);
    }
  };
  std::visit(Visitor{m}, e.kind);
  return m;
}

std::optional<DecodeError> ParseProtobuf(std::string_view body, pb::OrderEvent& m) {
  auto malformed = [](std::string why) {
    return DecodeError{error::kMalformedBody, std::move(why)};
  };
  if (body.empty()) return malformed("empty body");
  if (body.size() > static_cast<size_t>(INT_MAX)) return malformed("body too large");
  if (!m.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return malformed("not a valid payorch.v1.OrderEvent (protobuf parse failed, " +
                     std::to_string(body.size()) + " bytes)");
  // The wire format is permissive: many arbitrary byte strings parse as a message
  // made of unknown fields only. Such a body is not an OrderEvent of any version.
  if (NoKnownField(m) && !m.GetReflection()->GetUnknownFields(m).empty())
    return malformed("no payorch.v1.OrderEvent field in the body (only unknown field numbers " +
                     UnknownFieldNumbers(m) + ")");
  return std::nullopt;
}

std::optional<DecodeError> ParseJson(std::string_view body, pb::OrderEvent& m) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // see codec.hpp: typos must not pass
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), &m, options);
  if (!status.ok())
    return DecodeError{error::kMalformedBody, "not a valid payorch.v1.OrderEvent in JSON: " +
                                                  OneLine(status.message().ToString())};
  return std::nullopt;
}

// --- Payment events --------------------------------------------------------

void SetFailure(const domain::Failure& f, pb::Failure* out) {
  out->set_code(f.code);
  out->set_message(f.message);
  out->set_payex_problem_type(f.payex_problem_type);
}

domain::Failure GetFailure(const pb::Failure& f) {
  return domain::Failure{f.code(), f.message(), f.payex_problem_type()};
}

pb::PaymentEvent ToProto(const domain::PaymentEvent& e) {
  pb::PaymentEvent m;
  m.set_event_id(e.event_id);
  m.set_order_id(e.order_id);
  m.set_payment_id(e.payment_id);
  m.set_sequence(e.sequence);
  if (e.occurred_at != domain::Time{}) ToTimestamp(e.occurred_at, m.mutable_occurred_at());
  m.set_caused_by_event_id(e.caused_by_event_id);
  // Always present, even when all zero: "the payment's amounts after this event".
  auto* b = m.mutable_balance();
  b->set_authorized(e.balance.authorized);
  b->set_captured(e.balance.captured);
  b->set_cancelled(e.balance.cancelled);
  b->set_reversed(e.balance.reversed);
  switch (e.kind) {
    case domain::EventKind::kAuthorized: {
      auto* k = m.mutable_authorized();
      k->set_amount(e.amount);
      k->set_transaction_id(e.transaction_id);
      break;
    }
    case domain::EventKind::kCaptured: {
      auto* k = m.mutable_captured();
      k->set_shipment_id(e.shipment_id);
      k->set_amount(e.amount);
      k->set_transaction_id(e.transaction_id);
      break;
    }
    case domain::EventKind::kCancelled: {
      auto* k = m.mutable_cancelled();
      k->set_amount(e.amount);
      k->set_transaction_id(e.transaction_id);
      break;
    }
    case domain::EventKind::kReversed: {
      auto* k = m.mutable_reversed();
      k->set_refund_id(e.refund_id);
      k->set_amount(e.amount);
      k->set_transaction_id(e.transaction_id);
      break;
    }
    case domain::EventKind::kAborted:
      m.mutable_aborted()->set_reason(e.reason);
      break;
    case domain::EventKind::kAuthorizationFailed:
      SetFailure(e.failure, m.mutable_authorization_failed());
      break;
    case domain::EventKind::kCaptureFailed:
      SetFailure(e.failure, m.mutable_capture_failed());
      break;
    case domain::EventKind::kCancelFailed:
      SetFailure(e.failure, m.mutable_cancel_failed());
      break;
    case domain::EventKind::kReversalFailed:
      SetFailure(e.failure, m.mutable_reversal_failed());
      break;
    case domain::EventKind::kRejected:
      SetFailure(e.failure, m.mutable_rejected());
      break;
  }
  return m;
}

std::optional<domain::PaymentEvent> FromProto(const pb::PaymentEvent& m) {
  domain::PaymentEvent e;
  e.event_id = m.event_id();
  e.order_id = m.order_id();
  e.payment_id = m.payment_id();
  e.sequence = m.sequence();
  if (m.has_occurred_at()) {
    if (!TimestampValid(m.occurred_at())) return std::nullopt;
    e.occurred_at = FromTimestamp(m.occurred_at());
  }
  e.caused_by_event_id = m.caused_by_event_id();
  e.balance = domain::Balance{m.balance().authorized(), m.balance().captured(),
                              m.balance().cancelled(), m.balance().reversed()};
  using K = domain::EventKind;
  switch (m.kind_case()) {
    case pb::PaymentEvent::kAuthorized:
      e.kind = K::kAuthorized;
      e.amount = m.authorized().amount();
      e.transaction_id = m.authorized().transaction_id();
      break;
    case pb::PaymentEvent::kCaptured:
      e.kind = K::kCaptured;
      e.shipment_id = m.captured().shipment_id();
      e.amount = m.captured().amount();
      e.transaction_id = m.captured().transaction_id();
      break;
    case pb::PaymentEvent::kCancelled:
      e.kind = K::kCancelled;
      e.amount = m.cancelled().amount();
      e.transaction_id = m.cancelled().transaction_id();
      break;
    case pb::PaymentEvent::kReversed:
      e.kind = K::kReversed;
      e.refund_id = m.reversed().refund_id();
      e.amount = m.reversed().amount();
      e.transaction_id = m.reversed().transaction_id();
      break;
    case pb::PaymentEvent::kAborted:
      e.kind = K::kAborted;
      e.reason = m.aborted().reason();
      break;
    case pb::PaymentEvent::kAuthorizationFailed:
      e.kind = K::kAuthorizationFailed;
      e.failure = GetFailure(m.authorization_failed());
      break;
    case pb::PaymentEvent::kCaptureFailed:
      e.kind = K::kCaptureFailed;
      e.failure = GetFailure(m.capture_failed());
      break;
    case pb::PaymentEvent::kCancelFailed:
      e.kind = K::kCancelFailed;
      e.failure = GetFailure(m.cancel_failed());
      break;
    case pb::PaymentEvent::kReversalFailed:
      e.kind = K::kReversalFailed;
      e.failure = GetFailure(m.reversal_failed());
      break;
    case pb::PaymentEvent::kRejected:
      e.kind = K::kRejected;
      e.failure = GetFailure(m.rejected());
      break;
    case pb::PaymentEvent::KIND_NOT_SET:
      return std::nullopt;
  }
  return e;
}

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  std::string out;
  // Cannot fail for our messages: the only printer error is an out-of-range
  // Timestamp/Duration, and ToTimestamp clamps.
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

}  // namespace

namespace {

DecodeResult Decode(std::string_view body, std::string_view content_type) {
  auto format = ParseContentType(content_type);
  if (auto* err = std::get_if<DecodeError>(&format)) return std::move(*err);

  pb::OrderEvent m;
  auto parse_error =
      std::get<Format>(format) == Format::kProtobuf ? ParseProtobuf(body, m) : ParseJson(body, m);
  if (parse_error) return std::move(*parse_error);
  if (m.has_occurred_at() && !TimestampValid(m.occurred_at()))
    return DecodeError{error::kMalformedBody, "occurred_at out of range (seconds " +
                                                  std::to_string(m.occurred_at().seconds()) +
                                                  ", nanos " +
                                                  std::to_string(m.occurred_at().nanos()) + ")"};

  // What the ids say is never echoed unless valid: a 100 KB id or one with
  // terminal escapes must not reach a header or a log line.
  auto bad_id = [](const char* name, const std::string& id) {
    return std::string(name) + " must be 1 to " + std::to_string(domain::kMaxIdBytes) +
           " printable ASCII characters without spaces (got " + std::to_string(id.size()) +
           " bytes)";
  };
  if (m.event_id().empty()) return DecodeError{error::kMissingEventId, "event_id is empty"};
  if (!domain::ValidId(m.event_id()))
    return DecodeError{error::kInvalidEventId, bad_id("event_id", m.event_id())};
  if (m.order_id().empty())
    return DecodeError{error::kMissingOrderId,
                       "order_id is empty (event_id " + m.event_id() + ")"};
  if (!domain::ValidId(m.order_id()))
    return DecodeError{error::kInvalidOrderId,
                       bad_id("order_id", m.order_id()) + " (event_id " + m.event_id() + ")"};
  if (m.kind_case() == pb::OrderEvent::KIND_NOT_SET) {
    std::string detail = "no kind set (event_id " + OneLine(m.event_id(), 100) + ")";
    if (std::string unknown = UnknownFieldNumbers(m); !unknown.empty())
      detail += "; unknown field numbers " + unknown + ", perhaps a kind newer than this payorch";
    return DecodeError{error::kMissingKind, std::move(detail)};
  }
  return FromProto(m);
}

}  // namespace

DecodeResult DecodeOrderEvent(std::string_view body, std::string_view content_type) {
  DecodeResult r = Decode(body, content_type);
  if (r) return r;
  // Parser messages may quote the body: masked and bounded like every detail.
  DecodeError e = r.Error();
  e.detail = domain::SafeDetail(e.detail);
  return e;
}

std::string EncodeOrderEvent(const domain::OrderEvent& event) { return Serialize(ToProto(event)); }

std::string EncodeOrderEventJson(const domain::OrderEvent& event, bool pretty) {
  return ToJson(ToProto(event), pretty);
}

std::string EncodePaymentEvent(const domain::PaymentEvent& event) {
  return Serialize(ToProto(event));
}

std::optional<domain::PaymentEvent> DecodePaymentEvent(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return std::nullopt;
  pb::PaymentEvent m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  return FromProto(m);
}

std::string PaymentEventToJson(const domain::PaymentEvent& event, bool pretty) {
  return ToJson(ToProto(event), pretty);
}

std::optional<std::string> PaymentEventToJson(std::string_view bytes, bool pretty) {
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return std::nullopt;
  pb::PaymentEvent m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  if (m.kind_case() == pb::PaymentEvent::KIND_NOT_SET) return std::nullopt;
  if (m.has_occurred_at() && !TimestampValid(m.occurred_at())) return std::nullopt;
  return ToJson(m, pretty);
}

std::string RoutingKey(domain::EventKind kind) {
  return std::string("payment.") + domain::EventKindName(kind);
}

std::string OrderRoutingKey(const domain::OrderEventKind& kind) {
  return std::string("order.") + domain::OrderEventKindName(kind);
}

}  // namespace payorch::codec
