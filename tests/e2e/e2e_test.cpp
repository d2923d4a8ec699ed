// End-to-end: payorchd as a process, the real broker, payex-sim; every scenario of
// the contract, published and observed through the bus only. Each test has its own
// topology names, simulator, store and daemon, so tests run side by side.
#include "e2e/e2e_util.hpp"

#include "bus/topology.hpp"
#include "codec/codec.hpp"
#include "store/store.hpp"

#include <sqlite3.h>

#include <fstream>
#include <iostream>

namespace payorch::e2e {
namespace {

using K = EventKind;

std::string Code(const kit::Received& r) { return r.event.failure.code; }

TEST(E2e, ApprovedPurchaseThenShippedIsCaptured) {
  World w;
  w.Publish(Purchase("o-approve", 10000));
  ASSERT_TRUE(w.Expect("o-approve", {K::kAuthorized}));
  w.Publish(Shipped("o-approve", "s1", 10000));
  ASSERT_TRUE(w.Expect("o-approve", {K::kAuthorized, K::kCaptured}));
  auto ev = w.Distinct("o-approve");
  EXPECT_EQ(ev[0].event.amount, 10000);
  EXPECT_EQ(ev[0].event.caused_by_event_id, "o-approve:purchase");
  EXPECT_EQ(ev[1].event.shipment_id, "s1");
  EXPECT_EQ(ev[1].event.balance.captured, 10000);
  EXPECT_EQ(ev[1].event.caused_by_event_id, "o-approve:ship-s1");
  EXPECT_EQ(ev[0].routing_key, "payment.authorized");
  EXPECT_EQ(ev[1].routing_key, "payment.captured");
  EXPECT_EQ(ev[0].message_id, ev[0].event.event_id);
  EXPECT_FALSE(ev[0].event.payment_id.empty());
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, PurchaseWithoutMsisdnWaitsForIt) {
  World w;
  w.Publish(Purchase("o-late", 5000, ""));
  w.Publish(Msisdn("o-late", "+47 912 34 567"));
  // Both events are answered, each by its own `authorized` (README, the state machine).
  ASSERT_TRUE(w.Expect("o-late", {K::kAuthorized, K::kAuthorized}));
  std::set<std::string> causes;
  for (const auto& r : w.Distinct("o-late")) causes.insert(r.event.caused_by_event_id);
  EXPECT_EQ(causes, (std::set<std::string>{"o-late:purchase", "o-late:msisdn"}));
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, DeclinedAndTimedOutPayersFailTheAuthorization) {
  World w;
  w.Publish(Purchase("o-decline", 3000, "+4799999989"));
  w.Publish(Purchase("o-timeout", 3000, "+4799999990"));
  ASSERT_TRUE(w.Expect("o-decline", {K::kAuthorizationFailed}));
  EXPECT_EQ(Code(w.Distinct("o-decline")[0]), "declined");
  ASSERT_TRUE(w.Expect("o-timeout", {K::kAuthorizationFailed}));
  EXPECT_EQ(Code(w.Distinct("o-timeout")[0]), "timed_out");
  // Shipping a failed order is answered, never captured.
  w.Publish(Shipped("o-decline", "s1", 3000));
  ASSERT_TRUE(w.Expect("o-decline", {K::kAuthorizationFailed, K::kCaptureFailed}));
  EXPECT_EQ(Code(w.Distinct("o-decline")[1]), "not_authorized");
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, PartialAndRepeatedCapturesThenCancelTheRest) {
  World w;
  w.Publish(Purchase("o-part", 10000));
  ASSERT_TRUE(w.Expect("o-part", {K::kAuthorized}));
  w.Publish(Shipped("o-part", "s1", 3000));
  w.Publish(Shipped("o-part", "s2", 2000));
  ASSERT_TRUE(w.Expect("o-part", {K::kAuthorized, K::kCaptured, K::kCaptured}));
  w.Publish(Cancelled("o-part"));
  ASSERT_TRUE(w.Expect("o-part", {K::kAuthorized, K::kCaptured, K::kCaptured, K::kCancelled}));
  auto ev = w.Distinct("o-part");
  EXPECT_EQ(ev[3].event.amount, 5000);
  EXPECT_EQ(ev[3].event.balance.captured, 5000);
  EXPECT_EQ(ev[3].event.balance.cancelled, 5000);
  // Nothing is left: a further shipment is refused.
  w.Publish(Shipped("o-part", "s3", 1));
  ASSERT_TRUE(w.Expect("o-part",
                       {K::kAuthorized, K::kCaptured, K::kCaptured, K::kCancelled, K::kRejected}));
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, CaptureBeforeAuthorizationWaitsForIt) {
  World w;
  w.Publish(Purchase("o-early", 4000));
  w.Publish(Shipped("o-early", "s1", 4000));  // before the payer approved
  ASSERT_TRUE(w.Expect("o-early", {K::kAuthorized, K::kCaptured}));
  EXPECT_EQ(w.Distinct("o-early")[1].event.caused_by_event_id, "o-early:ship-s1");
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, CancelBeforeAuthorizationAborts) {
  World w;
  w.Publish(Purchase("o-abort", 4000, "+4799999985"));  // the payer never decides
  // Wait until payorchd has asked the payer (the authorization exists at PayEx).
  ASSERT_TRUE(kit::WaitFor(
      [&] { return w.sim().Admin("GET", "/admin/payments").body.find("+47****9985") != std::string::npos ||
                   w.sim().Admin("GET", "/admin/payments").body.find("AwaitingActivity") != std::string::npos; },
      20s));
  w.Publish(Cancelled("o-abort", "customer changed their mind"));
  ASSERT_TRUE(w.Expect("o-abort", {K::kAuthorizationFailed, K::kAborted}));
  auto ev = w.Distinct("o-abort");
  EXPECT_EQ(Code(ev[0]), "aborted");
  EXPECT_EQ(ev[1].event.caused_by_event_id, "o-abort:cancel");
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, CancelAfterAuthorizationReleasesTheMoney) {
  World w;
  w.Publish(Purchase("o-cancel", 6000));
  ASSERT_TRUE(w.Expect("o-cancel", {K::kAuthorized}));
  w.Publish(Cancelled("o-cancel"));
  ASSERT_TRUE(w.Expect("o-cancel", {K::kAuthorized, K::kCancelled}));
  EXPECT_EQ(w.Distinct("o-cancel")[1].event.amount, 6000);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, RefundsReverseCapturedMoney) {
  World w;
  w.Publish(Purchase("o-refund", 8000));
  ASSERT_TRUE(w.Expect("o-refund", {K::kAuthorized}));
  w.Publish(Shipped("o-refund", "s1", 8000));
  ASSERT_TRUE(w.Expect("o-refund", {K::kAuthorized, K::kCaptured}));
  w.Publish(Refund("o-refund", "r1", 3000));
  // More than what is left once r1 is reversed: refused at once, even while r1 is
  // still on its way (its amount is reserved), so it may be answered first.
  w.Publish(Refund("o-refund", "r2", 6000));
  ASSERT_TRUE(w.WaitCount("o-refund", 4));
  std::map<std::string, kit::Received> by_cause;
  for (const auto& r : w.Distinct("o-refund")) by_cause[r.event.caused_by_event_id] = r;
  EXPECT_EQ(by_cause["o-refund:refund-r1"].event.kind, K::kReversed);
  EXPECT_EQ(by_cause["o-refund:refund-r1"].event.refund_id, "r1");
  EXPECT_EQ(by_cause["o-refund:refund-r1"].event.balance.reversed, 3000);
  EXPECT_EQ(by_cause["o-refund:refund-r2"].event.kind, K::kRejected);
  EXPECT_EQ(Code(by_cause["o-refund:refund-r2"]), "amount_exceeds_remaining");
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, RejectsOfEachKind) {
  World w;
  w.Publish(Shipped("o-unknown", "s1", 100));  // no purchase
  auto bad_amount = Purchase("o-bad-amount", 0);
  w.Publish(bad_amount);
  w.Publish(Purchase("o-bad-msisdn", 100, "+1555123"));
  auto bad_currency = Purchase("o-bad-currency", 100);
  std::get<domain::PurchaseRequested>(bad_currency.kind).currency = "SEK";
  w.Publish(bad_currency);
  w.Publish(Purchase("o-dup", 1000));
  auto second = Purchase("o-dup", 1000);
  second.event_id = "o-dup:purchase-again";
  w.Publish(second);
  w.Publish(Shipped("o-dup", "s1", 5000));  // more than the order

  ASSERT_TRUE(w.Expect("o-unknown", {K::kRejected}));
  EXPECT_EQ(Code(w.Distinct("o-unknown")[0]), "unknown_order");
  ASSERT_TRUE(w.Expect("o-bad-amount", {K::kRejected}));
  EXPECT_EQ(Code(w.Distinct("o-bad-amount")[0]), "invalid_amount");
  ASSERT_TRUE(w.Expect("o-bad-msisdn", {K::kRejected}));
  EXPECT_EQ(Code(w.Distinct("o-bad-msisdn")[0]), "invalid_msisdn");
  ASSERT_TRUE(w.Expect("o-bad-currency", {K::kRejected}));
  EXPECT_EQ(Code(w.Distinct("o-bad-currency")[0]), "invalid_currency");
  ASSERT_TRUE(w.WaitCount("o-dup", 3));
  std::map<std::string, std::string> by_cause;
  for (const auto& r : w.Distinct("o-dup")) by_cause[r.event.caused_by_event_id] = Code(r);
  EXPECT_EQ(by_cause["o-dup:purchase-again"], "duplicate_purchase");
  EXPECT_EQ(by_cause["o-dup:ship-s1"], "amount_exceeds_remaining");
  EXPECT_TRUE(w.SequencesSound());
}

TEST(E2e, MoreRejectsAfterTheStateMovedOn) {
  World w;
  auto bad_vat = Purchase("o-vat", 100);
  std::get<domain::PurchaseRequested>(bad_vat.kind).vat_amount = 200;
  w.Publish(bad_vat);
  w.Publish(Purchase("o-state", 10000));
  ASSERT_TRUE(w.Expect("o-state", {K::kAuthorized}));
  w.Publish(Msisdn("o-state", "+4791234599"));  // it already has one
  w.Publish(Shipped("o-state", "s1", 1000));
  ASSERT_TRUE(w.WaitCount("o-state", 3));
  auto again = Shipped("o-state", "s1", 1000);  // the same shipment id, a new event
  again.event_id = "o-state:ship-s1-again";
  w.Publish(again);
  ASSERT_TRUE(w.WaitCount("o-state", 4));
  w.Publish(Cancelled("o-state"));
  ASSERT_TRUE(w.WaitCount("o-state", 5));
  w.Publish(Shipped("o-state", "s2", 1000));  // after the cancellation
  ASSERT_TRUE(w.WaitCount("o-state", 6));

  ASSERT_TRUE(w.Expect("o-vat", {K::kRejected}));
  EXPECT_EQ(Code(w.Distinct("o-vat")[0]), "invalid_vat_amount");
  std::map<std::string, kit::Received> by_cause;
  for (const auto& r : w.Distinct("o-state")) by_cause[r.event.caused_by_event_id] = r;
  EXPECT_EQ(Code(by_cause["o-state:msisdn"]), "msisdn_already_provided");
  EXPECT_EQ(by_cause["o-state:ship-s1"].event.kind, K::kCaptured);
  EXPECT_EQ(Code(by_cause["o-state:ship-s1-again"]), "duplicate_shipment");
  EXPECT_EQ(by_cause["o-state:cancel"].event.kind, K::kCancelled);
  EXPECT_EQ(by_cause["o-state:cancel"].event.amount, 9000);
  const std::string after_cancel = Code(by_cause["o-state:ship-s2"]);
  EXPECT_TRUE(after_cancel == "order_cancelled" || after_cancel == "payment_closed") << after_cancel;
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, DuplicateEventsAreAnsweredOnce) {
  World w;
  auto purchase = Purchase("o-twice", 2000);
  w.Publish(purchase);
  w.Publish(purchase);
  ASSERT_TRUE(w.Expect("o-twice", {K::kAuthorized}));
  w.Publish(purchase);  // long after: the inbox has it
  auto ship = Shipped("o-twice", "s1", 2000);
  w.Publish(ship);
  ASSERT_TRUE(w.Expect("o-twice", {K::kAuthorized, K::kCaptured}));
  // Nothing else comes: every copy was acked and ignored.
  ASSERT_TRUE(kit::WaitFor([&] { return w.daemon().Metric(
      "payorch_events_consumed_total{kind=\"purchase_requested\",result=\"duplicate\"}").value_or(0) >= 2; }, 10s))
      << w.daemon().Get("/metrics").body;
  EXPECT_EQ(w.bus().EventsFor("o-twice").size(), 2u);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, MalformedMessagesGoToTheDeadLetterQueueWithTheirReason) {
  World w;
  w.bus().PublishRaw("order.purchase_requested", "\xff\x01garbage", "application/x-protobuf", "m-1");
  w.bus().PublishRaw("order.purchase_requested", "{}", "text/plain", "m-2");
  bus::Admin admin(w.bus_config(), "e2e dlq check");
  ASSERT_TRUE(kit::WaitFor(
      [&] { return admin.QueueDepth(w.bus_config().topology.dead_letter_queue).value_or(0) >= 2; },
      20s));
  std::set<std::string> reasons;
  for (int i = 0; i < 2; ++i) {
    auto m = admin.Take(w.bus_config().topology.dead_letter_queue);
    ASSERT_TRUE(m);
    auto reason = bus::HeaderString(m->properties.headers, "x-payorch-error");
    ASSERT_TRUE(reason);
    reasons.insert(*reason);
  }
  EXPECT_TRUE(reasons.count("malformed_body")) << *reasons.begin();
  EXPECT_TRUE(reasons.count("unsupported_content_type"));
  // The daemon keeps working after them.
  w.Publish(Purchase("o-after-garbage", 1000));
  ASSERT_TRUE(w.Expect("o-after-garbage", {K::kAuthorized}));
}

TEST(E2e, LostCallbacksAreCoveredByPolling) {
  World w({"--set", "callbacks.lost_rate=1"});
  w.Publish(Purchase("o-nocb", 1500));
  ASSERT_TRUE(w.Expect("o-nocb", {K::kAuthorized}));
  EXPECT_EQ(w.daemon().Metric("payorch_callbacks_total{status=\"200\"}").value_or(0), 0);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, DuplicatedCallbacksChangeNothing) {
  World w({"--set", "callbacks.duplicate_rate=1"});
  w.Publish(Purchase("o-dupcb", 1500));
  ASSERT_TRUE(w.Expect("o-dupcb", {K::kAuthorized}));
  w.Publish(Shipped("o-dupcb", "s1", 1500));
  ASSERT_TRUE(w.Expect("o-dupcb", {K::kAuthorized, K::kCaptured}));
  ASSERT_TRUE(kit::WaitFor(
      [&] { return w.daemon().Metric("payorch_callbacks_total{status=\"200\"}").value_or(0) >= 2; },
      10s));
  EXPECT_EQ(w.bus().EventsFor("o-dupcb").size(), 2u);
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, CallbacksWithABadTokenAreRefusedAndCauseNoCall) {
  World w;
  w.Publish(Purchase("o-forged", 1500, "+4799999985"));
  ASSERT_TRUE(kit::WaitFor([&] {
    return w.sim().Admin("GET", "/admin/payments").body.find("AwaitingActivity") != std::string::npos;
  }, 20s));
  auto post = [&](const std::string& target, const std::string& body) {
    return kit::HttpCall("127.0.0.1", w.daemon().http_port(), "POST", target, body);
  };
  EXPECT_EQ(post("/callbacks/payex/o-forged?token=forged", "{}").status, 401);
  EXPECT_EQ(post("/callbacks/payex/o-forged", "{}").status, 401);
  EXPECT_EQ(kit::HttpCall("127.0.0.1", w.daemon().http_port(), "GET",
                          "/callbacks/payex/o-forged").status, 405);
  EXPECT_EQ(w.daemon().Get("/healthz").status, 200);
  EXPECT_EQ(w.daemon().Get("/readyz").status, 200);
  EXPECT_EQ(w.daemon().Metric("payorch_callbacks_total{status=\"401\"}").value_or(0), 2);
}

TEST(E2e, PayexFailuresAndInDoubtOutcomesNeverPayTwice) {
  // The capture takes effect and the connection drops; the authorization POST gets a
  // 502 once; a GET answers 503 once: all resolved by reading, nothing twice.
  World w({"--fault", "capture:drop_after,count=1", "--fault", "create:error,status=503,count=1",
           "--fault", "get:error,status=503,count=2", "--fault", "reverse:hang,count=1,latency=3s"});
  w.Publish(Purchase("o-doubt", 9000));
  ASSERT_TRUE(w.Expect("o-doubt", {K::kAuthorized}));
  w.Publish(Shipped("o-doubt", "s1", 9000));
  ASSERT_TRUE(w.Expect("o-doubt", {K::kAuthorized, K::kCaptured}));
  w.Publish(Refund("o-doubt", "r1", 1000));
  ASSERT_TRUE(w.Expect("o-doubt", {K::kAuthorized, K::kCaptured, K::kReversed}));
  EXPECT_TRUE(w.LedgerOk());
  EXPECT_GE(w.daemon().Metric("payorch_retries_total{operation=\"capture\",reason=\"in_doubt\"}").value_or(0), 1)
      << w.daemon().Get("/metrics").body;
}

TEST(E2e, PollingKeepsGoingUnderSteadyLoad) {
  // No callback ever arrives: the polled orders depend on the one due-timer while
  // other orders keep commits coming several times a second.
  World w({"--set", "callbacks.lost_rate=1", "--set", "payer.approve_delay=60s"});
  for (int i = 0; i < 40; ++i) {
    w.Publish(Purchase("o-poll-" + std::to_string(i), 1000 + i));
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // the load's pace
  }
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(w.Expect("o-poll-" + std::to_string(i), {K::kAuthorized}));
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, DrainTellsTheStoreThatQueuedCallsWereNeverSent) {
  // One PayEx call at a time and a slow PayEx: SIGTERM finds calls committed as in
  // flight that never left. They are recorded as not sent (transient), so the next
  // start retries them at once instead of treating them as in doubt.
  World w({"--fault", "any:latency,latency=150ms"},
          {"engine.max_concurrent_calls=1"});
  for (int i = 0; i < 6; ++i) w.Publish(Purchase("o-drain-" + std::to_string(i), 1000 + i));
  ASSERT_TRUE(kit::WaitFor([&] { return w.daemon().Metric("payorch_payex_calls_queued").value_or(0) >= 2; }, 20s));
  ASSERT_EQ(w.daemon().Term(), 0) << w.daemon().LogTail();
  {
    store::Options so;
    so.create_if_missing = false;
    so.quick_check = false;
    store::Store s = store::Store::Open(w.daemon().store_path(), so);
    EXPECT_TRUE(s.PaymentsWithCallsInFlight().empty());
    EXPECT_TRUE(s.UnfinishedOperations().empty());
    int transient = 0;
    for (int i = 0; i < 6; ++i)
      for (const auto& op : s.Operations("o-drain-" + std::to_string(i))) transient += op.result == "transient";
    EXPECT_GE(transient, 1);
  }
  w.daemon().Start();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(w.Expect("o-drain-" + std::to_string(i), {K::kAuthorized}));
  EXPECT_TRUE(w.LedgerOk());
}

TEST(E2e, TheRateLimitTowardPayExHolds) {
  // 20 requests per second at most; 20 instant approvals need 40 PayEx requests.
  World w({"--time-scale", "1"}, {"engine.payex_rate_limit=20"});
  for (int i = 0; i < 20; ++i) w.Publish(Purchase("o-rate-" + std::to_string(i), 100 + i, "+4799999986"));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(w.Expect("o-rate-" + std::to_string(i), {K::kAuthorized}));
  // The simulator's clock (time scale 1): no second holds more than the rate plus
  // the bucket's burst of one (and one for rounding at the window's edge).
  std::string body = w.sim().Admin("GET", "/admin/requests").body;
  std::vector<int64_t> at;
  for (size_t pos = 0; (pos = body.find("\"atMs\":", pos)) != std::string::npos;) {
    pos += 7;
    at.push_back(std::stoll(body.substr(pos, 20)));
  }
  ASSERT_GE(at.size(), 40u) << body.substr(0, 300);
  std::sort(at.begin(), at.end());
  size_t most = 0;
  for (size_t i = 0, j = 0; j < at.size(); ++j) {
    while (at[j] - at[i] >= 1000) ++i;
    most = std::max(most, j - i + 1);
  }
  EXPECT_LE(most, 22u) << "requests within one second";
}

TEST(E2e, JsonLogsCarryTheOrderAndNeverASecretOrAFullMsisdn) {
  World w({}, {"log.format=json", "log.level=debug"});
  w.Publish(Purchase("o-logs", 1000, "+4791234567"));
  ASSERT_TRUE(w.Expect("o-logs", {K::kAuthorized}));
  w.Publish(Shipped("o-logs", "s1", 1000));
  ASSERT_TRUE(w.Expect("o-logs", {K::kAuthorized, K::kCaptured}));
  kit::HttpCall("127.0.0.1", w.daemon().http_port(), "POST",
                "/callbacks/payex/o-logs?token=not-the-token", "{}");
  ASSERT_EQ(w.daemon().Term(), 0);
  std::ifstream log(w.daemon().log_path());
  std::string line;
  int lines = 0, payment_lines = 0;
  while (std::getline(log, line)) {
    ++lines;
    EXPECT_TRUE(line.size() > 2 && line.front() == '{' && line.back() == '}') << line;
    EXPECT_NE(line.find("\"event\":"), std::string::npos) << line;
    EXPECT_EQ(line.find("payex-sim-token"), std::string::npos) << line;
    EXPECT_EQ(line.find(kit::kCallbackSecret), std::string::npos) << line;
    EXPECT_EQ(line.find("not-the-token"), std::string::npos) << line;
    EXPECT_EQ(line.find("91234567"), std::string::npos) << line;
    if (line.find("\"event\":\"payment.decided\"") != std::string::npos) {
      ++payment_lines;
      EXPECT_NE(line.find("\"order_id\":\"o-logs\""), std::string::npos) << line;
    }
  }
  EXPECT_GT(lines, 10);
  EXPECT_GE(payment_lines, 4);
}

TEST(E2e, ASecondPayorchdOnTheSameStoreRefusesToStart) {
  World w;
  kit::Daemon second(w.daemon().options());
  EXPECT_THROW(second.Start(10s), std::runtime_error);
  EXPECT_EQ(second.process().Wait(10s), 1);
  EXPECT_NE(second.LogTail(5).find("another payorchd (pid " +
                                   std::to_string(w.daemon().process().pid()) + ")"),
            std::string::npos)
      << second.LogTail(5);
  // The first one is untouched.
  w.Publish(Purchase("o-first", 1000));
  ASSERT_TRUE(w.Expect("o-first", {K::kAuthorized}));
}

// Damages the index page of a drained store that payorchd does not read to start
// (history's index), as a disk might.
void DamageHistoryIndex(const std::string& path) {
  int64_t root = 0, page_size = 0;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto one = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK);
    const int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return v;
  };
  root = one("SELECT rootpage FROM sqlite_schema WHERE name = 'history_order'");
  page_size = one("PRAGMA page_size");
  sqlite3_close(db);
  ASSERT_GT(root, 1);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp((root - 1) * page_size);
  const std::string garbage(static_cast<size_t>(page_size / 2), '\xA5');
  f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
}

