// Observes what is published to an exchange: a private, exclusive, auto-deleted
// queue bound with one binding key, consumed without acks on a connection and a
// thread of its own. For tools, tests and examples that watch payment events; a
// service that must not miss one declares a durable queue of its own instead.
// Threads: the handler runs on the subscriber's thread. Errors: the constructor
// throws BusError (bus/topology.hpp) when it cannot connect, declare, bind or consume (within the
// config's connect_timeout); a connection lost later ends the subscription
// (Failed() then says why); nothing throws after construction.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus {

// One message as it arrived.
struct Observed {
  std::string exchange;
  std::string routing_key;
  Properties properties;
  std::string body;
};

class Subscriber {
 public:
  using Handler = std::function<void(Observed)>;
  Subscriber(const BusConfig& config, const std::string& exchange, const std::string& binding_key,
             Handler handler);
  ~Subscriber();  // stops the thread; the queue goes with the connection
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  const std::string& queue() const;
  // Empty while the subscription runs; why it ended otherwise.
  std::string Failed() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::bus
