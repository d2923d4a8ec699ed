// Plain values that cross the bus boundary: AMQP field tables and message properties
// as C++ values, an inbound Delivery, an outbound Message, a publish result and the
// health of a connection. No rabbitmq-c types here; any thread may hold and copy them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "domain/types.hpp"

namespace payorch::bus {

struct FieldValue;
// An AMQP field table. Ordered by key; AMQP does not give keys an order of meaning.
using Table = std::map<std::string, FieldValue>;

// One AMQP field value, kept with its wire kind so that a message is passed on
// (dead-lettered, replayed) with exactly the headers it came with.
struct FieldValue {
  // The rabbitmq-c kind letters: 't' bool, 'b' i8, 'B' u8, 's' i16, 'u' u16, 'I' i32,
  // 'i' u32, 'l' i64, 'L' u64, 'f' float, 'd' double, 'D' decimal, 'S' string,
  // 'x' bytes, 'T' timestamp, 'A' array, 'F' table, 'V' void.
  char kind = 'V';
  int64_t i = 0;         // bool and signed integers
  uint64_t u = 0;        // unsigned integers, timestamp, decimal value
  double f = 0;          // float, double
  uint8_t decimals = 0;  // decimal
  std::string s;         // string, bytes
  std::vector<FieldValue> array;
  Table table;

  static FieldValue String(std::string v) {
    FieldValue f;
    f.kind = 'S';
    f.s = std::move(v);
    return f;
  }
  static FieldValue Int(int64_t v) {
    FieldValue f;
    f.kind = 'l';
    f.i = v;
    return f;
  }
  static FieldValue Bool(bool v) {
    FieldValue f;
    f.kind = 't';
    f.i = v;
    return f;
  }
  static FieldValue Timestamp(uint64_t seconds) {
    FieldValue f;
    f.kind = 'T';
    f.u = seconds;
    return f;
  }

  bool IsString() const { return kind == 'S' || kind == 'x'; }
  // Integers of any width; nullopt for anything else.
  std::optional<int64_t> AsInt() const;
  // For logs and the CLI: strings as they are, numbers in decimal, tables and arrays
  // in a compact JSON-like form.
  std::string ToText() const;

  friend bool operator==(const FieldValue&, const FieldValue&) = default;
};

// The string value of a header, if it is there and is a string.
std::optional<std::string> HeaderString(const Table& headers, std::string_view name);

// AMQP basic properties. Unset optional properties are not sent.
struct Properties {
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  Table headers;
  std::optional<uint8_t> delivery_mode;  // 2 = persistent
  std::optional<uint8_t> priority;
  std::optional<std::string> correlation_id;
  std::optional<std::string> reply_to;
  std::optional<std::string> expiration;
  std::optional<std::string> message_id;
  std::optional<uint64_t> timestamp;  // seconds since the epoch
  std::optional<std::string> type;
  std::optional<std::string> user_id;
  std::optional<std::string> app_id;

  friend bool operator==(const Properties&, const Properties&) = default;
};

// An order event as the consumer hands it to the engine: decoded, with what the
// engine needs to answer, log and ack it. Only well-formed events are delivered;
// the rest are dead-lettered by the consumer itself.
struct Delivery {
  domain::OrderEvent event;
  std::string body;          // the raw body as received
  std::string content_type;  // "" when the property was absent
  std::string exchange;
  std::string routing_key;
  std::string message_id;  // "" when absent
  Table headers;           // incl. x-death and x-delivery-count when the broker set them
  // Every property as received except the headers (above): what a router forwards.
  Properties properties;
  bool redelivered = false;
  // Pass both back to Consumer::Ack. A delivery tag means something only on the
  // connection that delivered it; the generation names that connection.
  uint64_t delivery_tag = 0;
  uint64_t generation = 0;
};

// A message to publish.
struct Message {
  std::string exchange;  // "" is the default exchange
  std::string routing_key;
  std::string body;
  Properties properties;
  // Unroutable mandatory messages come back (PublishStatus::kReturned) instead of
  // vanishing. Payment events are not mandatory: nobody may be bound yet.
  bool mandatory = false;
};

// The contract's properties for a payment event (contract.md, "Outbound"): protobuf
// body, message_id = event_id, correlation_id = order_id, type, persistent, routed
// by payment.<kind>.
Message PaymentEventMessage(const domain::PaymentEvent& event, const std::string& exchange);

enum class PublishStatus {
  kConfirmed,       // the broker took responsibility (persisted to its queues)
  kNacked,          // the broker refused it (internal error); publish again
  kReturned,        // mandatory and unroutable: no queue is bound for the routing key
  kConnectionLost,  // the connection went away before the confirm: unknown, publish again
  kNotConnected,    // not sent: there is no connection at the moment
  kStopped,         // not sent: the publisher is shutting down
  kRefused,         // never sent and never will be as it is (Unpublishable says why)
};
const char* PublishStatusName(PublishStatus status);

// Why AMQP or the broker can never take `message` as it is, or nullopt: a body over
// `max_body_bytes`, an exchange, routing key or short-string property over 255
// bytes, a header name over 128 bytes, headers nested deeper than 64, properties
// that do not fit one frame (kFrameMax). Such a
// message would close the channel (or fail to encode) at every attempt.
std::optional<std::string> Unpublishable(const Message& message, size_t max_body_bytes);

// The bytes `message`'s properties take on the wire (headers included), which
// must fit one AMQP frame with the content header's 22 bytes (kFrameMax).
size_t EncodedPropertiesBytes(const Properties& properties);
inline constexpr size_t kFrameMax = 131072;  // what payorch asks for and RabbitMQ grants
// True when the properties fit one frame with the content header (22 bytes) and
// the frame's own 8.
inline bool FitsOneFrame(const Properties& properties) {
  return EncodedPropertiesBytes(properties) + 30 <= kFrameMax;
}

struct [[nodiscard]] PublishResult {
  PublishStatus status = PublishStatus::kConfirmed;
  std::string detail;  // for logs: why it failed
  bool Ok() const { return status == PublishStatus::kConfirmed; }
};

// The health of one connection (consumer or publisher), for /readyz and logs.
struct LinkStatus {
  bool connected = false;
  uint64_t generation = 0;  // bumps on each successful (re)connect
  uint64_t connects = 0;    // successful connects so far
  std::string last_error;   // the last reason the link went down or could not come up
  std::chrono::system_clock::time_point since{};  // when `connected` last changed
};

}  // namespace payorch::bus
