// payorchctl dlq against the real broker: peeking keeps order and count; list,
// show and purge with their filters; replay moves messages back with the right
// routing key and headers and acks the dead letters only after the confirm; an
// unknown id replays nothing; two replays at once replay each message once; a dry
// run changes nothing and says what replaying would do; every replay is recorded.
#include <gmock/gmock.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <set>
#include <thread>

#include "bus/consumer.hpp"
#include "ctl/dead_letters.hpp"
#include "ctl_test_util.hpp"

namespace payorch::ctl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace json = boost::json;

std::vector<domain::OrderEvent> Events(const std::string& tag, int n) {
  std::vector<domain::OrderEvent> out;
  for (int i = 0; i < n; ++i)
    out.push_back(Shipped("order-" + tag, "evt-" + tag + "-" + std::to_string(i), 100 + i));
  return out;
}

std::vector<std::string> Ids(const std::vector<bus::GotMessage>& messages) {
  std::vector<std::string> ids;
  for (const auto& m : messages) ids.push_back(MessageId(m));
  return ids;
}


using DlqTest = CtlBusTest;

TEST_F(DlqTest, PeekKeepsTheOrderAndTheCount) {
  auto events = Events(suffix_, 20);
  for (const auto& e : events) DeadEvent(e);
  ASSERT_EQ(admin_->QueueDepth(DeadQueue()), 20u);

  auto first = admin_->Peek(DeadQueue(), 100);
  auto second = admin_->Peek(DeadQueue(), 100);
  auto some = admin_->Peek(DeadQueue(), 5);
  std::vector<std::string> expected;
  for (const auto& e : events) expected.push_back(e.event_id);
  EXPECT_EQ(Ids(first), expected);
  EXPECT_EQ(Ids(second), expected);
  EXPECT_EQ(Ids(some), std::vector<std::string>(expected.begin(), expected.begin() + 5));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 20u);
  // A listing (a peek of its own) changes nothing either; then taking them for
  // good still yields the original order.
  ASSERT_EQ(Ctl({"dlq", "list"}).code, 0);
  EXPECT_EQ(Ids(Drain(DeadQueue())), expected);
}

TEST_F(DlqTest, HeldMessagesAreInvisibleToOthersAndComeBackWhenTheChannelCloses) {
  for (const auto& e : Events(suffix_, 3)) DeadEvent(e);
  bus::Admin other(config_, "payorch test other");
  {
    auto hold = admin_->OpenHold();
    auto m = hold.Get(DeadQueue());
    ASSERT_TRUE(m);
    EXPECT_EQ(hold.Held(), 1u);
    // The other reader sees only the two not held.
    auto seen = other.Peek(DeadQueue(), 10);
    EXPECT_EQ(seen.size(), 2u);
  }  // closed: back in place
  EXPECT_EQ(other.Peek(DeadQueue(), 10).size(), 3u);
  EXPECT_EQ(Ids(other.Peek(DeadQueue(), 1)), std::vector<std::string>{"evt-" + suffix_ + "-0"});
}

