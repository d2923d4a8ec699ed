// Configuration of the bus adapter: broker URL, the contract's names (all
// configurable, contract.md), queue arguments and the knobs of consumer, publisher
// and reconnects. A plain value; Validate() says what is wrong, at start-up.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace payorch::bus {

// Where the bus adapter's log lines go ("event=bus.consumer.connected ..."): stderr
// with a "bus: " prefix unless a sink is set (payorchd routes them into its own
// structured log). Process-wide; the sink is called from the bus threads.
void SetLogSink(std::function<void(std::string_view line)> sink);

struct Topology {
  std::string orders_exchange = "payorch.orders";  // topic, durable
  std::string orders_queue = "payorch.orders";     // quorum, durable
  std::string orders_binding = "order.#";
  std::string dead_letter_exchange = "payorch.orders.dlx";  // topic, durable
  std::string dead_letter_queue = "payorch.orders.dead";    // classic, durable; bound with "#"
  std::string payments_exchange = "payorch.payments";       // topic, durable
  // Deliveries of one message before the broker dead-letters it (x-delivery-limit):
  // a poison message that crashes or keeps failing the engine ends up in the dead
  // letter queue with its x-death headers instead of looping for ever.
  int64_t delivery_limit = 20;
  // x-dead-letter-strategy=at-least-once (needs x-overflow=reject-publish): the broker
  // keeps a message in the orders queue until the dead-letter queue has confirmed it,
  // so dead-lettering by delivery limit loses nothing either.
  bool at_least_once_dead_lettering = true;

  // Partitions (issue 13). One, the default: the orders queue is consumed directly.
  // More: the orders queue gets a single active consumer (payorchd's router), which
  // moves every order event, routing key and properties unchanged, to the queue of its
  // order's partition (domain::PartitionOf) through `partitions_exchange`, a headers
  // exchange matching kPartitionHeader. Each partition queue is quorum, dead-letters as
  // the orders queue does, and has a single active consumer: the instance that holds
  // the partition's store.
  uint32_t partitions = 1;
  std::string partitions_exchange = "payorch.orders.partitions";
};

// The header the router sets to the partition's number ("0", "1", ...). Not "x-...":
// a headers exchange ignores headers starting with x- when it matches.
inline constexpr const char* kPartitionHeader = "payorch-partition";

// The queue of partition `p`: "<orders_queue>.p<p>" (payorch.orders.p0, ...).
std::string PartitionQueue(const Topology& topology, uint32_t p);

// The URLs of BusConfig::url: one, or the nodes of a cluster separated by commas or
// spaces.
std::vector<std::string> BrokerUrls(const std::string& urls);
// The same with every node's password shown as "***", for messages and logs.
std::string RedactUrls(const std::string& urls);

struct BusConfig {
  // amqp://user:password@host:port/vhost (vhost "/" is written as an empty path or %2f);
  // for a cluster, its nodes' URLs separated by commas: each connection takes the
  // first that answers, starting one further each time.
  std::string url = "amqp://guest:guest@127.0.0.1:5672/";
  Topology topology;

  // Consumer: unacked deliveries the broker may have outstanding (basic.qos). Bounds
  // the engine's work in flight and the memory of a burst.
  uint16_t prefetch = 256;
  std::string consumer_tag = "payorchd";
  // The queue the consumer takes: empty means topology.orders_queue; a partition's
  // engine takes PartitionQueue(topology, p).
  std::string consume_queue;
  const std::string& ConsumeQueue() const {
    return consume_queue.empty() ? topology.orders_queue : consume_queue;
  }

  // Publisher: publishes sent and not yet confirmed. Beyond it, submissions wait in
  // the publisher's queue.
  size_t max_in_flight = 10000;
  // A confirm slower than this means a stuck connection (e.g. blocked by a broker
  // alarm): the connection is dropped, every pending publish fails and is retried by
  // its owner after the reconnect.
  std::chrono::milliseconds confirm_timeout{30'000};
  // A message with a larger body is refused before it is sent (kRefused), as are
  // properties AMQP cannot carry (a short string past 255 bytes): the broker would
  // close the channel for it, again at every retry. Keep it at or below the
  // broker's max_message_size (RabbitMQ 3.10: 128 MiB).
  size_t max_message_bytes = 16 * 1024 * 1024;

  // TLS, for amqps:// URLs (ignored for amqp://). The broker's certificate must be
  // signed by a CA in tls_ca_file (PEM; empty: the system's trust store) and name the
  // URL's host. A client certificate and its key (PEM) are sent when both are set.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;

  // Both links.
  uint16_t heartbeat_seconds = 30;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds reconnect_min{100};  // first retry, doubled per failure
  std::chrono::milliseconds reconnect_max{10'000};
  // Declare the topology on every (re)connect, not only at start: a broker that lost
  // its definitions (a new node, a deleted queue) gets them back.
  bool declare_topology = true;

  // An error message for the first bad value, or nullopt when all is well.
  std::optional<std::string> Validate() const;
};

}  // namespace payorch::bus
