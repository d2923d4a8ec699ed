#include "ctl/dead_letters.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "ctl/output.hpp"
#include "domain/safe_text.hpp"
#include "store/store.hpp"

namespace payorch::ctl {
namespace {

// The most recent x-death entry (the broker puts it first), if any.
const bus::Table* LatestDeath(const bus::Table& headers) {
  auto it = headers.find("x-death");
  if (it == headers.end() || it->second.kind != 'A' || it->second.array.empty()) return nullptr;
  const bus::FieldValue& first = it->second.array.front();
  return first.kind == 'F' ? &first.table : nullptr;
}

std::optional<std::string> TableString(const bus::Table& t, const std::string& key) {
  return bus::HeaderString(t, key);
}

// Seconds since the epoch, as the broker and the consumer write them. A header
// anyone could have written: a time before 1970 or after 9999 is no time at all
// (and would overflow in milliseconds).
std::optional<domain::Time> TableTime(const bus::Table& t, const std::string& key) {
  constexpr int64_t kLastSecond = 253'402'300'799;  // 9999-12-31T23:59:59Z
  auto it = t.find(key);
  if (it == t.end()) return std::nullopt;
  std::optional<int64_t> seconds;
  if (it->second.kind == 'T') {
    if (it->second.u <= static_cast<uint64_t>(kLastSecond))
      seconds = static_cast<int64_t>(it->second.u);
  } else {
    seconds = it->second.AsInt();
  }
  if (!seconds || *seconds < 0 || *seconds > kLastSecond) return std::nullopt;
  return domain::FromMillis(*seconds * 1000);
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Headers that describe a dead-lettering, not the event: a replay drops them.
bool IsDeadLetterHeader(const std::string& key) {
  return StartsWith(key, "x-payorch-") || key == "x-death" || StartsWith(key, "x-first-death-") ||
         StartsWith(key, "x-last-death-") || key == "x-delivery-count";
}

std::string Masked(const std::string& msisdn) {
  return msisdn.empty() ? "(none)" : domain::MaskMsisdn(msisdn);
}

std::string Money(int64_t amount, const std::string& currency = "") {
  return std::to_string(amount) + (currency.empty() ? "" : " " + currency);
}

// What an accepted event sets in motion, in the operator's words.
std::string Summarize(const domain::OrderEvent& e, const domain::Decision& d) {
  struct Visitor {
    std::string operator()(const domain::PurchaseRequested& p) const {
      std::string s = "creates the payment of " + Money(p.amount, p.currency);
      return s + (p.msisdn.empty() ? ", then waits for the MSISDN"
                                   : " and asks " + Masked(p.msisdn) + " to approve");
    }
    std::string operator()(const domain::PayerMsisdnProvided& m) const {
      return "authorizes with " + Masked(m.msisdn);
    }
    std::string operator()(const domain::OrderShipped& s) const {
      return "captures " + Money(s.amount) + " (shipment " + s.shipment_id + ")";
    }
    std::string operator()(const domain::OrderCancelled&) const {
      return "cancels the order (aborts, or cancels what is authorized and not captured)";
    }
    std::string operator()(const domain::RefundRequested& r) const {
      return "reverses " + Money(r.amount) + " (refund " + r.refund_id + ")";
    }
  };
  std::string s = std::visit(Visitor{}, e.kind);
  std::vector<std::string> effects;
  for (const auto& call : d.calls)
    effects.push_back(std::string("calls PayEx ") + domain::OpKindName(call.kind));
  for (const auto& ev : d.events) {
    std::string answer = std::string("answers payment.") + domain::EventKindName(ev.kind);
    if (!ev.failure.code.empty()) answer += " (" + ev.failure.code + ")";
    effects.push_back(answer);
  }
  if (effects.empty()) effects.push_back("waits (nothing to send yet)");
  s += ": ";
  for (size_t i = 0; i < effects.size(); ++i) s += (i ? ", " : "") + effects[i];
  return s;
}

}  // namespace

std::optional<std::chrono::milliseconds> DeadLetter::Age(domain::Time now) const {
  if (!dead_lettered_at) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - *dead_lettered_at);
}

std::string MessageId(const bus::GotMessage& m) {
  if (m.properties.message_id && !m.properties.message_id->empty()) return *m.properties.message_id;
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  auto mix = [&h](std::string_view bytes) {
    for (char c : bytes) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // a separator no text byte sequence reproduces by accident
    h *= 0x100000001b3ull;
  };
  mix(m.body);
  for (const auto& [key, value] : m.properties.headers) {
    mix(key);
    mix(value.ToText());
  }
  mix(m.routing_key);
  char buf[24];
  std::snprintf(buf, sizeof buf, "h-%012llx",
                static_cast<unsigned long long>(h & 0xffffffffffffull));
  return buf;
}

DeadLetter Describe(bus::GotMessage m, const bus::Topology& topology) {
  DeadLetter d;
  d.id = MessageId(m);
  const bus::Table& h = m.properties.headers;
  const bus::Table* death = LatestDeath(h);

  if (auto error = bus::HeaderString(h, "x-payorch-error")) {
    d.reason = *error;
    d.detail = bus::HeaderString(h, "x-payorch-detail").value_or("");
  } else if (death) {
    d.reason = TableString(*death, "reason").value_or("unknown");
    if (d.reason == "delivery_limit")
      d.detail = "the broker dead-lettered it after the queue's delivery limit";
    else if (d.reason == "rejected")
      d.detail = "rejected by payorchd without requeue";
    else
      d.detail = "dead-lettered by the broker (" + d.reason + ")";
    if (auto q = TableString(*death, "queue")) d.detail += " from queue " + *q;
    auto count = death->find("count");
    if (count != death->end() && count->second.AsInt())
      d.detail += ", " + std::to_string(*count->second.AsInt()) + " time(s)";
  } else {
    d.reason = "unknown";
    d.detail =
        "no x-payorch-error or x-death header: published to the dead-letter exchange "
        "directly?";
  }

  // Whoever published to the dead-letter exchange wrote these: shown on a
  // terminal, so masked, one line and bounded.
  d.reason = domain::SafeDetail(d.reason, 64);
  d.detail = domain::SafeDetail(d.detail, 1000);

  if (auto ex = bus::HeaderString(h, "x-payorch-original-exchange")) {
    d.original_exchange = *ex;
  } else if (death && TableString(*death, "exchange")) {
    d.original_exchange = *TableString(*death, "exchange");
  } else {
    d.original_exchange = topology.orders_exchange;
  }
  if (auto key = bus::HeaderString(h, "x-payorch-original-routing-key")) {
    d.routing_key = *key;
  } else if (auto keys = death ? death->find("routing-keys") : h.end();
             death && keys != death->end() && keys->second.kind == 'A' &&
             !keys->second.array.empty() && keys->second.array.front().IsString()) {
    d.routing_key = keys->second.array.front().s;
  } else {
    d.routing_key = m.routing_key;
  }

  if (auto at = TableTime(h, "x-payorch-dead-lettered-at")) {
    d.dead_lettered_at = at;
  } else if (death) {
    d.dead_lettered_at = TableTime(*death, "time");
  }
  d.replay_id = bus::HeaderString(h, kReplayIdHeader).value_or("");

  codec::DecodeResult decoded =
      codec::DecodeOrderEvent(m.body, m.properties.content_type.value_or(""));
  if (decoded) {
    d.event = std::move(decoded).Event();
    d.order_id = d.event->order_id;
    d.event_id = d.event->event_id;
  } else {
    d.decode_error = decoded.Error();
    d.event_id = m.properties.message_id.value_or("");
  }
  d.message = std::move(m);
  return d;
}

bool Filter::SelectsSomething() const {
  return all || !ids.empty() || reason || routing_key || order_id || since;
}

bool Filter::Matches(const DeadLetter& d, domain::Time now) const {
  if (!SelectsSomething()) return false;
  if (!ids.empty() && std::find(ids.begin(), ids.end(), d.id) == ids.end()) return false;
  if (reason && d.reason != *reason) return false;
  if (routing_key && d.routing_key != *routing_key) return false;
  if (order_id && d.order_id != *order_id) return false;
  if (since) {
    auto age = d.Age(now);
    if (!age || *age > *since) return false;
  }
  return true;
}

std::string Filter::Describe() const {
  std::vector<std::string> parts;
  if (all) parts.push_back("all");
  if (!ids.empty()) {
    std::string s = "ids=";
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + ids[i];
    parts.push_back(s);
  }
  if (reason) parts.push_back("error=" + *reason);
  if (routing_key) parts.push_back("routing_key=" + *routing_key);
  if (order_id) parts.push_back("order=" + *order_id);
  if (since) parts.push_back("since=" + std::to_string(since->count() / 1000) + "s");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? " " : "") + parts[i];
  return out.empty() ? "none" : out;
}

