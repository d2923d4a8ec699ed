// The contract's topology (contract.md): declaring it, and refusing to run on an
// existing queue or exchange whose arguments differ. Plus Admin, a small blocking
// client for start-up checks, tools (payorchctl) and tests: one connection, used by
// the calling thread only. Errors are exceptions: TopologyError for an incompatible
// broker state (the message says what to do), BusError for everything else.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

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

// The broker has a queue or exchange by our name with other arguments or type.
class TopologyError : public BusError {
 public:
  using BusError::BusError;
};

// The arguments payorch declares the orders queue with (x-queue-type quorum,
// x-dead-letter-exchange, x-delivery-limit, and the at-least-once strategy).
Table OrdersQueueArguments(const Topology& topology);

// Declares everything of `topology`: the three exchanges, the orders queue with its
// binding, the dead-letter queue bound to the DLX with "#". Idempotent.
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

 private:
  template <typename F>
  auto OnChannel(const std::string& what, F&& f);

  std::unique_ptr<detail::Connection> connection_;
  uint16_t channel_ = 1;       // the admin channel
  uint16_t next_channel_ = 2;  // channel numbers are never reused after a channel error
};

}  // namespace payorch::bus
