// Bus adapter against the real broker (scripts/broker): topology and its refusal of
// incompatible queues, round trips of every order event kind in both content types,
// dead-lettering of every kind of bad message with its reason, acks (never
// delivered twice), rejects, stale acks, delivery limit, and confirmed publishing
// under load. Each test has its own exchange and queue names and deletes them.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <set>

#include "bus/amqp_link.hpp"
#include "bus_test_util.hpp"

namespace payorch::bus::testing {
namespace {

using namespace std::chrono_literals;

// --- Topology --------------------------------------------------------------

TEST_F(BusTest, DeclaresTheContractTopologyIdempotently) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  ASSERT_NO_THROW(DeclareTopology(config_));  // a second start finds it as it wants it
  const Topology& t = config_.topology;
  EXPECT_EQ(admin_->QueueDepth(t.orders_queue), 0u);
  EXPECT_EQ(admin_->QueueDepth(t.dead_letter_queue), 0u);

  // The orders queue is a quorum queue: redeclaring it as classic is refused.
  EXPECT_THROW(
      admin_->DeclareQueue(t.orders_queue, true, {{"x-queue-type", FieldValue::String("classic")}}),
      BusError);
  // ... and exactly our arguments are accepted.
  EXPECT_NO_THROW(admin_->DeclareQueue(t.orders_queue, true, OrdersQueueArguments(t)));

  // Routing: order.# reaches the orders queue, anything else does not; the DLX
  // routes every key to the dead-letter queue.
  Publisher publisher(config_);
  publisher.Start();
  auto publish = [&](const std::string& exchange, const std::string& key) {
    Message m;
    m.exchange = exchange;
    m.routing_key = key;
    m.body = "x";
    m.mandatory = true;
    return publisher.Publish(std::move(m)).get().status;
  };
  EXPECT_EQ(publish(t.orders_exchange, "order.shipped"), PublishStatus::kConfirmed);
  EXPECT_EQ(publish(t.orders_exchange, "order.anything.deeper"), PublishStatus::kConfirmed);
  EXPECT_EQ(publish(t.orders_exchange, "payment.captured"), PublishStatus::kReturned);
  EXPECT_EQ(publish(t.dead_letter_exchange, "whatever.key"), PublishStatus::kConfirmed);
  EXPECT_EQ(admin_->QueueDepth(t.orders_queue), 2u);
  EXPECT_EQ(admin_->QueueDepth(t.dead_letter_queue), 1u);
}

// Partitioned (issue 13): a headers exchange routes by kPartitionHeader to the
// partition's queue; the orders queue and every partition queue have a single
// active consumer.
TEST_F(BusTest, DeclaresThePartitionedTopology) {
  Topology& t = config_.topology;
  t.partitions = 3;
  t.partitions_exchange = "test.orders.partitions." + suffix_;
  ASSERT_NO_THROW(DeclareTopology(config_));
  ASSERT_NO_THROW(DeclareTopology(config_));
  for (uint32_t p = 0; p < 3; ++p) EXPECT_EQ(admin_->QueueDepth(PartitionQueue(t, p)), 0u);
  EXPECT_EQ(PartitionQueue(t, 2), t.orders_queue + ".p2");
  // Exactly the arguments declared: a single active consumer on each.
  EXPECT_TRUE(PartitionQueueArguments(t).count("x-single-active-consumer"));
  EXPECT_TRUE(OrdersQueueArguments(t).count("x-single-active-consumer"));
  EXPECT_NO_THROW(admin_->DeclareQueue(t.orders_queue, true, OrdersQueueArguments(t)));
  EXPECT_NO_THROW(admin_->DeclareQueue(PartitionQueue(t, 1), true, PartitionQueueArguments(t)));
  Table without_sac = OrdersQueueArguments(t);
  without_sac.erase("x-single-active-consumer");
  EXPECT_THROW(admin_->DeclareQueue(PartitionQueue(t, 1), true, without_sac), BusError);

  Publisher publisher(config_);
  publisher.Start();
  auto publish = [&](const std::string& partition, const std::string& key) {
    Message m;
    m.exchange = t.partitions_exchange;
    m.routing_key = key;
    m.body = "x";
    m.mandatory = true;
    if (!partition.empty()) m.properties.headers[kPartitionHeader] = FieldValue::String(partition);
    return publisher.Publish(std::move(m)).get().status;
  };
  EXPECT_EQ(publish("1", "order.shipped"), PublishStatus::kConfirmed);
  EXPECT_EQ(publish("2", "order.cancelled"), PublishStatus::kConfirmed);
  EXPECT_EQ(publish("3", "order.shipped"), PublishStatus::kReturned);  // no such partition
  EXPECT_EQ(publish("", "order.shipped"), PublishStatus::kReturned);   // no header
  // (basic.get is refused on a quorum queue with a single active consumer.)
  EXPECT_EQ(admin_->QueueDepth(PartitionQueue(t, 0)), 0u);
  EXPECT_EQ(admin_->QueueDepth(PartitionQueue(t, 1)), 1u);
  EXPECT_EQ(admin_->QueueDepth(PartitionQueue(t, 2)), 1u);
}

// A deployment is partitioned from the start: an orders queue declared without
// partitions (no single active consumer) is refused, not changed under a running
// consumer.
TEST_F(BusTest, RefusesToPartitionAnUnpartitionedOrdersQueue) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  config_.topology.partitions = 2;
  config_.topology.partitions_exchange = "test.orders.partitions." + suffix_;
  try {
    DeclareTopology(config_);
    FAIL() << "expected TopologyError";
  } catch (const TopologyError& e) {
    EXPECT_NE(std::string(e.what()).find("x-single-active-consumer"), std::string::npos)
        << e.what();
  }
}