// Starts payorchd on `options` and returns its exit code and its log's tail.
std::pair<int, std::string> RunUntilExit(const kit::DaemonOptions& options) {
  kit::Daemon d(options);
  try {
    d.Start(20s);
  } catch (const std::exception&) {
    // It may stop before it writes its ready file.
  }
  const int code = d.process().Wait(20s).value_or(-1);
  return {code, d.LogTail(20)};
}

// The integrity check: a small store is checked before payorchd serves, a big one
// (here: quick_check_first_mib = 0) beside the engine while it serves. Either way
// damage in a page payorchd did not need to start stops it (exit 1) saying what,
// and is recorded: every later start refuses until the store is restored.
TEST(E2e, AStoreDamagedWhereTheStartDoesNotReadStopsPayorchdAndEveryLaterStart) {
  for (const bool beside : {false, true}) {
    SCOPED_TRACE(beside ? "checked beside the engine" : "checked before serving");
    World w({}, beside ? std::vector<std::string>{"store.quick_check_first_mib=0"}
                       : std::vector<std::string>{});
    w.Publish(Purchase("o-damage", 1000));
    ASSERT_TRUE(w.Expect("o-damage", {K::kAuthorized}));
    ASSERT_EQ(w.daemon().Term().value_or(-1), 0) << w.daemon().LogTail();
    const std::string path = w.daemon().store_path();
    DamageHistoryIndex(path);

    auto [code, log] = RunUntilExit(w.daemon().options());
    EXPECT_EQ(code, 1) << log;
    EXPECT_NE(log.find("quick_check found damage"), std::string::npos) << log;
    if (beside) {
      EXPECT_NE(log.find("store.damaged"), std::string::npos) << log;
      EXPECT_NE(log.find("engine.stopped"), std::string::npos) << log;
    }
    EXPECT_TRUE(std::filesystem::exists(path + ".damaged"));

    auto [again, again_log] = RunUntilExit(w.daemon().options());
    EXPECT_EQ(again, 1) << again_log;
    EXPECT_NE(again_log.find("an earlier integrity check found damage"), std::string::npos)
        << again_log;
    EXPECT_NE(again_log.find(path + ".damaged"), std::string::npos) << again_log;
  }
}