TEST_F(DlqTest, ListShowsTheColumnsAndFilters) {
  const auto now =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  auto events = Events(suffix_, 3);
  DeadEvent(events[0], "malformed_body");
  DeadLetter("{\"eventId\": 12", "application/json", "", "order.purchase_requested",
             "malformed_body", now - 3h);
  DeadLetter("<xml/>", "text/xml", "m-xml-" + suffix_, "order.shipped", "unsupported_content_type");
  BrokerDeadLetter(events[1]);

  Result all = Ctl({"dlq", "list"});
  ASSERT_EQ(all.code, 0) << all.err;
  for (const char* column : {"ID", "REASON", "ROUTING KEY", "ORDER", "EVENT", "AGE", "SIZE"})
    EXPECT_THAT(all.out, HasSubstr(column));
  EXPECT_THAT(all.out, HasSubstr(events[0].event_id));
  EXPECT_THAT(all.out, HasSubstr("unsupported_content_type"));
  EXPECT_THAT(all.out, HasSubstr("rejected"));  // x-death reason of the broker's dead letter
  EXPECT_THAT(all.out, HasSubstr("order-" + suffix_));
  EXPECT_THAT(all.out, HasSubstr("4 messages in " + DeadQueue()));

  Result json_all = Ctl({"dlq", "list", "-o", "json"});
  ASSERT_EQ(json_all.code, 0);
  json::value v = Json(json_all);
  const auto& messages = v.at("messages").as_array();
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(v.at("depth").as_int64(), 4);
  EXPECT_EQ(messages[0].at("id").as_string(), events[0].event_id);
  EXPECT_EQ(messages[0].at("routing_key").as_string(), "order.shipped");
  EXPECT_EQ(messages[0].at("order_id").as_string(), "order-" + suffix_);
  EXPECT_EQ(std::string(messages[1].at("id").as_string()).substr(0, 2),
            "h-");  // no message_id: a hash
  EXPECT_EQ(messages[1].at("routing_key").as_string(), "order.purchase_requested");
  EXPECT_GE(messages[1].at("age_seconds").as_int64(), 3 * 3600 - 60);
  EXPECT_EQ(messages[3].at("reason").as_string(), "rejected");
  EXPECT_EQ(messages[3].at("routing_key").as_string(), "order.shipped");
  EXPECT_EQ(messages[3].at("event_id").as_string(), events[1].event_id);

  auto count = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"dlq", "list", "-o", "json"});
    Result r = Ctl(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return Json(r).at("messages").as_array().size();
  };
  EXPECT_EQ(count({"--error", "malformed_body"}), 2u);
  EXPECT_EQ(count({"--reason", "rejected"}), 1u);
  EXPECT_EQ(count({"--routing-key", "order.shipped"}), 3u);
  EXPECT_EQ(count({"--order", "order-" + suffix_}), 2u);
  EXPECT_EQ(count({"--since", "1h"}), 3u);
  EXPECT_EQ(count({"--since", "1h", "--error", "malformed_body"}), 1u);
  EXPECT_EQ(count({"--limit", "2"}), 2u);
  // Listing is non-destructive.
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 4u);
}

TEST_F(DlqTest, ShowDecodesTheBodyAndMasksTheMsisdn) {
  domain::OrderEvent purchase = Purchase("order-" + suffix_, "evt-show-" + suffix_, 1500);
  DeadEvent(purchase, "malformed_body");
  DeadLetter("{\"orderId\": \"o\", \"msisdn\": \"+4791234567\"", "application/json",
             "bad-json-" + suffix_, "order.payer_msisdn_provided", "malformed_body");

  Result r = Ctl({"dlq", "show", purchase.event_id});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("reason:         malformed_body"));
  EXPECT_THAT(r.out, HasSubstr("routing key 'order.purchase_requested'"));
  EXPECT_THAT(r.out, HasSubstr("x-payorch-error: malformed_body"));
  EXPECT_THAT(r.out, HasSubstr("\"purchaseRequested\""));
  EXPECT_THAT(r.out, HasSubstr("+47****5432"));
  EXPECT_THAT(r.out, Not(HasSubstr("98765432")));

  Result raw = Ctl({"dlq", "show", "bad-json-" + suffix_, "-o", "json"});
  ASSERT_EQ(raw.code, 0) << raw.err;
  json::value v = Json(raw);
  EXPECT_TRUE(v.at("body").is_null());
  EXPECT_EQ(v.at("body_error").at("code").as_string(), "malformed_body");
  EXPECT_EQ(v.at("headers").at("x-custom").as_string(), "kept");
  EXPECT_THAT(std::string(v.at("body_raw").as_string()), HasSubstr("+47****4567"));
  EXPECT_THAT(raw.out, Not(HasSubstr("91234567")));

  Result missing = Ctl({"dlq", "show", "no-such-id"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no message with ID no-such-id"));
  EXPECT_THAT(missing.err, HasSubstr("payorchctl dlq list"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 2u);
}

// What a publisher wrote (id, routing key, headers) reaches the operator's terminal
// without escape codes or forged lines; plain names stay as they are.
TEST_F(DlqTest, ListAndShowPrintNoEscapeCodesFromThePublisher) {
  // No random suffix in the id: eight digits in a row of it would be masked as a
  // phone number in what is shown (this test failed so, one run in about 17).
  const std::string id = "evil\x1b[2J-id-abc";
  const std::string key = "order.\x1b]0;owned\x07\nforged: yes";
  DeadLetter("x", "text/plain", id, key, "unsupported_content_type");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"dlq", "list"}, std::vector<std::string>{"dlq", "show", id}}) {
    Result r = Ctl(args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
    EXPECT_THAT(r.out, Not(HasSubstr("\nforged"))) << r.out;
    EXPECT_THAT(r.out, HasSubstr("order. ]0;owned  forged: yes")) << r.out;
    EXPECT_THAT(r.out, HasSubstr("evil [2J-id-abc")) << r.out;
  }
  // The replay itself keeps the raw names: JSON shows them exactly.
  Result json_out = Ctl({"dlq", "show", id, "-o", "json"});
  ASSERT_EQ(json_out.code, 0) << json_out.err;
  EXPECT_EQ(Json(json_out).at("routing_key").as_string(), key);
}

