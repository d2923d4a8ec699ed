#include "bus/message.hpp"

#include <cstdio>

#include "bus/amqp_link.hpp"
#include "bus/config.hpp"
#include "codec/codec.hpp"
#include "domain/partition.hpp"

namespace payorch::bus {

std::optional<int64_t> FieldValue::AsInt() const {
  switch (kind) {
    case 'b':
    case 's':
    case 'I':
    case 'l': return i;
    case 'B':
    case 'u':
    case 'i':
    case 'L': return static_cast<int64_t>(u);
    default: return std::nullopt;
  }
}

std::string FieldValue::ToText() const {
  switch (kind) {
    case 't': return i ? "true" : "false";
    case 'b':
    case 's':
    case 'I':
    case 'l': return std::to_string(i);
    case 'B':
    case 'u':
    case 'i':
    case 'L':
    case 'T': return std::to_string(u);
    case 'f':
    case 'd': {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", f);
      return buf;
    }
    case 'D': {
      std::string digits = std::to_string(u);
      if (decimals == 0) return digits;
      while (digits.size() <= decimals) digits.insert(digits.begin(), '0');
      return digits.substr(0, digits.size() - decimals) + "." +
             digits.substr(digits.size() - decimals);
    }
    case 'S':
    case 'x': return s;
    case 'A': {
      std::string out = "[";
      for (size_t n = 0; n < array.size(); ++n) out += (n ? "," : "") + array[n].ToText();
      return out + "]";
    }
    case 'F': {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, value] : table) {
        out += (first ? "" : ",") + key + ":" + value.ToText();
        first = false;
      }
      return out + "}";
    }
    default: return "";
  }
}

std::optional<std::string> HeaderString(const Table& headers, std::string_view name) {
  auto it = headers.find(std::string(name));
  if (it == headers.end() || !it->second.IsString()) return std::nullopt;
  return it->second.s;
}

Message PaymentEventMessage(const domain::PaymentEvent& event, const std::string& exchange) {
  Message m;
  m.exchange = exchange;
  m.routing_key = codec::RoutingKey(event.kind);
  m.body = codec::EncodePaymentEvent(event);
  m.properties.content_type = std::string(codec::kContentTypeProtobuf);
  m.properties.type = std::string(codec::kPaymentEventType);
  m.properties.message_id = event.event_id;
  m.properties.correlation_id = event.order_id;
  m.properties.delivery_mode = 2;
  if (event.occurred_at != domain::Time{})
    m.properties.timestamp = static_cast<uint64_t>(domain::ToMillis(event.occurred_at) / 1000);
  return m;
}

const char* PublishStatusName(PublishStatus status) {
  switch (status) {
    case PublishStatus::kConfirmed: return "confirmed";
    case PublishStatus::kNacked: return "nacked";
    case PublishStatus::kReturned: return "returned";
    case PublishStatus::kConnectionLost: return "connection_lost";
    case PublishStatus::kNotConnected: return "not_connected";
    case PublishStatus::kStopped: return "stopped";
    case PublishStatus::kRefused: return "refused";
  }
  return "unknown";
}

namespace {

std::optional<std::string> TableProblem(const Table& table, int depth);

std::optional<std::string> ValueProblem(const FieldValue& v, int depth) {
  if (depth > 64) return std::string("headers nested deeper than 64");
  if (v.kind == 'F') return TableProblem(v.table, depth + 1);
  if (v.kind == 'A')
    for (const FieldValue& item : v.array)
      if (auto why = ValueProblem(item, depth + 1)) return why;
  return std::nullopt;
}

std::optional<std::string> TableProblem(const Table& table, int depth) {
  for (const auto& [key, value] : table) {
    if (key.size() > 128)
      return "a header name of " + std::to_string(key.size()) + " bytes (AMQP: at most 128)";
    if (auto why = ValueProblem(value, depth)) return why;
  }
  return std::nullopt;
}

size_t EncodedTableBytes(const Table& table);

size_t EncodedValueBytes(const FieldValue& v) {
  switch (v.kind) {
    case 't': case 'b': case 'B': return 2;
    case 's': case 'u': return 3;
    case 'I': case 'i': case 'f': return 5;
    case 'l': case 'L': case 'd': case 'T': return 9;
    case 'D': return 6;
    case 'S': case 'x': return 5 + v.s.size();
    case 'F': return 1 + EncodedTableBytes(v.table);
    case 'A': {
      size_t n = 5;
      for (const FieldValue& item : v.array) n += EncodedValueBytes(item);
      return n;
    }
    default: return 1;
  }
}

size_t EncodedTableBytes(const Table& table) {
  size_t n = 4;
  for (const auto& [key, value] : table) n += 1 + key.size() + EncodedValueBytes(value);
  return n;
}

}  // namespace

size_t EncodedPropertiesBytes(const Properties& p) {
  size_t n = 2 + 1 + 1 + 8;  // flags, delivery mode, priority, timestamp
  for (const auto* field : {&p.content_type, &p.content_encoding, &p.correlation_id, &p.reply_to,
                            &p.expiration, &p.message_id, &p.type, &p.user_id, &p.app_id})
    if (*field) n += 1 + (*field)->size();
  return n + EncodedTableBytes(p.headers);
}