TEST(E2e, SigtermDrainsAndExitsZero) {
  World w;
  w.Publish(Purchase("o-term", 1000));
  ASSERT_TRUE(w.Expect("o-term", {K::kAuthorized}));
  auto code = w.daemon().Term();
  ASSERT_TRUE(code.has_value()) << "payorchd did not exit after SIGTERM";
  EXPECT_EQ(*code, 0) << w.daemon().LogTail();
  EXPECT_NE(w.daemon().LogTail(5).find("engine.stopped"), std::string::npos);
}

}  // namespace
}  // namespace payorch::e2e

namespace payorch::e2e {
namespace {

// payorchd is killed with SIGKILL three times in the middle of a busy run (PayEx
// calls, commits and publishes in flight, some PayEx answers lost) and restarted on
// the same store: every order event still gets exactly one answer by id, every
// order ends where it should, and PayEx never applied an effect twice.
TEST(E2eKill, KilledThreeTimesMidRunEveryEventAnsweredOnceNothingPaidTwice) {
  World w({"--fault", "capture:drop_after,rate=0.1", "--fault", "authorize:drop_after,rate=0.1",
           "--set", "payer.approve_delay=20s"});
  constexpr int kOrders = 150;
  std::vector<domain::OrderEvent> published;
  auto publish = [&](const domain::OrderEvent& e) {
    w.Publish(e);
    published.push_back(e);
  };
  auto order = [](int i) { return "k-" + std::to_string(i); };
  for (int i = 0; i < kOrders; ++i) {
    publish(Purchase(order(i), 10000 + i));
    publish(Shipped(order(i), "s1", 4000));  // waits for the authorization
    if (i % 3 == 0) publish(Shipped(order(i), "s2", 6000 + i));
    if (i % 3 == 1) publish(Cancelled(order(i)));
  }
  for (int round = 0; round < 3; ++round) {
    // Kill once answers are flowing: calls, commits and publishes are in flight.
    size_t at = published.size() * (round + 1) / 5;
    kit::WaitFor([&] { return w.bus().Count() >= at; }, 30s);
    w.daemon().Kill();
    w.daemon().Start();
  }
  // Every published event has exactly one answer (by id), whatever was replayed.
  auto answered = [&](const std::vector<kit::Received>& all) {
    std::map<std::string, std::set<std::string>> by_cause;
    for (const auto& r : all) by_cause[r.event.caused_by_event_id].insert(r.event.event_id);
    for (const auto& e : published)
      if (by_cause[e.event_id].size() != 1) return false;
    return true;
  };
  ASSERT_TRUE(w.bus().WaitUntil(answered, 120s)) << w.daemon().LogTail(40);
  std::map<std::string, std::set<std::string>> by_cause;
  for (const auto& r : w.bus().Events()) by_cause[r.event.caused_by_event_id].insert(r.event.event_id);
  for (const auto& e : published) EXPECT_EQ(by_cause[e.event_id].size(), 1u) << e.event_id;
  EXPECT_TRUE(w.SequencesSound());
  // What each restart found (for the record: calls in doubt, unsent events).
  std::ifstream log(w.daemon().log_path());
  std::string line, resumed;
  while (std::getline(log, line))
    if (line.find("event=engine.resumed") != std::string::npos)
      resumed += line.substr(line.find("calls_in_doubt")) + "; ";
  RecordProperty("resumed", resumed);
  std::cout << "restarts found: " << resumed << "\n";
  for (int i = 0; i < kOrders; ++i) {
    auto ev = w.Distinct(order(i));
    ASSERT_FALSE(ev.empty());
    const domain::Balance& end = ev.back().event.balance;
    if (i % 3 == 1 && ev[0].event.kind == K::kAuthorizationFailed) {
      // Cancelled before the payer approved: aborted, nothing captured.
      EXPECT_EQ(Code(ev[0]), "aborted") << Describe(ev);
      EXPECT_EQ(ev.back().event.kind, K::kAborted) << Describe(ev);
      EXPECT_EQ(end.captured, 0) << Describe(ev);
      continue;
    }
    EXPECT_EQ(ev[0].event.kind, K::kAuthorized) << Describe(ev);
    EXPECT_EQ(end.captured, i % 3 == 0 ? 10000 + i : 4000) << Describe(ev);
    if (i % 3 == 1) {
      EXPECT_EQ(end.cancelled, 10000 + i - 4000) << Describe(ev);
    }
  }
  EXPECT_TRUE(w.LedgerOk());
}

}  // namespace
}  // namespace payorch::e2e

