// The store's additions for payorchctl: schema version 2 (replay records) applied
// to a version 1 file without touching its data, replay records round trip, and
// the operator's payment list with its filters.
#include <gmock/gmock.h>
#include <sqlite3.h>

#include "ctl_test_util.hpp"

namespace payorch::ctl::testing {
namespace {

std::string One(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    out = t ? t : "NULL";
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

void Exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    ADD_FAILURE() << sql << ": " << (err ? err : "?");
    sqlite3_free(err);
  }
  sqlite3_close(db);
}

TEST(StoreReplaysTest, MigratesAVersionOneStoreAndKeepsItsData) {
  TempDir dir;
  const std::string path = dir.File("payorch.db");
  {
    auto store = store::Store::Open(path);
    DecideAndCommit(store, Purchase("order-1", "evt-1", 1000), kNow);
  }
  // What a version 1 file looks like: no replay tables.
  Exec(path,
       "DROP TABLE meta; ALTER TABLE operations DROP COLUMN latency_us; DROP TABLE phase_counts;"
       " DROP INDEX payments_doubt; DROP TABLE replay_messages;"
       " DROP TABLE replays; PRAGMA user_version = 1;");
  ASSERT_EQ(One(path, "PRAGMA user_version"), "1");

  auto store = store::Store::Open(path);
  EXPECT_EQ(One(path, "PRAGMA user_version"), std::to_string(store::Store::kSchemaVersion));
  EXPECT_EQ(store::Store::kSchemaVersion, 5);
  EXPECT_TRUE(store.HasEvent("evt-1"));
  ASSERT_TRUE(store.LoadPayment("order-1").has_value());
  EXPECT_TRUE(store.Replays(10).empty());
}

TEST(StoreReplaysTest, AStoreThatWouldNeedAMigrationIsRefusedWhenMigrationIsOff) {
  // payorchctl's replay opens the store for writing with migrate off: a newer
  // payorchctl must not migrate the store under a running, older payorchd.
  TempDir dir;
  const std::string path = dir.File("payorch.db");
  {
    auto store = store::Store::Open(path);
    DecideAndCommit(store, Purchase("order-1", "evt-1", 1000), kNow);
  }
  Exec(path,
       "DROP TABLE meta; ALTER TABLE operations DROP COLUMN latency_us; DROP TABLE phase_counts;"
       " DROP INDEX payments_doubt; DROP TABLE replay_messages;"
       " DROP TABLE replays; PRAGMA user_version = 1;");
  store::Options o;
  o.migrate = false;
  try {
    store::Store::Open(path, o);
    FAIL() << "opened (and migrated?) a version 1 store";
  } catch (const store::StoreError& e) {
    EXPECT_EQ(e.code(), store::ErrorCode::kTooOld) << e.what();
    EXPECT_NE(std::string(e.what()).find("only payorchd migrates"), std::string::npos) << e.what();
  }
  EXPECT_EQ(One(path, "PRAGMA user_version"), "1");
  // Its own schema opens for writing as ever.
  auto fresh = store::Store::Open(dir.File("other.db"));
  fresh = store::Store::Open(dir.File("other.db"), o);
  EXPECT_TRUE(fresh.Replays(10).empty());
}

TEST(StoreReplaysTest, RecordsReplaysAndTheirMessages) {
  TempDir dir;
  auto store = store::Store::Open(dir.File("payorch.db"));
  store::ReplayRecord a;
  a.who = "alice";
  a.started_at = kNow;
  a.reason = "parser fixed";
  a.filter = "error=malformed_body";
  a.queue = "payorch.orders.dead";
  ASSERT_TRUE(store.StartReplay(a));
  EXPECT_GT(a.id, 0);
  EXPECT_EQ(a.outcome, "running");
  std::vector<store::ReplayedMessage> first = {
      {"m1", "evt-1", "order-1", "order.shipped", kNow + 1s},
      {"h-00000000abcd", "", "", "order.cancelled", kNow + 2s}};
  ASSERT_TRUE(store.AddReplayedMessages(a.id, first));
  std::vector<store::ReplayedMessage> second = {
      {"m3", "evt-3", "order-3", "order.refund_requested", kNow + 3s}};
  ASSERT_TRUE(store.AddReplayedMessages(a.id, second));

  auto running = store.LoadReplay(a.id);
  ASSERT_TRUE(running);
  EXPECT_EQ(running->outcome, "running");
  EXPECT_FALSE(running->finished_at);
  EXPECT_EQ(running->message_count, 3);

  ASSERT_TRUE(store.FinishReplay(a.id, "completed", "", kNow + 4s));
  store::ReplayRecord b;
  b.who = "bob";
  b.started_at = kNow + 10s;
  b.reason = "retry";
  b.filter = "all";
  b.queue = "q";
  ASSERT_TRUE(store.StartReplay(b));

  auto all = store.Replays(10);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].who, "bob");  // newest first
  EXPECT_EQ(all[1].who, "alice");
  EXPECT_EQ(all[1].outcome, "completed");
  EXPECT_EQ(all[1].finished_at, kNow + 4s);
  EXPECT_EQ(all[1].reason, "parser fixed");
  EXPECT_EQ(all[1].filter, "error=malformed_body");
  EXPECT_EQ(store.Replays(1).size(), 1u);

  auto messages = store.ReplayMessages(a.id);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].message_id, "m1");
  EXPECT_EQ(messages[1].event_id, "");
  EXPECT_EQ(messages[2].routing_key, "order.refund_requested");
  EXPECT_EQ(messages[2].replayed_at, kNow + 3s);

  EXPECT_FALSE(store.LoadReplay(999));
  EXPECT_FALSE(store.AddReplayedMessages(999, first));
  EXPECT_FALSE(store.FinishReplay(999, "completed", "", kNow));
}

TEST(StoreReplaysTest, ListsPaymentsWithFilters) {
  TempDir dir;
  auto store = store::Store::Open(dir.File("payorch.db"));
  DecideAndCommit(store, Purchase("order-1", "evt-1", 1000), kNow);
  DecideAndCommit(store, Purchase("order-2", "evt-2", 1000, ""), kNow + 1h);
  DecideAndCommit(store, Shipped("order-3", "evt-3", 10), kNow + 2h);

  store::PaymentFilter all;
  auto payments = store.ListPayments(all);
  ASSERT_EQ(payments.size(), 3u);
  EXPECT_EQ(payments[0].order_id, "order-1");
  EXPECT_EQ(payments[0].phase, "creating");
  EXPECT_EQ(payments[0].updated_at, kNow);
  EXPECT_TRUE(payments[0].in_flight_call.has_value());
  EXPECT_EQ(payments[2].phase, "new");

  store::PaymentFilter phase;
  phase.phase = domain::Phase::kNew;
  EXPECT_EQ(store.ListPayments(phase).size(), 1u);
  store::PaymentFilter older;
  older.updated_before = kNow + 30min;
  ASSERT_EQ(store.ListPayments(older).size(), 1u);
  store::PaymentFilter doubt;
  doubt.in_doubt = true;
  EXPECT_TRUE(store.ListPayments(doubt).empty());
  store::PaymentFilter limited;
  limited.limit = 2;
  EXPECT_EQ(store.ListPayments(limited).size(), 2u);
}

}  // namespace
}  // namespace payorch::ctl::testing