// bus.url with a cluster's nodes: split only where the next URL starts, so a comma
// or a space in a user name or password stays in it.
TEST(BrokerUrlsTest, SplitOnlyBeforeTheNextUrl) {
  using V = std::vector<std::string>;
  EXPECT_EQ(BrokerUrls("amqp://a@h1/, amqp://b@h2/"), (V{"amqp://a@h1/", "amqp://b@h2/"}));
  EXPECT_EQ(BrokerUrls("amqp://a@h1/,amqp://b@h2/,amqp://c@h3/"),
            (V{"amqp://a@h1/", "amqp://b@h2/", "amqp://c@h3/"}));
  EXPECT_EQ(BrokerUrls(" amqp://x@h/ "), (V{"amqp://x@h/"}));
  EXPECT_EQ(BrokerUrls("amqp://u:p,w@h/"), (V{"amqp://u:p,w@h/"}));
  EXPECT_EQ(BrokerUrls("amqp://u:p w@h/,amqp://v@h2/"), (V{"amqp://u:p w@h/", "amqp://v@h2/"}));
  EXPECT_EQ(BrokerUrls(""), V{});
}

// A cluster's nodes in bus.url (issue 13): a node that does not answer is passed
// over for the next. Each connection starts one node further, so of three in a row
// at least one tries the dead node first.
TEST_F(BusTest, ConnectsToTheNextNodeWhenOneIsDown) {
  BusConfig c = config_;
  c.url = "amqp://guest:guest@127.0.0.1:1/," + url_;  // port 1: nothing listens
  ASSERT_FALSE(c.Validate().has_value()) << *c.Validate();
  for (int i = 0; i < 3; ++i) {
    Publisher publisher(c);
    publisher.Start();
    ASSERT_TRUE(WaitFor([&] { return publisher.Status().connected; })) << publisher.Status().last_error;
    EXPECT_EQ(publisher.Status().connects, 1u);
  }
  c.url = "amqp://guest:guest@127.0.0.1:1/, amqp://guest:guest@127.0.0.1:2/";
  Publisher none(c);
  none.Start();
  ASSERT_TRUE(WaitFor([&] { return !none.Status().last_error.empty(); }));
  EXPECT_NE(none.Status().last_error.find("no broker of 2 reachable"), std::string::npos)
      << none.Status().last_error;
}

TEST_F(BusTest, RefusesAnExistingClassicOrdersQueue) {
  admin_->DeclareQueue(config_.topology.orders_queue, true, {});  // classic, no DLX
  try {
    DeclareTopology(config_);
    FAIL() << "expected TopologyError";
  } catch (const TopologyError& e) {
    std::string what = e.what();
    EXPECT_EQ(e.reply_code(), 406);
    EXPECT_NE(what.find("queue '" + config_.topology.orders_queue + "'"), std::string::npos)
        << what;
    EXPECT_NE(what.find("x-queue-type"), std::string::npos) << what;
    EXPECT_NE(what.find("Refusing to start"), std::string::npos) << what;
  }
}

TEST_F(BusTest, RefusesAnOrdersQueueWithAnotherDeliveryLimit) {
  BusConfig other = config_;
  other.topology.delivery_limit = config_.topology.delivery_limit + 5;
  ASSERT_NO_THROW(DeclareTopology(other));
  EXPECT_THROW(DeclareTopology(config_), TopologyError);
}

TEST_F(BusTest, RefusesAnExchangeOfAnotherType) {
  admin_->DeclareExchange(config_.topology.payments_exchange, "fanout");
  try {
    DeclareTopology(config_);
    FAIL() << "expected TopologyError";
  } catch (const TopologyError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("exchange '" + config_.topology.payments_exchange + "'"), std::string::npos)
        << what;
    EXPECT_NE(what.find("durable topic exchange"), std::string::npos) << what;
  }
}

TEST_F(BusTest, ConsumerReportsAnIncompatibleQueueAndDoesNotConsume) {
  admin_->DeclareQueue(config_.topology.orders_queue, true, {});
  Inbox inbox;
  std::mutex mutex;
  std::vector<LinkStatus> statuses;
  Consumer consumer(
      config_, [&](Delivery d) { inbox.Add(std::move(d)); },
      [&](const LinkStatus& s) {
        std::lock_guard lock(mutex);
        statuses.push_back(s);
      });
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] { return !consumer.Status().last_error.empty(); }));
  LinkStatus s = consumer.Status();
  EXPECT_FALSE(s.connected);
  EXPECT_NE(s.last_error.find("Refusing to start"), std::string::npos) << s.last_error;
  consumer.Stop();
  EXPECT_EQ(inbox.Size(), 0u);
}