TEST_F(DlqTest, PurgeAsksAndFilters) {
  auto events = Events(suffix_, 4);
  DeadEvent(events[0], "malformed_body");
  DeadEvent(events[1], "malformed_body");
  DeadEvent(events[2], "missing_kind");
  DeadEvent(events[3], "missing_kind");

  // No terminal and no --yes: refused, as a process too.
  Result refused = Process({"dlq", "purge", "--all"});
  EXPECT_EQ(refused.code, 2) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("--yes"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 4u);
  // Nothing selected is a usage error.
  EXPECT_EQ(Ctl({"dlq", "purge", "--yes"}).code, 2);
  // A terminal, and the operator says no.
  Result no = Ctl({"dlq", "purge", "--error", "missing_kind"}, {.input = "n\n", .stdin_tty = true});
  EXPECT_EQ(no.code, 1);
  EXPECT_THAT(no.err, HasSubstr("Delete 2 messages"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 4u);
  // ... and yes.
  Result yes =
      Ctl({"dlq", "purge", "--error", "missing_kind"}, {.input = "yes\n", .stdin_tty = true});
  EXPECT_EQ(yes.code, 0) << yes.err;
  EXPECT_THAT(yes.out, HasSubstr("purged 2 messages"));
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)),
            (std::vector<std::string>{events[0].event_id, events[1].event_id}));
  // By id; an unknown id purges nothing.
  Result unknown = Ctl({"dlq", "purge", events[0].event_id, "nope", "--yes"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("nope"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 2u);
  Result one = Ctl({"dlq", "purge", events[0].event_id, "--yes", "-o", "json"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(Json(one).at("purged").as_int64(), 1);
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)), std::vector<std::string>{events[1].event_id});
  Result all = Process({"dlq", "purge", "--all", "--yes"});
  EXPECT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
}

