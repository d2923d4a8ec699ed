// payorchctl review fixes: purge and replay act only on what the operator was
// shown (held before the prompt; --all never purges the queue wholesale); replay's
// --reason is never an error-code filter; a replay drops user_id, and a broker
// channel close ends a publish at once; copies of one message are published once;
// MSISDNs written in groups are masked; the admin client tries every address;
// absurd durations are usage errors; a dry run simulates the run in queue order.
#include <gmock/gmock.h>

#include <boost/json.hpp>
#include <map>

#include "ctl/admin_client.hpp"
#include "ctl/dead_letters.hpp"
#include "ctl/output.hpp"
#include "ctl_test_util.hpp"

namespace payorch::ctl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace json = boost::json;


std::vector<std::string> Ids(const std::vector<bus::GotMessage>& messages) {
  std::vector<std::string> ids;
  for (const auto& m : messages) ids.push_back(MessageId(m));
  return ids;
}

using ReviewFixTest = CtlBusTest;

// 1. What arrives while the operator reads the question is not touched.
TEST_F(ReviewFixTest, PurgeActsOnlyOnWhatTheOperatorWasAskedAbout) {
  const auto a = Shipped("order-" + suffix_, "evt-a-" + suffix_, 100);
  const auto b = Shipped("order-" + suffix_, "evt-b-" + suffix_, 100);
  const auto late = Shipped("order-" + suffix_, "evt-late-" + suffix_, 100);
  const auto later = Shipped("order-" + suffix_, "evt-later-" + suffix_, 100);
  DeadEvent(a, "missing_kind");
  DeadEvent(b, "malformed_body");

  Result filtered = Ctl({"dlq", "purge", "--error", "missing_kind"},
                        {.input = "y\n",
                         .before_answer = [&] { DeadEvent(late, "missing_kind"); },
                         .stdin_tty = true});
  ASSERT_EQ(filtered.code, 0) << filtered.err;
  EXPECT_THAT(filtered.err, HasSubstr("Delete 1 message "));
  EXPECT_THAT(filtered.out, HasSubstr("purged 1 message "));
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)),
            (std::vector<std::string>{b.event_id, late.event_id}));

  // --all: the two it showed, not the one that came meanwhile (no queue.purge).
  Result all = Ctl({"dlq", "purge", "--all", "-o", "json"},
                   {.input = "yes\n",
                    .before_answer = [&] { DeadEvent(later, "malformed_body"); },
                    .stdin_tty = true});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_THAT(all.err, HasSubstr("Delete 2 messages"));
  EXPECT_EQ(Json(all).at("purged").as_int64(), 2);
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)), std::vector<std::string>{later.event_id});
}

TEST_F(ReviewFixTest, ReplayActsOnlyOnWhatTheOperatorWasAskedAbout) {
  const auto a = Shipped("order-" + suffix_, "evt-a-" + suffix_, 100);
  const auto late = Shipped("order-" + suffix_, "evt-late-" + suffix_, 100);
  DeadEvent(a);
  Result r = Ctl({"dlq", "replay", "--all", "--reason", "parser fixed", "-o", "json"},
                 {.input = "y\n", .before_answer = [&] { DeadEvent(late); }, .stdin_tty = true});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Replay 1 message "));
  EXPECT_EQ(Json(r).at("replayed").as_int64(), 1);
  EXPECT_EQ(Ids(Drain(OrdersQueue())), std::vector<std::string>{a.event_id});
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)), std::vector<std::string>{late.event_id});

  // Saying no gives everything back, in its order.
  Result no = Ctl({"dlq", "replay", "--all", "--reason", "x"}, {.input = "n\n", .stdin_tty = true});
  EXPECT_EQ(no.code, 1);
  EXPECT_THAT(no.err, HasSubstr("nothing replayed"));
  EXPECT_EQ(Ids(admin_->Peek(DeadQueue(), 10)), std::vector<std::string>{late.event_id});
}