// --- Consuming -------------------------------------------------------------

TEST_F(BusTest, RoundTripsEveryOrderEventKindInBothContentTypes) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  Inbox inbox;
  Consumer consumer(config_, [&](Delivery d) { inbox.Add(std::move(d)); });
  consumer.Start();
  Publisher publisher(config_);
  publisher.Start();

  std::vector<domain::OrderEvent> sent;
  for (bool json : {false, true}) {
    for (auto& e : OrderSamples(std::string(json ? "json" : "pb") + suffix_)) {
      auto result = publisher.Publish(OrderMessage(config_, e, json)).get();
      ASSERT_TRUE(result.Ok()) << PublishStatusName(result.status) << " " << result.detail;
      sent.push_back(e);
    }
  }
  ASSERT_TRUE(WaitFor([&] { return inbox.Size() >= sent.size(); }))
      << "received " << inbox.Size() << " of " << sent.size();
  auto got = inbox.All();
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    bool json = i >= sent.size() / 2;
    const Delivery& d = got[i];
    SCOPED_TRACE(sent[i].event_id);
    EXPECT_EQ(codec::EncodeOrderEvent(d.event), codec::EncodeOrderEvent(sent[i]));
    EXPECT_EQ(d.routing_key, codec::OrderRoutingKey(sent[i].kind));
    EXPECT_EQ(d.exchange, config_.topology.orders_exchange);
    EXPECT_EQ(d.message_id, sent[i].event_id);
    EXPECT_EQ(d.content_type, json ? codec::kContentTypeJson : codec::kContentTypeProtobuf);
    EXPECT_FALSE(d.redelivered);
    EXPECT_EQ(d.generation, consumer.Status().generation);
    consumer.Ack(d.generation, d.delivery_tag);
  }
  ASSERT_TRUE(WaitFor([&] { return consumer.GetStats().acked == sent.size(); }));
  consumer.Stop();

  // Acked means gone: a new consumer gets only the sentinel published after.
  Inbox again;
  Consumer second(config_, [&](Delivery d) { again.Add(std::move(d)); });
  second.Start();
  auto sentinel = OrderSamples("sentinel" + suffix_)[3];
  ASSERT_TRUE(publisher.Publish(OrderMessage(config_, sentinel, false)).get().Ok());
  ASSERT_TRUE(WaitFor([&] { return again.Size() >= 1; }));
  auto all = again.All();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].message_id, sentinel.event_id);
  second.Ack(all[0].generation, all[0].delivery_tag);
  ASSERT_TRUE(WaitFor([&] { return second.GetStats().acked == 1; }));
  second.Stop();
  EXPECT_EQ(admin_->QueueDepth(config_.topology.orders_queue), 0u);
}

TEST_F(BusTest, UnackedDeliveriesComeBackRedeliveredAndStaleAcksAreDropped) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  Publisher publisher(config_);
  publisher.Start();
  auto event = OrderSamples(suffix_)[0];
  ASSERT_TRUE(publisher.Publish(OrderMessage(config_, event, false)).get().Ok());

  Inbox first;
  uint64_t first_generation;
  {
    Consumer consumer(config_, [&](Delivery d) { first.Add(std::move(d)); });
    consumer.Start();
    ASSERT_TRUE(WaitFor([&] { return first.Size() == 1; }));
    first_generation = first.All()[0].generation;
    // Not acked: Stop() closes the connection and the broker requeues it.
  }
  Inbox second;
  Consumer consumer(config_, [&](Delivery d) { second.Add(std::move(d)); });
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] { return second.Size() == 1; }));
  Delivery d = second.All()[0];
  EXPECT_TRUE(d.redelivered);
  EXPECT_EQ(d.message_id, event.event_id);

  // An ack from another connection's generation, or for a tag never delivered,
  // is dropped without harming the channel.
  consumer.Ack(first_generation + 1000, d.delivery_tag);
  consumer.Ack(d.generation, d.delivery_tag + 77);
  ASSERT_TRUE(WaitFor([&] { return consumer.GetStats().stale == 2; }));
  consumer.Ack(d.generation, d.delivery_tag);
  consumer.Ack(d.generation, d.delivery_tag);  // twice: the second is stale
  ASSERT_TRUE(WaitFor([&] { return consumer.GetStats().stale == 3; }));
  EXPECT_EQ(consumer.GetStats().acked, 1u);
  EXPECT_TRUE(consumer.Status().connected);
  EXPECT_EQ(consumer.Status().generation, d.generation);  // no reconnect happened
  consumer.Stop();
  EXPECT_EQ(admin_->QueueDepth(config_.topology.orders_queue), 0u);
}

