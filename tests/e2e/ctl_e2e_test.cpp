// payorchctl against a running payorchd, the real broker and payex-sim: payment
// resolve/republish through the admin endpoint, and dead letters replayed into the
// running daemon: a processed event is a no-op (the inbox), two operators replaying
// the same queue at once have the effect of one replay, a dry run changes nothing.
#include <sys/wait.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>

#include "bus/topology.hpp"
#include "codec/codec.hpp"
#include "e2e/e2e_util.hpp"

namespace payorch::e2e {
namespace {

using K = EventKind;

struct CtlResult {
  int code = -1;
  std::string out;
};

// Runs payorchctl with the daemon's configuration (same file, same overrides).
CtlResult Ctl(World& w, std::vector<std::string> args) {
  const bus::Topology& t = w.bus_config().topology;
  std::vector<std::string> argv = {kit::FindBinary("payorchctl"),
                                   "--config",
                                   std::string(PAYORCH_SOURCE_DIR) + "/config/payorch.toml",
                                   "--set", "store.path=" + w.daemon().store_path(),
                                   "--set", "bus.url=" + w.bus_config().url,
                                   "--set", "bus.topology.orders_exchange=" + t.orders_exchange,
                                   "--set", "bus.topology.orders_queue=" + t.orders_queue,
                                   "--set", "bus.topology.dead_letter_exchange=" + t.dead_letter_exchange,
                                   "--set", "bus.topology.dead_letter_queue=" + t.dead_letter_queue,
                                   "--set", "bus.topology.payments_exchange=" + t.payments_exchange,
                                   "--set", "admin.port=" + std::to_string(w.daemon().admin_port())};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log = w.dir() + "/ctl-" + kit::RandomSuffix() + ".out";
  kit::Process p = kit::Process::Start(argv, {"USER=e2e-operator"}, log);
  CtlResult r;
  r.code = p.Wait(std::chrono::seconds(120)).value_or(-1);
  std::ifstream f(log);
  r.out.assign(std::istreambuf_iterator<char>(f), {});
  return r;
}

// A well-formed order event in the dead-letter queue, as the broker leaves one that
// passed its delivery limit: original exchange and routing key in the headers.
void DeadLetter(World& w, const domain::OrderEvent& e) {
  bus::Admin admin(w.bus_config(), "e2e dead letter");
  bus::Publisher pub(w.bus_config());
  pub.Start();
  bus::Message m;
  m.exchange = w.bus_config().topology.dead_letter_exchange;
  m.routing_key = codec::OrderRoutingKey(e.kind);
  m.body = codec::EncodeOrderEvent(e);
  m.properties.content_type = "application/x-protobuf";
  m.properties.message_id = e.event_id;
  m.properties.delivery_mode = 2;
  m.properties.headers["x-payorch-error"] = bus::FieldValue::String("delivery_limit");
  m.properties.headers["x-payorch-original-exchange"] =
      bus::FieldValue::String(w.bus_config().topology.orders_exchange);
  m.properties.headers["x-payorch-original-routing-key"] = bus::FieldValue::String(m.routing_key);
  ASSERT_TRUE(kit::WaitFor([&] { return pub.Status().connected; }, 20s));
  bus::PublishResult r = pub.Publish(std::move(m)).get();
  ASSERT_TRUE(r.Ok()) << r.detail;
  pub.Stop();
}

uint32_t DeadDepth(World& w) {
  bus::Admin admin(w.bus_config(), "e2e depth");
  return admin.QueueDepth(w.bus_config().topology.dead_letter_queue).value_or(0);
}

TEST(CtlE2e, ResolveAndRepublishGoThroughTheRunningDaemon) {
  World w;
  w.Publish(Purchase("c-admin", 2500));
  ASSERT_TRUE(w.Expect("c-admin", {K::kAuthorized}));

  CtlResult r = Ctl(w, {"payment", "republish", "c-admin"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("1 event"), std::string::npos) << r.out;
  // The same event again, same id: a consumer that lost it gets it; others deduplicate.
  ASSERT_TRUE(w.bus().WaitUntil(
      [](const std::vector<kit::Received>& all) {
        int n = 0;
        for (const auto& e : all) n += e.event.order_id == "c-admin";
        return n >= 2;
      },
      20s));
  auto copies = w.bus().EventsFor("c-admin");
  EXPECT_EQ(copies[0].event.event_id, copies[1].event.event_id);
  EXPECT_EQ(w.Distinct("c-admin").size(), 1u);

  r = Ctl(w, {"payment", "resolve", "c-admin"});
  EXPECT_EQ(r.code, 0) << r.out;
  r = Ctl(w, {"payment", "resolve", "c-nobody"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("c-nobody"), std::string::npos) << r.out;

  // The operator's timeline shows both, read from the store while payorchd runs.
  ASSERT_TRUE(kit::WaitFor([&] {
    return Ctl(w, {"payment", "show", "c-admin"}).out.find("republish") != std::string::npos;
  }, 20s));
  r = Ctl(w, {"-o", "json", "payment", "show", "c-admin"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("authorized"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resolve"), std::string::npos) << r.out;
}

// Issue 11, no poison pill: with bus.max_message_bytes too small for one order's
// events (its ids are long), that order's first event is refused for good and
// parked, its later events wait behind it, and every other order flows on. The
// operator sees it (payorchctl payment parked, metrics, one log line), raises the
// limit and restarts: the order's events go out in sequence, nothing lost.
TEST(CtlE2e, AnEventTheBusRefusesIsParkedShownAndPublishedAfterAFix) {
  World w({}, {"bus.max_message_bytes=300"});
  const std::string big(100, 'L');  // its payment events are over 300 bytes
  w.Publish(Purchase(big, 2500));
  w.Publish(Purchase("c-small", 1500));
  ASSERT_TRUE(w.Expect("c-small", {K::kAuthorized}));
  ASSERT_TRUE(kit::WaitFor([&] {
    return w.daemon().Metric("payorch_events_parked_total").value_or(0) >= 1;
  }, 30s)) << w.daemon().LogTail(30);
  // Its shipment is decided and captured at PayEx, but its event waits behind.
  w.Publish(Shipped(big, "s1", 2500));
  w.Publish(Shipped("c-small", "s1", 1500));
  ASSERT_TRUE(w.Expect("c-small", {K::kAuthorized, K::kCaptured}));
  ASSERT_TRUE(kit::WaitFor([&] {
    return w.daemon().Metric("payorch_outbox_parked_events").value_or(0) == 2;
  }, 30s)) << w.daemon().Metric("payorch_outbox_parked_events").value_or(-1);
  EXPECT_TRUE(w.Distinct(big).empty());

  CtlResult r = Ctl(w, {"payment", "parked"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(big), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bus.max_message_bytes is 300"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 order held back"), std::string::npos) << r.out;
  r = Ctl(w, {"-o", "json", "payment", "parked"});
  EXPECT_NE(r.out.find("\"waiting_behind\":1"), std::string::npos) << r.out;
  // Logged once, not at every retry; the publisher's connection never dropped.
  std::ifstream log(w.daemon().log_path());
  std::string text((std::istreambuf_iterator<char>(log)), {});
  size_t parked_lines = 0;
  for (size_t at = 0; (at = text.find("event=payment_event.parked", at)) != std::string::npos; ++at)
    ++parked_lines;
  EXPECT_EQ(parked_lines, 1u);
  EXPECT_EQ(text.find("bus.publisher.disconnected"), std::string::npos);

  // The fix: a limit that fits, and a restart. The parked event and the one
  // behind it go out, in sequence.
  w.RestartDaemon({"bus.max_message_bytes=16777216"});
  ASSERT_TRUE(w.Expect(big, {K::kAuthorized, K::kCaptured}));
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_EQ(w.daemon().Metric("payorch_outbox_parked_events").value_or(0), 0);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(CtlE2e, WithPayorchdStoppedTheOperatorIsToldPlainly) {
  World w;
  ASSERT_EQ(w.daemon().Term(), 0);
  CtlResult r = Ctl(w, {"payment", "resolve", "anything"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("payorchd is not running"), std::string::npos) << r.out;
}

TEST(CtlE2e, ReplaysIntoTheRunningDaemonAreSafeTwoOperatorsActAsOne) {
  World w;
  // A purchase processed normally, then the same event in the dead-letter queue (a
  // copy dead-lettered after it was processed), and 20 orders' purchases that never
  // reached payorchd.
  auto processed = Purchase("c-done", 1000);
  w.Publish(processed);
  ASSERT_TRUE(w.Expect("c-done", {K::kAuthorized}));
  DeadLetter(w, processed);
  constexpr int kWaiting = 20;
  for (int i = 0; i < kWaiting; ++i) DeadLetter(w, Purchase("c-wait-" + std::to_string(i), 1000 + i));
  ASSERT_TRUE(kit::WaitFor([&] { return DeadDepth(w) == kWaiting + 1; }, 20s));

  // Dry run: says what would happen, touches nothing.
  CtlResult dry = Ctl(w, {"dlq", "replay", "--all", "--dry-run", "--reason", "check"});
  ASSERT_EQ(dry.code, 0) << dry.out;
  EXPECT_NE(dry.out.find("already processed"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("valid"), std::string::npos) << dry.out;
  EXPECT_EQ(DeadDepth(w), kWaiting + 1u);
  EXPECT_TRUE(w.bus().EventsFor("c-wait-0").empty());

  // Two operators replay the whole queue at the same moment.
  CtlResult a, b;
  std::thread ta([&] { a = Ctl(w, {"dlq", "replay", "--all", "--yes", "--reason", "night shift A"}); });
  std::thread tb([&] { b = Ctl(w, {"dlq", "replay", "--all", "--yes", "--reason", "night shift B"}); });
  ta.join();
  tb.join();
  EXPECT_EQ(a.code, 0) << a.out;
  EXPECT_EQ(b.code, 0) << b.out;
  EXPECT_EQ(DeadDepth(w), 0u);

  // Every waiting order is answered exactly once; the processed one not again.
  for (int i = 0; i < kWaiting; ++i)
    ASSERT_TRUE(w.Expect("c-wait-" + std::to_string(i), {K::kAuthorized}));
  EXPECT_EQ(w.bus().EventsFor("c-done").size(), 1u);
  ASSERT_TRUE(kit::WaitFor([&] {
    return w.daemon()
               .Metric("payorch_events_consumed_total{kind=\"purchase_requested\",result=\"duplicate\"}")
               .value_or(0) >= 1;
  }, 20s));
  // Each message was replayed once, by one of the two: the records add up.
  CtlResult records = Ctl(w, {"-o", "json", "dlq", "replays"});
  EXPECT_EQ(records.code, 0) << records.out;
  EXPECT_NE(records.out.find("night shift"), std::string::npos) << records.out;
  for (int i = 0; i < kWaiting; ++i) {
    auto ev = w.bus().EventsFor("c-wait-" + std::to_string(i));
    EXPECT_EQ(ev.size(), 1u) << "order c-wait-" << i << " answered " << ev.size() << " times";
  }
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_TRUE(w.LedgerOk());
}


// payorchctl reconcile and payment export (issue 14): two captured payments agree
// with PayEx; the simulator then fails one's capture behind payorch's back
// (/admin/payments/{id}/force) and reconcile finds exactly that, in every format,
// exit 1. export lists each money operation with its payeeReference and transaction.
namespace rjson = boost::json;

// The output without payorchctl's progress lines (stderr shares the file here).
std::string WithoutProgress(const std::string& out) {
  std::string kept;
  size_t at = 0;
  while (at < out.size()) {
    size_t end = out.find('\n', at);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(at, end - at);
    if (line.rfind("reconcile: ", 0) != 0) kept += line + "\n";
    at = end + 1;
  }
  return kept;
}

TEST(CtlE2e, ReconcileFindsWhatPayExChangedBehindPayorchsBack) {
  World w;
  for (const char* o : {"r-clean", "r-forced"}) {
    w.Publish(Purchase(o, 4000));
    ASSERT_TRUE(w.Expect(o, {K::kAuthorized}));
    w.Publish(Shipped(o, "s1", 4000));
    ASSERT_TRUE(w.Expect(o, {K::kAuthorized, K::kCaptured}));
  }
  CtlResult agree = Ctl(w, {"reconcile", "--since", "1h", "-o", "json"});
  ASSERT_EQ(agree.code, 0) << agree.out;
  EXPECT_NE(agree.out.find("reconcile: 2/2 payments read from PayEx"), std::string::npos)
      << agree.out;
  const rjson::value a = rjson::parse(WithoutProgress(agree.out));
  EXPECT_EQ(a.at("compared").as_int64(), 2);
  EXPECT_EQ(a.at("mismatched").as_int64(), 0);

  // The simulator fails r-forced's capture (its only capture transaction).
  const std::string payment_id = w.Distinct("r-forced").at(0).event.payment_id;
  const rjson::value sim_payment = rjson::parse(
      w.sim().Admin("GET", "/admin/payments/" + payment_id.substr(payment_id.rfind('/') + 1)).body);
  std::string capture_tx;
  for (const auto& t : sim_payment.at("transactions").as_array())
    if (t.at("type") == "Capture") capture_tx = std::string(t.at("id").as_string());
  ASSERT_FALSE(capture_tx.empty()) << rjson::serialize(sim_payment);
  const kit::HttpResult forced = w.sim().Admin(
      "POST", "/admin/payments/" + payment_id.substr(payment_id.rfind('/') + 1) + "/force",
      "{\"outcome\":\"Failed\",\"transaction\":\"" +
          capture_tx.substr(capture_tx.rfind('/') + 1) + "\"}");
  ASSERT_EQ(forced.status, 200) << forced.body;

  CtlResult found = Ctl(w, {"reconcile", "--since", "1h", "-o", "json"});
  EXPECT_EQ(found.code, 1) << found.out;
  const rjson::value f = rjson::parse(WithoutProgress(found.out));
  EXPECT_EQ(f.at("compared").as_int64(), 2);
  EXPECT_EQ(f.at("mismatched").as_int64(), 1);
  std::set<std::string> whats;
  for (const auto& m : f.at("mismatches").as_array()) {
    EXPECT_EQ(m.at("order_id"), "r-forced") << rjson::serialize(m);
    whats.insert(std::string(m.at("what").as_string()));
  }
  EXPECT_TRUE(whats.count("captured")) << rjson::serialize(f);
  bool capture_op = false;
  for (const auto& w2 : whats) capture_op = capture_op || w2.rfind("capture s1 ", 0) == 0;
  EXPECT_TRUE(capture_op) << rjson::serialize(f);

  CtlResult table = Ctl(w, {"reconcile", "--since", "1h"});
  EXPECT_EQ(table.code, 1);
  EXPECT_NE(table.out.find("2 payments: 2 compared, 1 with mismatches"), std::string::npos)
      << table.out;
  CtlResult csv = Ctl(w, {"reconcile", "--since", "1h", "-o", "csv"});
  EXPECT_EQ(csv.code, 1);
  EXPECT_NE(csv.out.find("order_id,what,payorch,payex\r\n"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find("r-forced,captured,4000,0\r\n"), std::string::npos) << csv.out;
  CtlResult one = Ctl(w, {"reconcile", "--order", "r-clean"});
  EXPECT_EQ(one.code, 0) << one.out;
  EXPECT_EQ(Ctl(w, {"reconcile"}).code, 2);  // neither --since nor --order

  // payment show prints each call's real latency (loopback calls take under a ms).
  CtlResult shown = Ctl(w, {"payment", "show", "r-clean", "-o", "json"});
  ASSERT_EQ(shown.code, 0) << shown.out;
  const rjson::value sj = rjson::parse(shown.out);
  size_t timed = 0;
  for (const auto& c : sj.at("operations").as_array())
    if (c.at("latency_ms").is_double() && c.at("latency_ms").as_double() > 0) ++timed;
  EXPECT_GE(timed, 3u) << shown.out;  // create, authorize, capture, reads

  // Finance's export: authorize and capture of each, with payeeReference and transaction.
  CtlResult exported = Ctl(w, {"payment", "export", "--since", "1h", "-o", "csv"});
  ASSERT_EQ(exported.code, 0) << exported.out;
  EXPECT_NE(exported.out.find("order_id,payment_id,operation,ref,status,amount,vat_amount,"
                              "payee_reference,transaction,finished_at\r\n"),
            std::string::npos)
      << exported.out;
  size_t captures = 0;
  for (size_t at = exported.out.find(",capture,s1,done,4000,"); at != std::string::npos;
       at = exported.out.find(",capture,s1,done,4000,", at + 1))
    ++captures;
  EXPECT_EQ(captures, 2u) << exported.out;
}

}  // namespace
}  // namespace payorch::e2e