namespace payorch::e2e {
namespace {

struct CliRun {
  int code = -1;
  std::string out;
};

// payorchd as a process, for its command line and start-up errors.
CliRun Payorchd(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::string log = (std::filesystem::temp_directory_path() / ("payorchd-cli-" + kit::RandomSuffix())).string();
  std::vector<std::string> argv = {kit::FindBinary("payorchd"), "--config",
                                   std::string(PAYORCH_SOURCE_DIR) + "/config/payorch.toml"};
  argv.insert(argv.end(), args.begin(), args.end());
  kit::Process p = kit::Process::Start(argv, env, log);
  CliRun r;
  r.code = p.Wait(std::chrono::seconds(30)).value_or(-1);
  std::ifstream f(log);
  r.out.assign(std::istreambuf_iterator<char>(f), {});
  std::filesystem::remove(log);
  return r;
}

TEST(PayorchdCli, CheckConfigPrintsEverySettingWithSecretsMasked) {
  CliRun r = Payorchd({"--check-config"}, kit::DaemonEnvironment());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("engine.commit_delay="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("callback_secret=***"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kit::kCallbackSecret), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("payex-sim-token"), std::string::npos) << r.out;
}

TEST(PayorchdCli, BadSettingsAndMissingSecretsExitTwoNamingThem) {
  CliRun bad = Payorchd({"--set", "payments.first_poll=soon"}, kit::DaemonEnvironment());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("payments.first_poll"), std::string::npos) << bad.out;
  CliRun unknown = Payorchd({"--set", "engine.max_batchez=3"}, kit::DaemonEnvironment());
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.out.find("max_batch"), std::string::npos) << unknown.out;
  CliRun no_secret = Payorchd({}, {"PAYORCH_PAYEX_TOKEN=x", "PAYORCH_CALLBACK_SECRET="});
  EXPECT_EQ(no_secret.code, 2);
  EXPECT_NE(no_secret.out.find("PAYORCH_CALLBACK_SECRET"), std::string::npos) << no_secret.out;
  CliRun usage = Payorchd({"--frobnicate"}, kit::DaemonEnvironment());
  EXPECT_EQ(usage.code, 2);
  EXPECT_NE(usage.out.find("--help"), std::string::npos) << usage.out;
  CliRun help = Payorchd({"--help"}, {});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("PAYORCH_CALLBACK_SECRET"), std::string::npos) << help.out;
}

TEST(PayorchdCli, AStoreThatCannotBeOpenedExitsOneSayingWhy) {
  std::string dir = (std::filesystem::temp_directory_path() / ("payorchd-bad-" + kit::RandomSuffix())).string();
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/payorch.db");
    f << "this is not a database, it is a shopping list: milk, eggs, and a lot more text to fill a page";
  }
  CliRun r = Payorchd({"--set", "store.path=" + dir + "/payorch.db", "--set", "http.port=0",
                    "--set", "admin.port=0", "--set", "bus.url=amqp://guest:guest@127.0.0.1:1/"},
                   kit::DaemonEnvironment());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(dir + "/payorch.db"), std::string::npos) << r.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace payorch::e2e