TEST_F(BusTest, RejectRequeuesAndTheDeliveryLimitDeadLettersWithXDeath) {
  config_.topology.delivery_limit = 2;
  ASSERT_NO_THROW(DeclareTopology(config_));
  Publisher publisher(config_);
  publisher.Start();
  auto event = OrderSamples(suffix_)[2];
  ASSERT_TRUE(publisher.Publish(OrderMessage(config_, event, false)).get().Ok());

  std::atomic<int> deliveries{0};
  Consumer* self = nullptr;
  Consumer consumer(config_, [&](Delivery d) {
    ++deliveries;
    self->Reject(d.generation, d.delivery_tag, /*requeue=*/true);  // a transient failure
  });
  self = &consumer;
  consumer.Start();
  // Delivered, requeued, delivered again, ... until the broker gives up on it.
  std::optional<GotMessage> dead;
  ASSERT_TRUE(WaitFor([&] {
    dead = admin_->Take(config_.topology.dead_letter_queue);
    return dead.has_value();
  }));
  consumer.Stop();
  EXPECT_EQ(deliveries.load(), 3);  // limit 2: the third return dead-letters it
  EXPECT_EQ(dead->body, codec::EncodeOrderEvent(event));
  EXPECT_EQ(dead->routing_key, "order.shipped");
  EXPECT_EQ(dead->properties.message_id, event.event_id);
  EXPECT_TRUE(dead->properties.headers.count("x-death")) << "broker dead-lettering adds x-death";
  EXPECT_FALSE(dead->properties.headers.count("x-payorch-error"));
  EXPECT_EQ(admin_->QueueDepth(config_.topology.orders_queue), 0u);
}

// --- Dead-lettering ----------------------------------------------------------

struct BadCase {
  std::string name;
  std::optional<std::string> content_type;
  std::string body;
  std::string error;  // expected x-payorch-error
};

std::vector<BadCase> BadCases() {
  domain::OrderEvent good = OrderSamples("bad")[2];
  auto without = [&](auto change) {
    domain::OrderEvent e = good;
    change(e);
    return e;
  };
  std::string no_kind;  // event_id and order_id only: fields 1 and 2
  no_kind += '\x0a';
  no_kind += static_cast<char>(5);
  no_kind += "evt-9";
  no_kind += '\x12';
  no_kind += static_cast<char>(7);
  no_kind += "order-9";
  return {
      {"text_plain", "text/plain", "hello", codec::error::kUnsupportedContentType},
      {"no_content_type", std::nullopt, codec::EncodeOrderEvent(good),
       codec::error::kUnsupportedContentType},
      {"json_latin1", "application/json; charset=iso-8859-1", codec::EncodeOrderEventJson(good),
       codec::error::kUnsupportedContentType},
      {"protobuf_garbage", "application/x-protobuf", std::string("\xff\xff\xff\xff\x0f", 5),
       codec::error::kMalformedBody},
      {"protobuf_empty", "application/x-protobuf", "", codec::error::kMalformedBody},
      {"json_broken", "application/json", "{\"eventId\": ", codec::error::kMalformedBody},
      {"json_typo", "application/json",
       "{\"eventId\":\"e\",\"orderId\":\"o\",\"shipped\":{\"ammount\":\"5\"}}",
       codec::error::kMalformedBody},
      {"missing_event_id", "application/x-protobuf",
       codec::EncodeOrderEvent(without([](auto& e) { e.event_id.clear(); })),
       codec::error::kMissingEventId},
      {"missing_order_id", "application/json",
       codec::EncodeOrderEventJson(without([](auto& e) { e.order_id.clear(); })),
       codec::error::kMissingOrderId},
      {"missing_kind", "application/x-protobuf", no_kind, codec::error::kMissingKind},
      // 100 KB: acked and decided before, its answer could never be published.
      {"huge_order_id", "application/x-protobuf",
       codec::EncodeOrderEvent(without([](auto& e) { e.order_id.assign(100 * 1024, 'o'); })),
       codec::error::kInvalidOrderId},
  };
}