bus::Message ReplayMessage(const DeadLetter& d, const std::string& who,
                           const std::string& replay_id) {
  bus::Message m;
  m.exchange = d.original_exchange;
  m.routing_key = d.routing_key;
  m.body = d.message.body;
  m.properties = d.message.properties;
  // The broker refuses (channel close 406) a publish whose user_id is not the
  // connection's user: it names who published the original, not the replayer.
  m.properties.user_id.reset();
  for (auto it = m.properties.headers.begin(); it != m.properties.headers.end();) {
    if (IsDeadLetterHeader(it->first)) {
      it = m.properties.headers.erase(it);
    } else {
      ++it;
    }
  }
  m.properties.headers[kReplayedByHeader] = bus::FieldValue::String(who);
  m.properties.headers[kReplayIdHeader] = bus::FieldValue::String(replay_id);
  m.mandatory = true;
  return m;
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kProcessed: return "processed";
    case Verdict::kValid: return "valid";
    case Verdict::kRejected: return "rejected";
    case Verdict::kMalformed: return "malformed";
    case Verdict::kDuplicate: return "duplicate";
  }
  return "?";
}

DryRun Classify(const DeadLetter& d, store::Store& store, const domain::Policy& policy,
                domain::Time now, Simulation* simulation) {
  if (!d.event) {
    const codec::DecodeError& e = *d.decode_error;
    return {Verdict::kMalformed, "still malformed: " + e.code + ": " + MaskDigits(e.detail) +
                                     "; replaying would dead-letter it again"};
  }
  const domain::OrderEvent& event = *d.event;
  if (simulation) {
    if (auto it = simulation->inbox.find(event.event_id); it != simulation->inbox.end())
      return {Verdict::kProcessed, "already processed by an earlier message of this run (" +
                                       it->second + "): will be ignored"};
  }
  if (store.HasEvent(event.event_id))
    return {Verdict::kProcessed,
            "already processed (inbox has " + event.event_id + "): will be ignored"};
  domain::Payment payment;
  const domain::Payment* simulated = nullptr;
  if (simulation)
    if (auto it = simulation->payments.find(event.order_id); it != simulation->payments.end())
      simulated = &it->second;
  if (simulated) {
    payment = *simulated;
  } else if (auto stored = store.LoadPayment(event.order_id)) {
    payment = std::move(*stored);
  } else {
    payment.order_id = event.order_id;
  }
  const domain::Decision decision = domain::Decide(policy, payment, event, now);
  if (simulation && decision.accepted_event) {
    simulation->payments[event.order_id] = decision.next;
    simulation->inbox[event.event_id] = d.id;
  }
  for (const auto& ev : decision.events) {
    if (ev.kind == domain::EventKind::kRejected && ev.caused_by_event_id == event.event_id)
      return {Verdict::kRejected,
              "would now be rejected: " + ev.failure.code + " " + ev.failure.message};
  }
  return {Verdict::kValid, "valid: would be applied: " + Summarize(event, decision)};
}

bool IsKnownErrorCode(const std::string& text) {
  std::string t;
  for (char c : text)
    if (c != ' ' && c != '\t') t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  static const char* const kCodes[] = {
      codec::error::kUnsupportedContentType, codec::error::kMalformedBody,
      codec::error::kMissingEventId, codec::error::kInvalidEventId,
      codec::error::kMissingOrderId, codec::error::kInvalidOrderId, codec::error::kMissingKind,
      // x-death reasons, and what Describe says when there is neither.
      "delivery_limit", "rejected", "expired", "maxlen", "unknown"};
  for (const char* code : kCodes)
    if (t == code) return true;
  return false;
}

}  // namespace payorch::ctl