// 2. --reason on replay is the why, never a filter.
TEST_F(ReviewFixTest, ReplayRefusesAnErrorCodeAsItsReason) {
  DeadEvent(Shipped("order-" + suffix_, "evt-" + suffix_, 100), "missing_kind");
  for (const char* code : {"missing_kind", "malformed_body", "delivery_limit", "rejected"}) {
    SCOPED_TRACE(code);
    Result r = Ctl({"dlq", "replay", "--all", "--reason", code, "--yes"});
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr("--reason is why you replay (free text); to select by error "
                                 "code use --error"));
  }
  Result process = Process({"dlq", "replay", "--all", "--reason", "missing_kind", "--yes"});
  EXPECT_EQ(process.code, 2);
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 1u);
  EXPECT_EQ(admin_->QueueDepth(OrdersQueue()), 0u);
  EXPECT_TRUE(fixture_->OpenStore().Replays(10).empty());
  // Free text is fine, and --error selects.
  Result ok = Ctl({"dlq", "replay", "--error", "missing_kind", "--reason", "kind added", "--yes"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(admin_->QueueDepth(OrdersQueue()), 1u);
}

// 3. user_id names the original publisher: the broker refuses it from anyone else.
TEST_F(ReviewFixTest, AReplayDoesNotCopyUserId) {
  ctl::DeadLetter d;
  d.original_exchange = "x";
  d.routing_key = "order.shipped";
  d.message.properties.user_id = "someone-else";
  d.message.properties.message_id = "m1";
  bus::Message m = ReplayMessage(d, "alice", "7");
  EXPECT_FALSE(m.properties.user_id.has_value());
  EXPECT_EQ(m.properties.message_id, "m1");
}

TEST_F(ReviewFixTest, ABrokerChannelCloseEndsAPublishAtOnceWithTheBrokersWords) {
  bus::Message m;
  m.exchange = config_.topology.orders_exchange;
  m.routing_key = "order.shipped";
  m.body = "x";
  m.properties.user_id = "someone-else";  // not the connection's user: 406
  auto hold = admin_->OpenHold();
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)hold.Publish(m);
    ADD_FAILURE() << "the broker took a publish with another user_id";
  } catch (const bus::BusError& e) {
    EXPECT_EQ(e.reply_code(), 406) << e.what();
    EXPECT_THAT(std::string(e.what()), HasSubstr("user_id"));
    EXPECT_THAT(std::string(e.what()), Not(HasSubstr("alarm")));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(hold.IsOpen());
  // The connection still works.
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
  auto again = admin_->OpenHold();
  EXPECT_FALSE(again.Get(DeadQueue()).has_value());
}