TEST_F(BusTest, EveryKindOfBadMessageReachesTheDeadLetterQueueWithItsReason) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  Publisher publisher(config_);
  publisher.Start();
  auto cases = BadCases();
  std::map<std::string, const BadCase*> by_id;
  for (const auto& c : cases) {
    Message m;
    m.exchange = config_.topology.orders_exchange;
    m.routing_key = "order.bad." + c.name;
    m.body = c.body;
    m.properties.content_type = c.content_type;
    m.properties.message_id = "bad-" + c.name;
    m.properties.correlation_id = "corr-" + c.name;
    m.properties.type = std::string(codec::kOrderEventType);
    m.properties.delivery_mode = 1;  // transient: the dead letter is persistent anyway
    m.properties.headers["x-trace"] = FieldValue::String("trace-" + c.name);
    m.properties.headers["x-attempt"] = FieldValue::Int(3);
    m.mandatory = true;
    by_id[*m.properties.message_id] = &c;
    ASSERT_TRUE(publisher.Publish(std::move(m)).get().Ok()) << c.name;
  }
  // A good event after them: once it is here, every bad one has been handled.
  auto sentinel = OrderSamples("sentinel" + suffix_)[1];
  ASSERT_TRUE(publisher.Publish(OrderMessage(config_, sentinel, true)).get().Ok());

  Inbox inbox;
  Consumer consumer(config_, [&](Delivery d) { inbox.Add(std::move(d)); });
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] {
    return inbox.Size() == 1 && consumer.GetStats().dead_lettered == cases.size();
  })) << "dead-lettered "
      << consumer.GetStats().dead_lettered << " of " << cases.size();
  auto good = inbox.All();
  ASSERT_EQ(good.size(), 1u);
  EXPECT_EQ(good[0].message_id, sentinel.event_id);  // bad ones never reach the handler
  consumer.Ack(good[0].generation, good[0].delivery_tag);
  ASSERT_TRUE(WaitFor([&] { return consumer.GetStats().acked == 1; }));
  consumer.Stop();

  std::set<std::string> seen;
  while (auto dead = admin_->Take(config_.topology.dead_letter_queue)) {
    const Properties& p = dead->properties;
    ASSERT_TRUE(p.message_id.has_value());
    auto it = by_id.find(*p.message_id);
    ASSERT_NE(it, by_id.end()) << *p.message_id;
    const BadCase& c = *it->second;
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(seen.insert(c.name).second) << "dead-lettered twice";
    EXPECT_EQ(HeaderString(p.headers, "x-payorch-error"), c.error);
    auto detail = HeaderString(p.headers, "x-payorch-detail");
    ASSERT_TRUE(detail.has_value());
    EXPECT_FALSE(detail->empty());
    // The original routing key, body and properties, headers included.
    EXPECT_EQ(dead->routing_key, "order.bad." + c.name);
    EXPECT_EQ(HeaderString(p.headers, "x-payorch-original-routing-key"), "order.bad." + c.name);
    EXPECT_EQ(HeaderString(p.headers, "x-payorch-original-exchange"),
              config_.topology.orders_exchange);
    EXPECT_EQ(dead->body, c.body);
    EXPECT_EQ(p.content_type, c.content_type);
    EXPECT_EQ(p.correlation_id, "corr-" + c.name);
    EXPECT_EQ(p.type, std::string(codec::kOrderEventType));
    EXPECT_EQ(p.delivery_mode, 2);
    EXPECT_EQ(HeaderString(p.headers, "x-trace"), "trace-" + c.name);
    ASSERT_TRUE(p.headers.count("x-attempt"));
    EXPECT_EQ(p.headers.at("x-attempt").AsInt(), 3);
  }
  EXPECT_EQ(seen.size(), cases.size());

  // And the originals are gone from the orders queue: a new consumer sees only the
  // next sentinel, nothing is delivered (or dead-lettered) twice.
  Inbox again;
  Consumer second(config_, [&](Delivery d) { again.Add(std::move(d)); });
  second.Start();
  auto sentinel2 = OrderSamples("sentinel2" + suffix_)[1];
  ASSERT_TRUE(publisher.Publish(OrderMessage(config_, sentinel2, false)).get().Ok());
  ASSERT_TRUE(WaitFor([&] { return again.Size() == 1; }));
  EXPECT_EQ(again.All()[0].message_id, sentinel2.event_id);
  second.Ack(again.All()[0].generation, again.All()[0].delivery_tag);
  ASSERT_TRUE(WaitFor([&] { return second.GetStats().acked == 1; }));
  second.Stop();
  EXPECT_EQ(second.GetStats().dead_lettered, 0u);
  EXPECT_EQ(admin_->QueueDepth(config_.topology.dead_letter_queue), 0u);
  EXPECT_EQ(admin_->QueueDepth(config_.topology.orders_queue), 0u);
}