TEST_F(DlqTest, ReplayMovesMessagesBackWithTheirRoutingKeyAndHeaders) {
  auto events = Events(suffix_, 2);
  domain::OrderEvent purchase = Purchase("order-p-" + suffix_, "evt-p-" + suffix_, 900);
  DeadEvent(events[0], "malformed_body");
  DeadEvent(purchase, "malformed_body");
  BrokerDeadLetter(events[1]);  // x-death: original exchange and key from the broker
  ASSERT_EQ(admin_->QueueDepth(DeadQueue()), 3u);
  ASSERT_EQ(admin_->QueueDepth(OrdersQueue()), 0u);

  Result r = Process(
      {"dlq", "replay", "--all", "--reason", "parser fixed in 1.2", "--yes", "--who", "alice"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("3 messages replayed"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);

  auto replayed = Drain(OrdersQueue());
  ASSERT_EQ(replayed.size(), 3u);
  std::map<std::string, bus::GotMessage> by_id;
  for (auto& m : replayed) by_id[m.properties.message_id.value_or("")] = m;
  ASSERT_EQ(by_id.size(), 3u);
  const auto& purchase_copy = by_id.at(purchase.event_id);
  EXPECT_EQ(purchase_copy.routing_key, "order.purchase_requested");
  EXPECT_EQ(purchase_copy.exchange, config_.topology.orders_exchange);
  EXPECT_EQ(purchase_copy.body, codec::EncodeOrderEvent(purchase));
  EXPECT_EQ(purchase_copy.properties.content_type, "application/x-protobuf");
  EXPECT_EQ(purchase_copy.properties.type, "payorch.v1.OrderEvent");
  EXPECT_EQ(by_id.at(events[1].event_id).routing_key, "order.shipped");
  for (const auto& [id, m] : by_id) {
    SCOPED_TRACE(id);
    const auto& h = m.properties.headers;
    for (const char* dropped :
         {"x-payorch-error", "x-payorch-detail", "x-death", "x-payorch-original-exchange",
          "x-payorch-original-routing-key", "x-payorch-dead-lettered-at", "x-first-death-reason"})
      EXPECT_EQ(h.count(dropped), 0u) << dropped;
    EXPECT_EQ(bus::HeaderString(h, "x-payorch-replayed-by"), "alice");
    EXPECT_TRUE(bus::HeaderString(h, "x-payorch-replay-id").has_value());
  }
  EXPECT_EQ(bus::HeaderString(by_id.at(events[0].event_id).properties.headers, "x-custom"), "kept");

  // The record.
  Result list = Ctl({"dlq", "replays", "-o", "json"});
  ASSERT_EQ(list.code, 0) << list.err;
  const json::value list_json = Json(list);
  const auto& replays = list_json.at("replays").as_array();
  ASSERT_EQ(replays.size(), 1u);
  const auto& rec = replays[0];
  EXPECT_EQ(rec.at("who").as_string(), "alice");
  EXPECT_EQ(rec.at("reason").as_string(), "parser fixed in 1.2");
  EXPECT_EQ(rec.at("filter").as_string(), "all");
  EXPECT_EQ(rec.at("messages").as_int64(), 3);
  EXPECT_EQ(rec.at("outcome").as_string(), "completed");
  EXPECT_FALSE(rec.at("finished_at").is_null());
  const std::string replay_id = std::to_string(rec.at("id").as_int64());
  EXPECT_EQ(bus::HeaderString(purchase_copy.properties.headers, "x-payorch-replay-id"), replay_id);

  Result one = Ctl({"dlq", "replays", replay_id});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_THAT(one.out, HasSubstr(purchase.event_id));
  EXPECT_THAT(one.out, HasSubstr("order.purchase_requested"));
  EXPECT_THAT(Ctl({"dlq", "replays"}).out, HasSubstr("parser fixed in 1.2"));
}

TEST_F(DlqTest, ReplayOfAnUnknownIdReplaysNothing) {
  auto events = Events(suffix_, 2);
  for (const auto& e : events) DeadEvent(e);
  Result r =
      Process({"dlq", "replay", events[0].event_id, "evt-unknown", "--reason", "x", "--yes"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("evt-unknown"));
  EXPECT_THAT(r.err, HasSubstr("nothing was replayed"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 2u);
  EXPECT_EQ(admin_->QueueDepth(OrdersQueue()), 0u);
  EXPECT_TRUE(fixture_->OpenStore().Replays(10).empty());

  // By id, only that one moves; the rest stay in order.
  Result one = Ctl({"dlq", "replay", events[1].event_id, "--reason", "x", "--yes"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(Ids(Drain(OrdersQueue())), std::vector<std::string>{events[1].event_id});
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)), std::vector<std::string>{events[0].event_id});
}

TEST_F(DlqTest, ReplayByFilterLeavesTheRestInPlace) {
  auto events = Events(suffix_, 4);
  DeadEvent(events[0], "malformed_body");
  DeadEvent(events[1], "missing_kind");
  DeadEvent(events[2], "malformed_body");
  DeadEvent(events[3], "missing_kind");
  Result r =
      Ctl({"dlq", "replay", "--error", "missing_kind", "--reason", "x", "--yes", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json::value v = Json(r);
  EXPECT_EQ(v.at("replayed").as_int64(), 2);
  EXPECT_EQ(v.at("remaining").as_int64(), 2);
  EXPECT_EQ(v.at("filter").as_string(), "error=missing_kind");
  EXPECT_EQ(Ids(Drain(OrdersQueue())),
            (std::vector<std::string>{events[1].event_id, events[3].event_id}));
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)),
            (std::vector<std::string>{events[0].event_id, events[2].event_id}));
}

TEST_F(DlqTest, TwoReplaysAtOnceReplayEachMessageOnce) {
  constexpr int kMessages = 200;
  auto events = Events(suffix_, kMessages);
  {
    auto hold = admin_->OpenHold();
    for (const auto& e : events) {
      bus::Message m;
      m.exchange = config_.topology.dead_letter_exchange;
      m.routing_key = "order.shipped";
      m.body = codec::EncodeOrderEvent(e);
      m.properties.content_type = "application/x-protobuf";
      m.properties.message_id = e.event_id;
      m.properties.headers["x-payorch-error"] = bus::FieldValue::String("malformed_body");
      m.properties.headers["x-payorch-original-exchange"] =
          bus::FieldValue::String(config_.topology.orders_exchange);
      m.properties.headers["x-payorch-original-routing-key"] =
          bus::FieldValue::String("order.shipped");
      ASSERT_TRUE(hold.Publish(m).Ok());
    }
  }
  ASSERT_EQ(admin_->QueueDepth(DeadQueue()), static_cast<uint32_t>(kMessages));

  // Two operators' processes at once, on the same queue.
  Result results[2];
  std::thread a([&] {
    results[0] = Process({"dlq", "replay", "--all", "--reason", "a", "--yes", "--who", "ann"});
  });
  std::thread b([&] {
    results[1] = Process({"dlq", "replay", "--all", "--reason", "b", "--yes", "--who", "bob"});
  });
  a.join();
  b.join();
  EXPECT_EQ(results[0].code, 0) << results[0].err;
  EXPECT_EQ(results[1].code, 0) << results[1].err;

  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
  auto replayed = Drain(OrdersQueue());
  std::map<std::string, int> times;
  for (const auto& m : replayed) ++times[m.properties.message_id.value_or("")];
  EXPECT_EQ(replayed.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(times.size(), static_cast<size_t>(kMessages));
  for (const auto& [id, n] : times) EXPECT_EQ(n, 1) << id;

  // Both recorded; together they replayed each message once.
  auto store = fixture_->OpenStore();
  auto replays = store.Replays(10);
  ASSERT_EQ(replays.size(), 2u);
  std::multiset<std::string> recorded;
  for (const auto& r : replays) {
    EXPECT_EQ(r.outcome, "completed");
    for (const auto& m : store.ReplayMessages(r.id)) recorded.insert(m.event_id);
  }
  EXPECT_EQ(recorded.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(std::set<std::string>(recorded.begin(), recorded.end()).size(),
            static_cast<size_t>(kMessages));
}

TEST_F(DlqTest, AReplayerKilledMidwayLosesNothing) {
  constexpr int kMessages = 40;
  auto events = Events(suffix_, kMessages);
  for (const auto& e : events) DeadEvent(e);
  // Slow enough to be killed in the middle, between confirms and acks.
  pid_t pid = Spawn({"--config", fixture_->config_path(), "dlq", "replay", "--all", "--reason",
                     "killed", "--yes", "--rate", "20/s"});
  ASSERT_TRUE(
      bus::testing::WaitFor([&] { return admin_->QueueDepth(OrdersQueue()).value_or(0) >= 5; }));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  // What it held went back; nothing is lost. A message may be in both queues (its
  // copy confirmed, its ack never sent): replaying it again is harmless, since
  // payorchd's inbox ignores an event_id it has processed.
  std::set<std::string> all;
  for (const auto& e : events) all.insert(e.event_id);
  ASSERT_TRUE(bus::testing::WaitFor([&] {
    return admin_->QueueDepth(DeadQueue()).value_or(0) +
               admin_->QueueDepth(OrdersQueue()).value_or(0) >=
           static_cast<uint32_t>(kMessages);
  }));
  auto dead = Ids(admin_->Peek(DeadQueue(), 1000));
  auto sent = Ids(Drain(OrdersQueue()));
  std::set<std::string> seen(dead.begin(), dead.end());
  seen.insert(sent.begin(), sent.end());
  EXPECT_EQ(seen, all);
  EXPECT_EQ(std::set<std::string>(sent.begin(), sent.end()).size(), sent.size());
  EXPECT_FALSE(dead.empty());

  // The record shows a replay that never finished.
  auto replays = fixture_->OpenStore().Replays(10);
  ASSERT_EQ(replays.size(), 1u);
  EXPECT_EQ(replays[0].outcome, "running");
  EXPECT_FALSE(replays[0].finished_at);

  // A second replay finishes the job.
  Result again = Ctl({"dlq", "replay", "--all", "--reason", "again", "--yes"});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
  auto second = Ids(Drain(OrdersQueue()));
  EXPECT_EQ(std::set<std::string>(second.begin(), second.end()),
            std::set<std::string>(dead.begin(), dead.end()));
}

TEST_F(DlqTest, AMessageDeadLetteredAgainDuringItsReplayIsNotReplayedTwice) {
  // payorchd's consumer: acks what decodes, dead-letters the rest again (keeping
  // the replay's headers).
  std::atomic<bus::Consumer*> consumer_ptr{nullptr};
  bus::Consumer consumer(config_, [&](bus::Delivery d) {
    if (auto* c = consumer_ptr.load()) c->Ack(d.generation, d.delivery_tag);
  });
  consumer_ptr = &consumer;
  consumer.Start();
  ASSERT_TRUE(bus::testing::WaitFor([&] { return consumer.Status().connected; }));

  DeadLetter("still not protobuf", "application/x-protobuf", "poison-" + suffix_, "order.shipped",
             "malformed_body");
  auto events = Events(suffix_, 10);
  for (const auto& e : events) DeadEvent(e);
  Result r =
      Ctl({"dlq", "replay", "--all", "--reason", "x", "--yes", "--rate", "20/s", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json::value v = Json(r);
  EXPECT_EQ(v.at("replayed").as_int64(), 11);  // the poison once, not in a loop
  ASSERT_TRUE(bus::testing::WaitFor([&] { return admin_->QueueDepth(DeadQueue()) == 1u; }));
  auto back = admin_->Peek(DeadQueue(), 10);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(MessageId(back[0]), "poison-" + suffix_);
  EXPECT_EQ(bus::HeaderString(back[0].properties.headers, "x-payorch-replay-id"),
            std::to_string(v.at("replay_id").as_int64()));
  EXPECT_EQ(bus::HeaderString(back[0].properties.headers, "x-payorch-error"), "malformed_body");
  consumer.Stop();

  // dlq show says it came back from that replay.
  Result show = Ctl({"dlq", "show", "poison-" + suffix_});
  EXPECT_THAT(show.out, HasSubstr("replayed:       by replay " +
                                  std::to_string(v.at("replay_id").as_int64())));
}

TEST_F(DlqTest, ReplayStopsWhenNothingTakesTheMessageAndKeepsIt) {
  domain::OrderEvent e = Shipped("order-" + suffix_, "evt-unroutable-" + suffix_, 100);
  // An original routing key the orders queue's binding (order.#) does not match.
  DeadLetter(codec::EncodeOrderEvent(e), "application/x-protobuf", e.event_id, "legacy.shipped",
             "malformed_body");
  Result r = Ctl({"dlq", "replay", "--all", "--reason", "x", "--yes"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("legacy.shipped"));
  EXPECT_THAT(r.err, HasSubstr("stays in the dead-letter queue"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 1u);
  auto replays = fixture_->OpenStore().Replays(10);
  ASSERT_EQ(replays.size(), 1u);
  EXPECT_EQ(replays[0].outcome, "failed");
  EXPECT_EQ(replays[0].message_count, 0);
}

TEST_F(DlqTest, ReplayShowsProgressAndHonoursTheRate) {
  for (const auto& e : Events(suffix_, 12)) DeadEvent(e);
  Result tty = Ctl(
      {"dlq", "replay", "--error", "malformed_body", "--reason", "x", "--yes", "--rate", "1000/s"},
      {.stderr_tty = true});
  ASSERT_EQ(tty.code, 0) << tty.err;
  EXPECT_THAT(tty.err, HasSubstr("\rreplay ["));
  EXPECT_THAT(tty.err, HasSubstr("12 replayed"));

  for (const auto& e : Events(suffix_ + "b", 5)) DeadEvent(e);
  Result plain = Ctl({"dlq", "replay", "--all", "--reason", "x", "--yes", "--rate", "50"},
                     {.progress_interval = 0ms});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_THAT(plain.err, Not(HasSubstr("\r")));
  EXPECT_THAT(plain.err, HasSubstr("replay: "));
  EXPECT_THAT(plain.err, HasSubstr(" replayed, "));
  EXPECT_EQ(admin_->QueueDepth(OrdersQueue()), 17u);
  EXPECT_EQ(Ctl({"dlq", "replay", "--all", "--reason", "x", "--rate", "fast", "--yes"}).code, 2);
}

TEST_F(DlqTest, DryRunChangesNothingAndSaysWhatReplayingWouldDo) {
  const std::string order = "order-dry-" + suffix_;
  domain::OrderEvent processed = Purchase(order, "evt-processed-" + suffix_, 1000);
  domain::OrderEvent valid = Shipped(order, "evt-valid-" + suffix_, 400);
  domain::OrderEvent too_much = Shipped(order, "evt-too-much-" + suffix_, 5000);
  domain::OrderEvent unknown = Shipped("order-none-" + suffix_, "evt-unknown-" + suffix_, 100);
  domain::OrderEvent fresh = Purchase("order-new-" + suffix_, "evt-fresh-" + suffix_, 700);
  {
    auto store = fixture_->OpenStore();
    DecideAndCommit(store, processed, kNow);  // the purchase was processed: in the inbox
  }
  DeadEvent(processed);
  DeadEvent(valid);
  DeadEvent(too_much);
  DeadEvent(unknown);
  DeadEvent(fresh);
  DeadLetter("\x08\x96\x01garbage", "application/x-protobuf", "broken-" + suffix_, "order.shipped",
             "malformed_body");

  auto snapshot = [&] {
    std::vector<std::string> s;
    for (const auto& m : admin_->Peek(DeadQueue(), 100)) {
      std::string line = MessageId(m) + "|" + m.routing_key + "|" + m.body;
      for (const auto& [k, v] : m.properties.headers) line += "|" + k + "=" + v.ToText();
      s.push_back(line);
    }
    return s;
  };
  const auto queue_before = snapshot();
  const std::string store_before = ReadFile(fixture_->store_path());
  store::Counts counts_before = fixture_->OpenStore().RowCounts(kNow);

  Result r = Ctl({"dlq", "replay", "--all", "--dry-run", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, std::pair<std::string, std::string>> verdicts;
  const json::value dry = Json(r);
  for (const auto& m : dry.at("messages").as_array())
    verdicts[std::string(m.at("id").as_string())] = {std::string(m.at("verdict").as_string()),
                                                     std::string(m.at("what").as_string())};
  ASSERT_EQ(verdicts.size(), 6u);
  EXPECT_EQ(verdicts[processed.event_id].first, "processed");
  EXPECT_THAT(verdicts[processed.event_id].second, HasSubstr("will be ignored"));
  EXPECT_EQ(verdicts[valid.event_id].first, "valid");
  EXPECT_THAT(verdicts[valid.event_id].second, HasSubstr("captures 400"));
  EXPECT_EQ(verdicts[too_much.event_id].first, "rejected");
  EXPECT_THAT(verdicts[too_much.event_id].second, HasSubstr("amount_exceeds_remaining"));
  EXPECT_EQ(verdicts[unknown.event_id].first, "rejected");
  EXPECT_THAT(verdicts[unknown.event_id].second, HasSubstr("unknown_order"));
  EXPECT_EQ(verdicts[fresh.event_id].first, "valid");
  EXPECT_THAT(verdicts[fresh.event_id].second, HasSubstr("creates the payment of 700 NOK"));
  EXPECT_THAT(verdicts[fresh.event_id].second, HasSubstr("+47****5432"));
  EXPECT_EQ(verdicts["broken-" + suffix_].first, "malformed");
  EXPECT_THAT(verdicts["broken-" + suffix_].second, HasSubstr("dead-letter it again"));

  // The table form, as a process, with an id.
  Result table = Process({"dlq", "replay", too_much.event_id, "--dry-run"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("would now be rejected: amount_exceeds_remaining"));
  EXPECT_THAT(table.out, HasSubstr("nothing was published, acked or recorded"));

  EXPECT_EQ(snapshot(), queue_before);
  EXPECT_EQ(admin_->QueueDepth(OrdersQueue()), 0u);
  EXPECT_EQ(ReadFile(fixture_->store_path()), store_before);
  auto store = fixture_->OpenStore();
  store::Counts counts_after = store.RowCounts(kNow);
  EXPECT_EQ(counts_after.payments, counts_before.payments);
  EXPECT_EQ(counts_after.inbox, counts_before.inbox);
  EXPECT_EQ(counts_after.outbox_unsent, counts_before.outbox_unsent);
  EXPECT_TRUE(store.Replays(10).empty());
}

TEST_F(DlqTest, ReplayNeedsAReasonAndASelection) {
  DeadEvent(Events(suffix_, 1)[0]);
  Result no_reason = Process({"dlq", "replay", "--all", "--yes"});
  EXPECT_EQ(no_reason.code, 2);
  EXPECT_THAT(no_reason.err, HasSubstr("--reason"));
  Result nothing = Ctl({"dlq", "replay", "--reason", "x", "--yes"});
  EXPECT_EQ(nothing.code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("say which messages"));
  Result no_tty = Process({"dlq", "replay", "--all", "--reason", "x"});
  EXPECT_EQ(no_tty.code, 2);
  EXPECT_THAT(no_tty.err, HasSubstr("--yes"));
  Result declined =
      Ctl({"dlq", "replay", "--all", "--reason", "x"}, {.input = "no\n", .stdin_tty = true});
  EXPECT_EQ(declined.code, 1);
  EXPECT_THAT(declined.err, HasSubstr("Replay 1 message"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 1u);
  EXPECT_TRUE(fixture_->OpenStore().Replays(10).empty());
}

TEST_F(DlqTest, AMissingDeadLetterQueueIsExplained) {
  admin_->DeleteQueue(DeadQueue());
  Result r = Ctl({"dlq", "list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  EXPECT_THAT(r.err, HasSubstr("bus.topology.dead_letter_queue"));
}

}  // namespace
}  // namespace payorch::ctl::testing