// 4. Copies of one message: one publish, every copy acked.
TEST_F(ReviewFixTest, CopiesOfOneMessageArePublishedOnceAndAllAcked) {
  const auto e = Shipped("order-" + suffix_, "evt-twice-" + suffix_, 100);
  const auto other = Shipped("order-" + suffix_, "evt-other-" + suffix_, 100);
  DeadEvent(e);
  DeadEvent(other);
  DeadEvent(e);

  Result dry = Ctl({"dlq", "replay", "--all", "--dry-run", "-o", "json"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  std::vector<std::pair<std::string, std::string>> verdicts;
  const json::value dry_json = Json(dry);
  for (const auto& m : dry_json.at("messages").as_array())
    verdicts.emplace_back(m.at("id").as_string(), m.at("verdict").as_string());
  EXPECT_EQ(verdicts, (std::vector<std::pair<std::string, std::string>>{
                          {e.event_id, "rejected"}, {e.event_id, "duplicate"},
                          {other.event_id, "rejected"}}));
  Result dry_table = Ctl({"dlq", "replay", "--all", "--dry-run"});
  EXPECT_THAT(dry_table.out, HasSubstr("2 would be replayed"));
  EXPECT_THAT(dry_table.out, HasSubstr("1 duplicate copy acked with them"));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 3u);

  Result r = Ctl({"dlq", "replay", "--all", "--reason", "x", "--yes", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json::value v = Json(r);
  EXPECT_EQ(v.at("replayed").as_int64(), 2);
  EXPECT_EQ(v.at("duplicate_copies_acked").as_int64(), 1);
  EXPECT_EQ(Ids(Drain(OrdersQueue())), (std::vector<std::string>{e.event_id, other.event_id}));
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
  EXPECT_EQ(fixture_->OpenStore().Replays(10).at(0).message_count, 2);
}

// Issue 11: two different bodies under one id are two messages, each replayed;
// replaying one must not remove the other unreplayed.
TEST_F(ReviewFixTest, DistinctBodiesUnderOneIdAreEachReplayed) {
  const auto first = Shipped("order-" + suffix_, "evt-same-" + suffix_, 100);
  auto second = first;
  second.kind = domain::OrderShipped{"s-other", 250, 0, ""};
  DeadEvent(first);
  DeadEvent(second);
  DeadEvent(first);  // a true copy of the first

  Result dry = Ctl({"dlq", "replay", "--all", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("1 duplicate copy acked with them"));
  Result r = Ctl({"dlq", "replay", "--all", "--reason", "x", "--yes", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json::value v = Json(r);
  EXPECT_EQ(v.at("replayed").as_int64(), 2);
  EXPECT_EQ(v.at("duplicate_copies_acked").as_int64(), 1);
  const auto replayed = Drain(OrdersQueue());
  ASSERT_EQ(replayed.size(), 2u);
  EXPECT_NE(replayed[0].body, replayed[1].body) << "one body was lost to the other";
  EXPECT_EQ(admin_->QueueDepth(DeadQueue()), 0u);
}

// 7. The dry run plays the selection in queue order.
TEST_F(ReviewFixTest, DryRunSimulatesTheRunInQueueOrder) {
  const std::string order = "order-sim-" + suffix_;
  const auto purchase = Purchase(order, "evt-buy-" + suffix_, 500, "");
  const domain::OrderEvent msisdn{"evt-msisdn-" + suffix_, order, kNow,
                                  domain::PayerMsisdnProvided{"+4798765432"}};
  DeadEvent(purchase);
  DeadEvent(msisdn);
  // The same event once more, under another message id.
  DeadLetter(codec::EncodeOrderEvent(purchase), "application/x-protobuf", "other-" + suffix_,
             "order.purchase_requested", "malformed_body");
  Result r = Ctl({"dlq", "replay", "--all", "--dry-run", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, std::pair<std::string, std::string>> v;
  const json::value r_json = Json(r);
  for (const auto& m : r_json.at("messages").as_array())
    v[std::string(m.at("id").as_string())] = {std::string(m.at("verdict").as_string()),
                                              std::string(m.at("what").as_string())};
  EXPECT_EQ(v[purchase.event_id].first, "valid");
  EXPECT_EQ(v[msisdn.event_id].first, "valid") << v[msisdn.event_id].second;
  EXPECT_THAT(v[msisdn.event_id].second, HasSubstr("authorizes with +47****5432"));
  EXPECT_EQ(v["other-" + suffix_].first, "processed");
  EXPECT_THAT(v["other-" + suffix_].second,
              HasSubstr("already processed by an earlier message of this run"));
}

// 5.
TEST(MaskDigitsTest, MasksNumbersWrittenInGroups) {
  EXPECT_EQ(MaskDigits("+4798765432"), "+47****5432");
  EXPECT_EQ(MaskDigits("call +47 412 34 567 now"), "call +47****4567 now");
  EXPECT_EQ(MaskDigits("412-34-567"), "****4567");
  EXPECT_EQ(MaskDigits("0047 41234567"), "****4567");
  EXPECT_EQ(MaskDigits("41 23 45 67,"), "****4567,");
  EXPECT_EQ(MaskDigits("msisdn \"412 34 567\""), "msisdn \"****4567\"");
  // Short numbers, double separators and dates stay.
  EXPECT_EQ(MaskDigits("amount 1234 567"), "amount 1234 567");
  EXPECT_EQ(MaskDigits("412  34  567"), "412  34  567");
  EXPECT_EQ(MaskDigits("at 2026-11-24T02:26:18Z"), "at 2026-11-24T02:26:18Z");
  EXPECT_EQ(MaskDigits("field 3 - 4"), "field 3 - 4");
}

// 6.
TEST(AdminConnectTest, TriesEveryAddress) {
  DeadPort dead;  // refuses
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in live{};
  live.sin_family = AF_INET;
  live.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&live), sizeof live), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof live;
  getsockname(listener, reinterpret_cast<sockaddr*>(&live), &len);
  sockaddr_in refused = live;
  refused.sin_port = htons(dead.port());

  addrinfo second{};
  second.ai_family = AF_INET;
  second.ai_socktype = SOCK_STREAM;
  second.ai_addr = reinterpret_cast<sockaddr*>(&live);
  second.ai_addrlen = sizeof live;
  addrinfo first = second;
  first.ai_addr = reinterpret_cast<sockaddr*>(&refused);
  first.ai_next = &second;

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int fd = -1;
  ASSERT_NO_THROW(fd = ConnectAny(&first, "localhost:1", deadline, std::chrono::seconds(5)));
  EXPECT_GE(fd, 0);
  close(fd);
  // Only refusals: payorchd is not running.
  first.ai_next = nullptr;
  try {
    close(ConnectAny(&first, "localhost:1", deadline, std::chrono::seconds(5)));
    ADD_FAILURE() << "connected to a port nobody listens on";
  } catch (const AdminUnreachable& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("payorchd is not running"));
  }
  close(listener);
}

TEST(DurationArgTest, AHugeDurationIsAUsageError) {
  CtlFixture fixture;
  for (const char* d : {"99999999999999999999d", "9999999999999999999h", "999999999d", "3000000h"}) {
    SCOPED_TRACE(d);
    Result list = fixture.Process({"payment", "list", "--older-than", d});
    EXPECT_EQ(list.code, 2) << list.err;
    EXPECT_THAT(list.err, HasSubstr("too long a duration"));
    Result dlq = fixture.Ctl({"dlq", "list", "--since", d});
    EXPECT_EQ(dlq.code, 2) << dlq.err;
    EXPECT_THAT(dlq.err, HasSubstr("--since"));
  }
  EXPECT_EQ(fixture.Ctl({"payment", "list", "--older-than", "2d"}).code, 0);
  Result bad = fixture.Ctl({"payment", "list", "--older-than", "soon"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("expected a duration"));
}

// Issue 11 (found by dead_letter_fuzz): a dead-lettered-at header with a time no
// clock shows (past year 9999, before 1970) overflowed when turned into
// milliseconds. It is now no time at all; the reason and detail a publisher wrote
// are shown masked, on one line and bounded.
TEST(DescribeDeadLetterTest, HostileHeadersAreNoTimeAndShowSafely) {
  bus::GotMessage m;
  m.body = "x";
  m.properties.headers["x-payorch-dead-lettered-at"] =
      bus::FieldValue::Timestamp(8731751130758905856ull);
  m.properties.headers["x-payorch-error"] = bus::FieldValue::String("bad\x1b[2J");
  m.properties.headers["x-payorch-detail"] =
      bus::FieldValue::String("call +4798765432\n" + std::string(5000, 'd'));
  DeadLetter d = Describe(m, bus::Topology{});
  EXPECT_FALSE(d.dead_lettered_at.has_value());
  EXPECT_EQ(d.reason, "bad [2J");
  EXPECT_EQ(d.detail.rfind("call +47****5432 ddd", 0), 0u) << d.detail;
  EXPECT_NE(d.detail.find("... (5017 bytes)"), std::string::npos) << d.detail;
  EXPECT_LE(d.detail.size(), 1032u);

  m.properties.headers["x-payorch-dead-lettered-at"] = bus::FieldValue::Int(-5);
  EXPECT_FALSE(Describe(m, bus::Topology{}).dead_lettered_at.has_value());
  m.properties.headers["x-payorch-dead-lettered-at"] = bus::FieldValue::Timestamp(1'764'000'000);
  EXPECT_EQ(domain::ToMillis(*Describe(m, bus::Topology{}).dead_lettered_at), 1'764'000'000'000);
}

}  // namespace
}  // namespace payorch::ctl::testing