// A bad message whose own headers nearly fill an AMQP frame (many, or one of
// payorch's own prefix): the consumer's dead letter (its headers plus ours) must
// still go out at once, not fail the connection on every delivery until the
// broker's delivery limit takes it.
TEST_F(BusTest, ABadMessageWithHeadersFillingAFrameIsDeadLetteredAtOnce) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  Publisher publisher(config_);
  publisher.Start();
  std::vector<Message> bad(2);
  for (size_t n = 0; n < bad.size(); ++n) {
    Message& m = bad[n];
    m.exchange = config_.topology.orders_exchange;
    m.routing_key = "order.shipped";
    m.body = "not an order event";
    m.properties.content_type = "text/plain";
    m.properties.message_id = "fat-headers-" + std::to_string(n) + "-" + suffix_;
  }
  for (int i = 0; i < 65; ++i)
    bad[0].properties.headers["x-fat-" + std::to_string(i)] =
        FieldValue::String(std::string(2000, 'h'));
  // One header of payorch's prefix, 100 bytes short of what a frame holds: it is
  // published, and our own headers cannot join it.
  bad[1].properties.headers["x-payorch-pad"] = FieldValue::String("");
  bad[1].properties.headers["x-payorch-pad"].s.assign(
      kFrameMax - 30 - 100 - EncodedPropertiesBytes(bad[1].properties), 'p');
  for (const Message& m : bad) ASSERT_TRUE(publisher.Publish(m).get().Ok());

  Consumer consumer(config_, [&](Delivery) {});
  consumer.Start();
  std::vector<GotMessage> dead;
  ASSERT_TRUE(WaitFor([&] {
    if (auto d = admin_->Take(config_.topology.dead_letter_queue)) dead.push_back(std::move(*d));
    return dead.size() == bad.size();
  }));
  // The originals are acked once their copies are confirmed.
  EXPECT_TRUE(WaitFor([&] {
    return consumer.GetStats().dead_lettered == bad.size() &&
           admin_->QueueDepth(config_.topology.orders_queue) == 0;
  }));
  consumer.Stop();
  for (size_t n = 0; n < bad.size(); ++n) {
    const auto& h = dead[n].properties.headers;
    EXPECT_FALSE(h.count("x-death")) << "dead-lettered by the broker's delivery limit, not by us";
    EXPECT_EQ(HeaderString(h, "x-payorch-error"), codec::error::kUnsupportedContentType);
    EXPECT_EQ(dead[n].body, bad[n].body);
    EXPECT_EQ(dead[n].properties.message_id, bad[n].properties.message_id);
    EXPECT_FALSE(h.count("x-payorch-pad"));
    // What did not fit is said, not silently lost.
    ASSERT_TRUE(HeaderString(h, "x-payorch-headers-dropped").has_value());
    const std::string said = *HeaderString(h, "x-payorch-headers-dropped");
    EXPECT_NE(said.find(n == 0 ? "65 headers" : "1 headers"), std::string::npos) << said;
  }
}

// --- Publishing ------------------------------------------------------------

TEST_F(BusTest, ConfirmsThousandsOfPublishesInFlight) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  std::string sink = PaymentsQueue();
  Publisher publisher(config_);
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return publisher.Status().connected; }));

  constexpr int kCount = 5000;
  std::atomic<int> confirmed{0}, failed{0};
  std::atomic<uint64_t> max_in_flight{0};
  for (int i = 0; i < kCount; ++i) {
    Message m;
    m.exchange = config_.topology.payments_exchange;
    m.routing_key = "payment.captured";
    m.body = "event-" + std::to_string(i);
    m.properties.message_id = "m-" + std::to_string(i);
    m.properties.delivery_mode = 2;
    publisher.Publish(std::move(m), [&](PublishResult r) {
      auto s = publisher.GetStats();
      uint64_t in_flight = s.published - s.confirmed;
      uint64_t seen = max_in_flight.load();
      while (in_flight > seen && !max_in_flight.compare_exchange_weak(seen, in_flight)) {
      }
      (r.Ok() ? confirmed : failed)++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return confirmed + failed == kCount; }, 60s));
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(admin_->QueueDepth(sink), static_cast<uint32_t>(kCount));
  // Many in flight at once, not one round trip per publish.
  EXPECT_GT(max_in_flight.load(), 100u) << "max in flight " << max_in_flight.load();
  std::printf("max publishes in flight: %llu\n",
              static_cast<unsigned long long>(max_in_flight.load()));
}

TEST_F(BusTest, PublishesPaymentEventsPerTheContract) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  std::string sink = PaymentsQueue();
  Publisher publisher(config_);
  publisher.Start();
  domain::PaymentEvent e;
  e.event_id = "pe-" + suffix_;
  e.order_id = "order-" + suffix_;
  e.payment_id = "/psp/vipps/payments/5adc";
  e.sequence = 2;
  e.occurred_at = domain::FromMillis(1'717'171'717'000);
  e.caused_by_event_id = "evt-7";
  e.kind = domain::EventKind::kCaptured;
  e.amount = 1000;
  e.shipment_id = "ship-1";
  e.transaction_id = "/psp/vipps/payments/5adc/transactions/1";
  e.balance = {1500, 1000, 0, 0};
  std::promise<PublishResult> done;
  publisher.PublishPaymentEvent(e, [&](PublishResult r) { done.set_value(r); });
  ASSERT_TRUE(done.get_future().get().Ok());

  auto got = admin_->Take(sink);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->exchange, config_.topology.payments_exchange);
  EXPECT_EQ(got->routing_key, "payment.captured");
  EXPECT_EQ(got->properties.message_id, e.event_id);
  EXPECT_EQ(got->properties.correlation_id, e.order_id);
  EXPECT_EQ(got->properties.type, std::string(codec::kPaymentEventType));
  EXPECT_EQ(got->properties.content_type, std::string(codec::kContentTypeProtobuf));
  EXPECT_EQ(got->properties.delivery_mode, 2);
  auto decoded = codec::DecodePaymentEvent(got->body);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->event_id, e.event_id);
  EXPECT_EQ(decoded->sequence, 2u);
  EXPECT_EQ(decoded->amount, 1000);
  EXPECT_EQ(decoded->shipment_id, "ship-1");
}