std::optional<std::string> Unpublishable(const Message& m, size_t max_body_bytes) {
  if (m.body.size() > max_body_bytes)
    return "a body of " + std::to_string(m.body.size()) + " bytes (bus.max_message_bytes is " +
           std::to_string(max_body_bytes) + ")";
  auto short_string = [](const char* name, size_t size) -> std::optional<std::string> {
    if (size <= 255) return std::nullopt;
    return std::string(name) + " of " + std::to_string(size) + " bytes (AMQP: at most 255)";
  };
  const Properties& p = m.properties;
  std::pair<const char*, size_t> fields[] = {
      {"an exchange name", m.exchange.size()},
      {"a routing key", m.routing_key.size()},
      {"a content_type", p.content_type ? p.content_type->size() : 0},
      {"a content_encoding", p.content_encoding ? p.content_encoding->size() : 0},
      {"a correlation_id", p.correlation_id ? p.correlation_id->size() : 0},
      {"a reply_to", p.reply_to ? p.reply_to->size() : 0},
      {"an expiration", p.expiration ? p.expiration->size() : 0},
      {"a message_id", p.message_id ? p.message_id->size() : 0},
      {"a type", p.type ? p.type->size() : 0},
      {"a user_id", p.user_id ? p.user_id->size() : 0},
      {"an app_id", p.app_id ? p.app_id->size() : 0}};
  for (auto [name, size] : fields)
    if (auto why = short_string(name, size)) return why;
  if (auto why = TableProblem(p.headers, 0)) return why;
  if (!FitsOneFrame(p))
    return "properties and headers of " + std::to_string(EncodedPropertiesBytes(p)) +
           " bytes (an AMQP frame holds " + std::to_string(kFrameMax) + ")";
  return std::nullopt;
}

std::vector<std::string> BrokerUrls(const std::string& urls) {
  // A separator splits only before the next "amqp://" (or "amqps://"), so that a
  // comma or space inside a user name or password stays where it is.
  auto is_sep = [](char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n'; };
  auto starts_url = [&](size_t at) {
    return urls.compare(at, 7, "amqp://") == 0 || urls.compare(at, 8, "amqps://") == 0;
  };
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin < urls.size() && is_sep(urls[begin])) ++begin;
  for (size_t i = begin; i <= urls.size(); ++i) {
    bool split = i == urls.size();
    if (!split && is_sep(urls[i])) {
      size_t next = i;
      while (next < urls.size() && is_sep(urls[next])) ++next;
      split = next == urls.size() || starts_url(next);
    }
    if (!split) continue;
    size_t end = i;
    if (end > begin) out.push_back(urls.substr(begin, end - begin));
    while (i < urls.size() && is_sep(urls[i])) ++i;
    begin = i;
  }
  return out;
}

std::string RedactUrls(const std::string& urls) {
  std::string out;
  for (const std::string& url : BrokerUrls(urls))
    out += (out.empty() ? "" : ",") + detail::RedactUrl(url);
  return out;
}

std::string PartitionQueue(const Topology& topology, uint32_t p) {
  return topology.orders_queue + ".p" + std::to_string(p);
}

std::optional<std::string> BusConfig::Validate() const {
  const auto urls = BrokerUrls(url);
  if (urls.empty()) return std::string("url: no broker URL");
  for (const std::string& u : urls) {
    try {
      detail::ParseUrl(u);
    } catch (const std::invalid_argument& e) {
      return std::string("url: ") + e.what();
    }
  }
  if (tls_cert_file.empty() != tls_key_file.empty())
    return std::string("tls_cert_file and tls_key_file go together: set both or neither");
  const Topology& t = topology;
  for (const auto& [key, value] : {std::pair{"orders_exchange", &t.orders_exchange},
                                   {"orders_queue", &t.orders_queue},
                                   {"orders_binding", &t.orders_binding},
                                   {"dead_letter_exchange", &t.dead_letter_exchange},
                                   {"dead_letter_queue", &t.dead_letter_queue},
                                   {"payments_exchange", &t.payments_exchange}}) {
    if (value->empty()) return std::string(key) + " must not be empty";
    if (value->size() > 255) return std::string(key) + " is longer than 255 bytes";
  }
  if (t.orders_queue == t.dead_letter_queue)
    return "orders_queue and dead_letter_queue must differ";
  if (t.orders_exchange == t.dead_letter_exchange)
    return "orders_exchange and dead_letter_exchange must differ";
  if (t.delivery_limit < 1) return "delivery_limit must be at least 1";
  if (t.partitions < 1 || t.partitions > domain::kMaxPartitions)
    return "partitions must be between 1 and " + std::to_string(domain::kMaxPartitions);
  if (t.partitions > 1) {
    if (t.partitions_exchange.empty()) return "partitions_exchange must not be empty";
    if (PartitionQueue(t, t.partitions - 1).size() > 255)
      return "orders_queue is too long to name the partition queues (255 bytes)";
    for (const std::string* name : {&t.orders_exchange, &t.dead_letter_exchange,
                                    &t.payments_exchange})
      if (*name == t.partitions_exchange)
        return "partitions_exchange must differ from the other exchanges";
  }
  if (prefetch == 0) return "prefetch must be at least 1 (0 would mean unbounded)";
  if (max_in_flight == 0) return "max_in_flight must be at least 1";
  if (confirm_timeout.count() <= 0) return "confirm_timeout must be positive";
  if (connect_timeout.count() <= 0) return "connect_timeout must be positive";
  if (reconnect_min.count() <= 0 || reconnect_max < reconnect_min)
    return "reconnect_min must be positive and not above reconnect_max";
  if (consumer_tag.empty()) return "consumer_tag must not be empty";
  return std::nullopt;
}

}  // namespace payorch::bus
