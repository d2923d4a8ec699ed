// The contract's topology (contract.md): declaring it, and refusing to run on an
// existing queue or exchange whose arguments differ. Plus Admin, a small blocking
// client for start-up checks, tools (payorchctl) and tests: one connection, used by
// the calling thread only. Errors are exceptions: TopologyError for an incompatible
// broker state (the message says what to do), BusError for everything else.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus {

namespace detail {
class Connection;
}

// Cannot connect, channel or protocol failure (the broker's reply code when it had one).
class BusError : public std::runtime_error {
 public:
  explicit BusError(const std::string& what, uint16_t reply_code = 0)
      : std::runtime_error(what), reply_code_(reply_code) {}
  uint16_t reply_code() const { return reply_code_; }

 private:
  uint16_t reply_code_;
};

// TLS refused the broker (its certificate is not trusted or does not name its host)
// or our own certificate files: a configuration problem, not an outage.
class TlsError : public BusError {
 public:
  using BusError::BusError;
};

// The broker has a queue or exchange by our name with other arguments or type.
class TopologyError : public BusError {
 public:
  using BusError::BusError;
};

// The arguments payorch declares the orders queue with (x-queue-type quorum,
// x-dead-letter-exchange, x-delivery-limit, and the at-least-once strategy).
// Partitioned (topology.partitions > 1), also x-single-active-consumer.
Table OrdersQueueArguments(const Topology& topology);
// A partition queue's: the orders queue's, with x-single-active-consumer.
Table PartitionQueueArguments(const Topology& topology);

// Declares everything of `topology`: the three exchanges, the orders queue with its
// binding, the dead-letter queue bound to the DLX with "#"; partitioned, also the
// partitions exchange (headers) and each partition's queue bound to it by
// kPartitionHeader. Idempotent.
// Throws TopologyError (PRECONDITION_FAILED, explained) or BusError.
void DeclareTopology(detail::Connection& connection, const Topology& topology,
                     uint16_t channel = 1);
// The same over a connection of its own: what payorchd runs at start-up.
void DeclareTopology(const BusConfig& config);

// A message taken from a queue with basic.get.
struct GotMessage {
  std::string exchange;
  std::string routing_key;
  Properties properties;
  std::string body;
  bool redelivered = false;
  uint32_t remaining = 0;  // messages left in the queue, as the broker counted
  // The delivery tag on the channel that got it (HoldChannel); 0 from Take, which acks at once.
  uint64_t delivery_tag = 0;
};

class Admin;

// A channel of its own on an Admin's connection, for taking messages without
// acking them and publishing with confirms (payorchctl's peek, replay and purge).
// A message taken here stays in its queue but is invisible to every other
// consumer until it is acked (gone) or the channel closes: then the broker puts it
// back where it was (a classic queue keeps the order). So two readers never hold
// the same message, and a reader that dies gives back what it held.
// Used by the Admin's thread only; must not outlive the Admin. Errors: BusError; a
// channel error (e.g. publishing to a missing exchange) closes the channel on the
// broker's side, which gives back what it held, and the HoldChannel is then closed.
class HoldChannel {
 public:
  HoldChannel(HoldChannel&& other) noexcept;
  HoldChannel& operator=(HoldChannel&&) = delete;
  HoldChannel(const HoldChannel&) = delete;
  ~HoldChannel();  // Close(), errors swallowed

  // basic.get without auto-ack: nullopt when the queue has no ready message.
  std::optional<GotMessage> Get(const std::string& queue);
  // Removes a held message from its queue for good.
  void Ack(uint64_t delivery_tag);
  // Gives a held message back now (requeue) or drops it (dead-letters it, if its
  // queue has a dead-letter exchange). A message given back is ready again at once,
  // so the next Get may return it: callers that scan keep what they skip held instead.
  void Nack(uint64_t delivery_tag, bool requeue);
  // Publishes and waits for the broker's confirm (at most `timeout`, then BusError).
  // Mandatory messages that no queue takes come back as kReturned.
  PublishResult Publish(const Message& message,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits without sending anything, answering heartbeats meanwhile (rate limits).
  void Pause(std::chrono::milliseconds duration);
  // Closes the channel: every held message goes back to its queue. Idempotent.
  void Close();
  bool IsOpen() const { return open_; }
  size_t Held() const { return held_; }  // taken and neither acked nor nacked

 private:
  friend class Admin;
  HoldChannel(detail::Connection& connection, uint16_t channel);
  [[noreturn]] void Fail(const std::string& what, const std::exception& e);

  detail::Connection* connection_;
  uint16_t channel_;
  bool open_ = true;
  uint64_t next_publish_seq_ = 1;  // confirm.select numbers publishes from 1
  size_t held_ = 0;
};

class Admin {
 public:
  // Connects; throws BusError.
  explicit Admin(const BusConfig& config, const std::string& connection_name = "payorch admin");
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  void DeclareTopology(const Topology& topology);
  // Deletes the queues and exchanges of `topology` (missing ones are fine).
  void DeleteTopology(const Topology& topology);
  void DeleteQueue(const std::string& queue);
  void DeleteExchange(const std::string& exchange);
  // Declares a queue with any arguments (tests use it to set up incompatible queues).
  void DeclareQueue(const std::string& queue, bool durable, const Table& arguments);
  void DeclareExchange(const std::string& exchange, const std::string& type);
  void Bind(const std::string& queue, const std::string& exchange, const std::string& key);
  // Ready messages in the queue (passive declare); nullopt if it does not exist.
  std::optional<uint32_t> QueueDepth(const std::string& queue);
  // Takes one message off the queue, acked at once (basic.get with auto-ack).
  std::optional<GotMessage> Take(const std::string& queue);
  uint32_t Purge(const std::string& queue);
  // Non-destructive: takes up to `max` messages without acking them on a channel of
  // its own, then closes that channel, so the broker puts them all back in their
  // order, and returns once they are ready again (up to 2 s). While it runs, other
  // consumers cannot get the messages it holds.
  std::vector<GotMessage> Peek(const std::string& queue, size_t max);
  // After a holding channel closed: waits (up to 2 s) until `count` messages are
  // ready in `queue` again. Never throws.
  void WaitReady(const std::string& queue, size_t count);
  // A channel of its own in confirm mode, for holding, acking and publishing.
  HoldChannel OpenHold();

 private:
  template <typename F>
  auto OnChannel(const std::string& what, F&& f);

  std::unique_ptr<detail::Connection> connection_;
  uint16_t channel_ = 1;       // the admin channel
  uint16_t next_channel_ = 2;  // channel numbers are never reused after a channel error
};

}  // namespace payorch::bus