// Issue 11, no poison pill: a message the broker could never take (a message_id
// past AMQP's 255 bytes, a body over bus.max_message_bytes) is refused before it is
// sent. The connection stays up (the same generation) and the next publish is
// confirmed: one bad event cannot flap the link for every other order.
TEST_F(BusTest, AnUnpublishableMessageIsRefusedWithoutTouchingTheConnection) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  std::string sink = PaymentsQueue();
  BusConfig config = config_;
  config.max_message_bytes = 1000;
  Publisher publisher(config);
  publisher.Start();
  ASSERT_TRUE(kit::WaitFor([&] { return publisher.Status().connected; }, 10s));
  const uint64_t generation = publisher.Status().generation;

  auto publish = [&](Message m) { return publisher.Publish(std::move(m)).get(); };
  Message base;
  base.exchange = config_.topology.payments_exchange;
  base.routing_key = "payment.captured";
  base.body = "ok";
  Message long_id = base;
  long_id.properties.message_id = std::string(100 * 1024, 'x');
  PublishResult r = publish(long_id);
  EXPECT_EQ(r.status, PublishStatus::kRefused) << r.detail;
  EXPECT_NE(r.detail.find("message_id of 102400 bytes"), std::string::npos) << r.detail;
  Message big = base;
  big.body = std::string(1001, 'b');
  r = publish(big);
  EXPECT_EQ(r.status, PublishStatus::kRefused);
  EXPECT_NE(r.detail.find("1001 bytes"), std::string::npos) << r.detail;
  Message deep = base;
  FieldValue v = FieldValue::String("bottom");
  for (int i = 0; i < 100; ++i) {
    FieldValue outer;
    outer.kind = 'F';
    outer.table["x"] = std::move(v);
    v = std::move(outer);
  }
  deep.properties.headers["deep"] = std::move(v);
  EXPECT_EQ(publish(deep).status, PublishStatus::kRefused);

  EXPECT_TRUE(publish(base).Ok());
  EXPECT_EQ(publisher.Status().generation, generation);
  EXPECT_TRUE(publisher.Status().connected);
  auto got = admin_->Take(sink);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->body, "ok");
  EXPECT_FALSE(admin_->Take(sink).has_value());  // none of the refused ones
}

TEST(UnpublishableTest, NamesWhatAmqpCannotCarry) {
  Message m;
  m.routing_key = "payment.x";
  EXPECT_FALSE(Unpublishable(m, 10));
  m.properties.correlation_id = std::string(255, 'c');
  EXPECT_FALSE(Unpublishable(m, 10));
  m.properties.correlation_id = std::string(256, 'c');
  EXPECT_EQ(Unpublishable(m, 10).value_or(""), "a correlation_id of 256 bytes (AMQP: at most 255)");
  m.properties.correlation_id.reset();
  m.properties.headers[std::string(129, 'h')] = FieldValue::Int(1);
  EXPECT_EQ(Unpublishable(m, 10).value_or(""), "a header name of 129 bytes (AMQP: at most 128)");
  m.properties.headers.clear();
  m.properties.headers["big"] = FieldValue::String(std::string(kFrameMax - 100, 'b'));
  EXPECT_FALSE(Unpublishable(m, 10)) << "fits a frame";
  m.properties.headers["big"] = FieldValue::String(std::string(kFrameMax, 'b'));
  EXPECT_NE(Unpublishable(m, 10).value_or("").find("an AMQP frame holds 131072"),
            std::string::npos);
  m.properties.headers.clear();
  m.routing_key = std::string(256, 'r');
  EXPECT_TRUE(Unpublishable(m, 10));
}

TEST_F(BusTest, ALostConnectionFailsEveryPendingPublishAndThePublisherReconnects) {
  ASSERT_NO_THROW(DeclareTopology(config_));
  std::string sink = PaymentsQueue();
  Publisher publisher(config_);
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return publisher.Status().connected; }));
  uint64_t generation = publisher.Status().generation;

  // Publishing to an exchange that does not exist makes the broker close the
  // channel (404): the connection is dropped, and everything in flight with it.
  std::vector<std::future<PublishResult>> results;
  for (int i = 0; i < 200; ++i) {
    Message m;
    m.exchange = i == 100 ? "no.such.exchange." + suffix_ : config_.topology.payments_exchange;
    m.routing_key = "payment.authorized";
    m.body = std::to_string(i);
    results.push_back(publisher.Publish(std::move(m)));
  }
  int confirmed = 0, lost = 0, other = 0;
  for (auto& f : results) {
    auto r = f.get();
    if (r.Ok())
      ++confirmed;
    else if (r.status == PublishStatus::kConnectionLost || r.status == PublishStatus::kNotConnected)
      ++lost;
    else
      ++other;
  }
  EXPECT_GE(lost, 1);  // at least the bad one
  EXPECT_EQ(other, 0);
  EXPECT_EQ(confirmed + lost, 200);
  EXPECT_LE(confirmed, 100);  // nothing after the bad publish made it on that channel
  ASSERT_TRUE(WaitFor([&] {
    LinkStatus s = publisher.Status();
    return s.connected && s.generation > generation;
  }));
  EXPECT_NE(publisher.Status().last_error.find("404"), std::string::npos)
      << publisher.Status().last_error;

  Message m;
  m.exchange = config_.topology.payments_exchange;
  m.routing_key = "payment.authorized";
  m.body = "after";
  EXPECT_TRUE(publisher.Publish(std::move(m)).get().Ok());
  // A lost confirm is not a lost message: some may have arrived unconfirmed.
  auto depth = admin_->QueueDepth(sink).value_or(0);
  EXPECT_GE(depth, static_cast<uint32_t>(confirmed + 1));
  EXPECT_LE(depth, 101u);
}

