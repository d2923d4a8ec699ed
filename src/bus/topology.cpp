#include "bus/topology.hpp"

#include <chrono>
#include <thread>

#include "bus/amqp_link.hpp"

namespace payorch::bus {
namespace {

using detail::AmqpError;
using detail::AmqpValues;
using detail::Bytes;
using detail::Connection;

constexpr uint16_t kPreconditionFailed = 406;
constexpr uint16_t kAccessRefused = 403;
constexpr uint16_t kNotFound = 404;

std::string Describe(const Table& args) {
  std::string out;
  for (const auto& [key, value] : args) {
    if (!out.empty()) out += ", ";
    out += key + "=" + value.ToText();
  }
  return out;
}

[[noreturn]] void Explain(const AmqpError& e, const std::string& kind, const std::string& name,
                          const std::string& wanted) {
  if (e.reply_code() == kPreconditionFailed)
    throw TopologyError(
        kind + " '" + name + "' already exists on the broker with settings that differ from " +
            "payorch's (" + e.what() + "). payorch needs it as: " + wanted +
            ". Refusing to start rather than run with different dead-lettering or durability. "
            "Either delete the " +
            kind + " (move its messages first), or configure another " + kind +
            " name, or change the bus settings to match.",
        e.reply_code());
  if (e.reply_code() == kAccessRefused)
    throw BusError("not allowed to declare " + kind + " '" + name +
                       "': give the AMQP user configure permission on it (" + e.what() + ")",
                   e.reply_code());
  throw BusError("declaring " + kind + " '" + name + "': " + e.what(), e.reply_code());
}

void DeclareExchange(Connection& c, amqp_channel_t ch, const std::string& name,
                     const char* type = "topic") {
  try {
    amqp_exchange_declare(c.get(), ch, Bytes(name), amqp_cstring_bytes(type),
                          /*passive=*/0, /*durable=*/1, /*auto_delete=*/0, /*internal=*/0,
                          amqp_empty_table);
    c.Check("exchange.declare " + name);
  } catch (const AmqpError& e) {
    if (!e.channel_level()) throw BusError(e.what(), e.reply_code());
    Explain(e, "exchange", name, std::string("a durable ") + type + " exchange");
  }
}

void DeclareQueue(Connection& c, amqp_channel_t ch, const std::string& name, const Table& args,
                  const std::string& wanted) {
  try {
    AmqpValues values;
    amqp_queue_declare(c.get(), ch, Bytes(name), /*passive=*/0, /*durable=*/1,
                       /*exclusive=*/0, /*auto_delete=*/0, values.MakeTable(args));
    c.Check("queue.declare " + name);
  } catch (const AmqpError& e) {
    if (!e.channel_level()) throw BusError(e.what(), e.reply_code());
    Explain(e, "queue", name, wanted);
  }
}

void Bind(Connection& c, amqp_channel_t ch, const std::string& queue, const std::string& exchange,
          const std::string& key, const Table& args = {}) {
  try {
    AmqpValues values;
    amqp_queue_bind(c.get(), ch, Bytes(queue), Bytes(exchange), Bytes(key), values.MakeTable(args));
    c.Check("queue.bind " + queue + " to " + exchange + " with " + key);
  } catch (const AmqpError& e) {
    throw BusError(e.what(), e.reply_code());
  }
}

}  // namespace

Table OrdersQueueArguments(const Topology& t) {
  Table args;
  args["x-queue-type"] = FieldValue::String("quorum");
  args["x-dead-letter-exchange"] = FieldValue::String(t.dead_letter_exchange);
  args["x-delivery-limit"] = FieldValue::Int(t.delivery_limit);
  if (t.at_least_once_dead_lettering) {
    args["x-dead-letter-strategy"] = FieldValue::String("at-least-once");
    args["x-overflow"] = FieldValue::String("reject-publish");
  }
  // Partitioned, one router at a time takes the orders queue: it forwards in order.
  if (t.partitions > 1) args["x-single-active-consumer"] = FieldValue::Bool(true);
  return args;
}

Table PartitionQueueArguments(const Topology& t) {
  Table args = OrdersQueueArguments(t);
  args["x-single-active-consumer"] = FieldValue::Bool(true);
  return args;
}

void DeclareTopology(Connection& c, const Topology& t, uint16_t ch) {
  c.OpenChannel(ch);
  DeclareExchange(c, ch, t.orders_exchange);
  DeclareExchange(c, ch, t.dead_letter_exchange);
  DeclareExchange(c, ch, t.payments_exchange);
  DeclareQueue(c, ch, t.dead_letter_queue, {}, "a durable classic queue without arguments");
  Bind(c, ch, t.dead_letter_queue, t.dead_letter_exchange, "#");
  Table args = OrdersQueueArguments(t);
  DeclareQueue(c, ch, t.orders_queue, args, "a durable queue with " + Describe(args));
  Bind(c, ch, t.orders_queue, t.orders_exchange, t.orders_binding);
  if (t.partitions > 1) {
    DeclareExchange(c, ch, t.partitions_exchange, "headers");
    const Table pargs = PartitionQueueArguments(t);
    const std::string wanted = "a durable queue with " + Describe(pargs);
    for (uint32_t p = 0; p < t.partitions; ++p) {
      const std::string queue = PartitionQueue(t, p);
      DeclareQueue(c, ch, queue, pargs, wanted);
      Table match;
      match["x-match"] = FieldValue::String("all");
      match[kPartitionHeader] = FieldValue::String(std::to_string(p));
      Bind(c, ch, queue, t.partitions_exchange, "", match);
    }
  }
  amqp_channel_close(c.get(), ch, AMQP_REPLY_SUCCESS);
  c.Check("closing the topology channel");
}

void DeclareTopology(const BusConfig& config) {
  if (auto bad = config.Validate()) throw BusError("bad bus configuration: " + *bad);
  try {
    Connection c(config, "payorch topology");
    DeclareTopology(c, config.topology);
  } catch (const AmqpError& e) {
    if (e.tls()) throw TlsError(e.what());
    throw BusError(e.what(), e.reply_code());
  }
}

// --- Admin -----------------------------------------------------------------

Admin::Admin(const BusConfig& config, const std::string& connection_name) {
  try {
    connection_ = std::make_unique<Connection>(config, connection_name);
    connection_->OpenChannel(channel_);
  } catch (const AmqpError& e) {
    if (e.tls()) throw TlsError(e.what());
    throw BusError(e.what(), e.reply_code());
  } catch (const std::invalid_argument& e) {
    throw BusError(e.what());
  }
}

Admin::~Admin() = default;

// Runs `f` on the admin channel. A channel error (404 on a passive declare, say)
// closes the channel on the broker's side: a fresh one is opened for the next call.
template <typename F>
auto Admin::OnChannel(const std::string& what, F&& f) {
  try {
    return f();
  } catch (const AmqpError& e) {
    if (e.channel_level()) {
      channel_ = next_channel_++;
      try {
        connection_->OpenChannel(channel_);
      } catch (const AmqpError&) {
      }
    }
    throw BusError(what + ": " + e.what(), e.reply_code());
  }
}

void Admin::DeclareTopology(const Topology& topology) {
  // On a channel of its own, never reused: a refusal closes it on the broker's side.
  try {
    bus::DeclareTopology(*connection_, topology, next_channel_++);
  } catch (const BusError&) {
    throw;
  } catch (const AmqpError& e) {
    throw BusError(e.what(), e.reply_code());
  }
}

void Admin::DeleteQueue(const std::string& queue) {
  OnChannel("deleting queue " + queue, [&] {
    amqp_queue_delete(connection_->get(), channel_, Bytes(queue), 0, 0);
    connection_->Check("queue.delete");
  });
}

void Admin::DeleteExchange(const std::string& exchange) {
  OnChannel("deleting exchange " + exchange, [&] {
    amqp_exchange_delete(connection_->get(), channel_, Bytes(exchange), 0);
    connection_->Check("exchange.delete");
  });
}

void Admin::DeleteTopology(const Topology& t) {
  for (const auto* q : {&t.orders_queue, &t.dead_letter_queue}) DeleteQueue(*q);
  for (const auto* x : {&t.orders_exchange, &t.dead_letter_exchange, &t.payments_exchange})
    DeleteExchange(*x);
  if (t.partitions > 1) {
    for (uint32_t p = 0; p < t.partitions; ++p) DeleteQueue(PartitionQueue(t, p));
    DeleteExchange(t.partitions_exchange);
  }
}

void Admin::DeclareQueue(const std::string& queue, bool durable, const Table& arguments) {
  OnChannel("declaring queue " + queue, [&] {
    AmqpValues values;
    amqp_queue_declare(connection_->get(), channel_, Bytes(queue), 0, durable, 0, 0,
                       values.MakeTable(arguments));
    connection_->Check("queue.declare");
  });
}

void Admin::DeclareExchange(const std::string& exchange, const std::string& type) {
  OnChannel("declaring exchange " + exchange, [&] {
    amqp_exchange_declare(connection_->get(), channel_, Bytes(exchange), Bytes(type), 0, 1, 0, 0,
                          amqp_empty_table);
    connection_->Check("exchange.declare");
  });
}

void Admin::Bind(const std::string& queue, const std::string& exchange, const std::string& key) {
  OnChannel("binding queue " + queue, [&] {
    amqp_queue_bind(connection_->get(), channel_, Bytes(queue), Bytes(exchange), Bytes(key),
                    amqp_empty_table);
    connection_->Check("queue.bind");
  });
}

std::optional<uint32_t> Admin::QueueDepth(const std::string& queue) {
  try {
    return OnChannel("queue depth of " + queue, [&]() -> std::optional<uint32_t> {
      auto* ok = amqp_queue_declare(connection_->get(), channel_, Bytes(queue), /*passive=*/1, 0, 0,
                                    0, amqp_empty_table);
      connection_->Check("queue.declare passive");
      return ok->message_count;
    });
  } catch (const BusError& e) {
    if (e.reply_code() == kNotFound) return std::nullopt;
    throw;
  }
}

std::optional<GotMessage> Admin::Take(const std::string& queue) {
  return OnChannel("basic.get from " + queue, [&]() -> std::optional<GotMessage> {
    amqp_rpc_reply_t reply = amqp_basic_get(connection_->get(), channel_, Bytes(queue), 1);
    connection_->Check(reply, "basic.get");
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    auto* ok = static_cast<amqp_basic_get_ok_t*>(reply.reply.decoded);
    GotMessage m;
    m.exchange = detail::ToString(ok->exchange);
    m.routing_key = detail::ToString(ok->routing_key);
    m.redelivered = ok->redelivered;
    m.remaining = ok->message_count;
    connection_->ReadContent(channel_, m.properties, m.body);
    return m;
  });
}

uint32_t Admin::Purge(const std::string& queue) {
  return OnChannel("purging " + queue, [&] {
    auto* ok = amqp_queue_purge(connection_->get(), channel_, Bytes(queue));
    connection_->Check("queue.purge");
    return ok->message_count;
  });
}

std::vector<GotMessage> Admin::Peek(const std::string& queue, size_t max) {
  HoldChannel hold = OpenHold();
  std::vector<GotMessage> out;
  while (out.size() < max) {
    auto m = hold.Get(queue);
    if (!m) break;
    out.push_back(std::move(*m));
  }
  hold.Close();
  // Ready when it closed: what it held, and what it left behind the last one.
  if (!out.empty()) WaitReady(queue, out.size() + out.back().remaining);
  return out;
}

void Admin::WaitReady(const std::string& queue, size_t count) {
  // The broker requeues what a closed channel held after its close-ok (a quorum
  // queue through its log): wait, briefly, until that many are ready again, so that
  // the next reader (another peek, a replay) finds the queue as it was.
  // Best effort: a failure to look is no failure of what came before.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  try {
    while (count > 0 && std::chrono::steady_clock::now() < end) {
      const auto depth = QueueDepth(queue);
      if (!depth || *depth >= count) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } catch (const BusError&) {
  }
}

HoldChannel Admin::OpenHold() {
  // Never reused: a channel error closes it on the broker's side for good.
  uint16_t channel = next_channel_++;
  try {
    connection_->OpenChannel(channel);
    // Confirms, so that a replay acks the dead letter only once its copy is safe.
    amqp_confirm_select(connection_->get(), channel);
    connection_->Check("confirm.select");
  } catch (const AmqpError& e) {
    throw BusError("opening a holding channel: " + std::string(e.what()), e.reply_code());
  }
  return HoldChannel(*connection_, channel);
}

// --- HoldChannel -------------------------------------------------------------

HoldChannel::HoldChannel(Connection& connection, uint16_t channel)
    : connection_(&connection), channel_(channel) {}

HoldChannel::HoldChannel(HoldChannel&& other) noexcept
    : connection_(other.connection_),
      channel_(other.channel_),
      open_(other.open_),
      next_publish_seq_(other.next_publish_seq_),
      held_(other.held_) {
  other.open_ = false;
}

HoldChannel::~HoldChannel() {
  try {
    Close();
  } catch (const std::exception&) {
    // The connection is gone: the broker gives back what was held anyway.
  }
}

void HoldChannel::Fail(const std::string& what, const std::exception& e) {
  // A channel-level error closed the channel (the broker gave back what it held);
  // a connection-level one took the whole connection.
  open_ = false;
  held_ = 0;
  if (const auto* amqp = dynamic_cast<const AmqpError*>(&e))
    throw BusError(what + ": " + amqp->what(), amqp->reply_code());
  throw BusError(what + ": " + e.what());
}

std::optional<GotMessage> HoldChannel::Get(const std::string& queue) {
  if (!open_) throw BusError("basic.get from " + queue + ": the holding channel is closed");
  try {
    amqp_rpc_reply_t reply =
        amqp_basic_get(connection_->get(), channel_, Bytes(queue), /*no_ack=*/0);
    connection_->Check(reply, "basic.get");
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    auto* ok = static_cast<amqp_basic_get_ok_t*>(reply.reply.decoded);
    GotMessage m;
    m.exchange = detail::ToString(ok->exchange);
    m.routing_key = detail::ToString(ok->routing_key);
    m.redelivered = ok->redelivered;
    m.remaining = ok->message_count;
    m.delivery_tag = ok->delivery_tag;
    ++held_;
    connection_->ReadContent(channel_, m.properties, m.body);
    return m;
  } catch (const std::exception& e) {
    Fail("basic.get from " + queue, e);
  }
}

void HoldChannel::Ack(uint64_t delivery_tag) {
  if (!open_) throw BusError("basic.ack: the holding channel is closed");
  try {
    connection_->CheckStatus(amqp_basic_ack(connection_->get(), channel_, delivery_tag, 0),
                             "basic.ack");
    if (held_ > 0) --held_;
  } catch (const std::exception& e) {
    Fail("basic.ack", e);
  }
}

void HoldChannel::Nack(uint64_t delivery_tag, bool requeue) {
  if (!open_) throw BusError("basic.nack: the holding channel is closed");
  try {
    connection_->CheckStatus(
        amqp_basic_nack(connection_->get(), channel_, delivery_tag, 0, requeue ? 1 : 0),
        "basic.nack");
    if (held_ > 0) --held_;
  } catch (const std::exception& e) {
    Fail("basic.nack", e);
  }
}

PublishResult HoldChannel::Publish(const Message& message, std::chrono::milliseconds timeout) {
  if (!open_) return PublishResult{PublishStatus::kNotConnected, "the holding channel is closed"};
  const std::string what = "publishing to exchange '" + message.exchange + "' with routing key '" +
                           message.routing_key + "'";
  try {
    AmqpValues values;
    amqp_basic_properties_t props = values.MakeProperties(message.properties);
    connection_->CheckStatus(
        amqp_basic_publish(connection_->get(), channel_, Bytes(message.exchange),
                           Bytes(message.routing_key), message.mandatory ? 1 : 0, 0, &props,
                           Bytes(message.body)),
        "basic.publish");
    const uint64_t seq = next_publish_seq_++;
    PublishResult result;
    bool returned = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      amqp_frame_t frame;
      if (left.count() <= 0 || !connection_->NextFrame(frame, left)) {
        // The confirm may still come; later publishes would be confused by it.
        Close();
        throw BusError(what + ": no publisher confirm within " + std::to_string(timeout.count()) +
                       " ms (is the broker blocked by a memory or disk alarm?)");
      }
      if (frame.channel != channel_ || frame.frame_type != AMQP_FRAME_METHOD) continue;
      const amqp_method_t& method = frame.payload.method;
      if (method.id == AMQP_BASIC_RETURN_METHOD) {
        auto* ret = static_cast<amqp_basic_return_t*>(method.decoded);
        result.detail = "returned: " + std::to_string(ret->reply_code) + " " +
                        detail::ToString(ret->reply_text);
        Properties ignored_properties;
        std::string ignored_body;
        connection_->ReadContent(channel_, ignored_properties, ignored_body);
        returned = true;
      } else if (method.id == AMQP_BASIC_ACK_METHOD) {
        auto* ack = static_cast<amqp_basic_ack_t*>(method.decoded);
        if (ack->delivery_tag < seq) continue;  // an earlier publish's (none are pending)
        result.status = returned ? PublishStatus::kReturned : PublishStatus::kConfirmed;
        return result;
      } else if (method.id == AMQP_BASIC_NACK_METHOD) {
        auto* nack = static_cast<amqp_basic_nack_t*>(method.decoded);
        if (nack->delivery_tag < seq) continue;
        result.status = PublishStatus::kNacked;
        result.detail = "the broker refused the message (basic.nack)";
        return result;
      }
    }
  } catch (const BusError&) {
    throw;
  } catch (const std::exception& e) {
    Fail(what, e);
  }
}

void HoldChannel::Pause(std::chrono::milliseconds duration) {
  if (!open_) return;
  const auto deadline = std::chrono::steady_clock::now() + duration;
  try {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      // Waiting in rabbitmq-c (not in sleep) lets it answer heartbeats.
      amqp_frame_t frame;
      connection_->NextFrame(frame, left);
    }
  } catch (const std::exception& e) {
    Fail("waiting on the holding channel", e);
  }
}

void HoldChannel::Close() {
  if (!open_) return;
  open_ = false;
  held_ = 0;
  try {
    amqp_channel_close(connection_->get(), channel_, AMQP_REPLY_SUCCESS);
    connection_->Check("closing the holding channel");
  } catch (const AmqpError& e) {
    throw BusError("closing the holding channel: " + std::string(e.what()), e.reply_code());
  }
}

}  // namespace payorch::bus