TEST_F(BusTest, UnreachableBrokerIsReportedAndPublishesFailFast) {
  BusConfig dead = config_;
  dead.url = "amqp://guest:guest@127.0.0.1:1/";  // nothing listens on port 1
  Publisher publisher(dead);
  publisher.Start();
  ASSERT_TRUE(WaitFor([&] { return !publisher.Status().last_error.empty(); }));
  EXPECT_FALSE(publisher.Status().connected);
  auto r = publisher.Publish(Message{}).get();
  EXPECT_EQ(r.status, PublishStatus::kNotConnected);
  publisher.Stop();
  EXPECT_EQ(publisher.Publish(Message{}).get().status, PublishStatus::kStopped);
}

// A routing key or a broker's words in a bus log line: one quoted value that can
// neither end the line nor open a field of its own; masked and bounded.
TEST(BusLogTest, QuotedValuesCannotForgeALineOrAField) {
  const std::string q =
      detail::Quoted("order.a\n\x1b[2J\" forged=\"1\" \\ +4798765432 " + std::string(5000, 'k'));
  ASSERT_GE(q.size(), 2u);
  EXPECT_EQ(q.front(), '"');
  EXPECT_EQ(q.back(), '"');
  for (char ch : q) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << q;
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] == '"') {
      EXPECT_EQ(q[i - 1], '\\') << "an unescaped quote at " << i << ": " << q;
    }
  }
  EXPECT_EQ(q.find("98765432"), std::string::npos) << q;
  EXPECT_LT(q.size(), 400u);
  EXPECT_EQ(detail::Quoted("order.shipped"), "\"order.shipped\"");
}

TEST(BackoffTest, DoublesUpToTheCapWithJitterAndResets) {
  detail::Backoff backoff(100ms, 1000ms);
  for (int round = 0; round < 2; ++round) {
    std::chrono::milliseconds nominal = 100ms;
    for (int i = 0; i < 8; ++i) {
      auto d = backoff.Next();
      EXPECT_GE(d, nominal / 2) << "attempt " << i;
      EXPECT_LE(d, nominal) << "attempt " << i;
      nominal = std::min(nominal * 2, std::chrono::milliseconds(1000));
    }
    backoff.Reset();  // after a connection that came up, start small again
  }
}

TEST(BusUrlTest, ParsesAndNeverShowsThePassword) {
  auto parts = detail::ParseUrl("amqp://app:s3cret@10.0.0.5:5673/orders");
  EXPECT_EQ(parts.host, "10.0.0.5");
  EXPECT_EQ(parts.port, 5673);
  EXPECT_EQ(parts.user, "app");
  EXPECT_EQ(parts.vhost, "orders");
  EXPECT_EQ(detail::ParseUrl("amqp://guest:guest@127.0.0.1:21672/").vhost, "/");
  EXPECT_EQ(detail::RedactUrl("amqp://app:s3cret@host/"), "amqp://app:***@host/");
  const auto tls = detail::ParseUrl("amqps://app:s3cret@broker.example/");
  EXPECT_TRUE(tls.tls);
  EXPECT_EQ(tls.port, 5671);  // AMQPS's port
  EXPECT_FALSE(parts.tls);
  try {
    detail::ParseUrl("amqp://app:s3cret@host:port/");
    FAIL() << "a port that is not a number";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
}

TEST(BusConfigTest, ValidatesAtStartUp) {
  BusConfig c;
  EXPECT_EQ(c.Validate(), std::nullopt);
  c.url = "http://example.com/";
  EXPECT_NE(c.Validate(), std::nullopt);
  c = BusConfig{};
  c.prefetch = 0;
  EXPECT_NE(c.Validate(), std::nullopt);
  c = BusConfig{};
  c.topology.dead_letter_queue = c.topology.orders_queue;
  EXPECT_NE(c.Validate(), std::nullopt);
  EXPECT_THROW(Consumer(c, [](Delivery) {}), std::invalid_argument);
}

}  // namespace
}  // namespace payorch::bus::testing
