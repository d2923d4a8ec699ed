#include "store/store.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "domain/serialize.hpp"
#include "test_util.hpp"

namespace payorch::store {
namespace {

using domain::FromMillis;
using domain::Phase;
using domain::Time;
using testing::FullCall;
using testing::FullEvent;
using testing::FullPayment;
using ::testing::HasSubstr;
using testing::TempDir;

const Time kAt = FromMillis(1'700'000'500'000);

// --- raw SQLite access, to look at the file independently of Store ----------

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
      sqlite3_free(err);
    }
  }
  std::vector<std::string> Column(const std::string& sql, int col = 0) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
      out.emplace_back(t ? t : "NULL");
    }
    sqlite3_finalize(s);
    return out;
  }
  std::string One(const std::string& sql) {
    auto c = Column(sql);
    return c.empty() ? "" : c[0];
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Opens and expects a StoreError of `code` whose message names the path.
StoreError ExpectOpenFails(const std::string& path, ErrorCode code, Options options = {}) {
  try {
    Store::Open(path, options);
  } catch (const StoreError& e) {
    EXPECT_EQ(ErrorCodeName(e.code()), std::string(ErrorCodeName(code))) << e.what();
    EXPECT_THAT(e.what(), HasSubstr(path));
    return e;
  }
  ADD_FAILURE() << "Open(" << path << ") succeeded";
  return StoreError(code, "");
}

// A decision for `order`: the payment after it, one inbox event, one outbox event
// of `sequence`, and one call.
Commit MakeCommit(const std::string& order, uint64_t sequence, std::optional<Phase> before) {
  Commit c;
  c.phase_before = before;
  c.after = FullPayment(order, static_cast<int64_t>(sequence));
  c.after.last_sequence = sequence;
  c.inbox_event_id = order + "-in-" + std::to_string(sequence);
  c.events.push_back(FullEvent(order, sequence));
  c.calls.push_back(FullCall(order, 100 + sequence));
  c.input_name = "order_event:shipped";
  c.note = "capture 5000 for shipment ship-" + std::to_string(sequence);
  c.at = kAt + std::chrono::seconds(sequence);
  return c;
}

class StoreTest : public ::testing::Test {
 protected:
  std::string Path() const { return dir_.File("payorch.db"); }
  TempDir dir_;
};

TEST_F(StoreTest, CreatesTheSchemaFromNothingAndReopens) {
  {
    Store store = Store::Open(Path());
    const Counts c = store.RowCounts(kAt);
    EXPECT_EQ(c.payments, 0);
    EXPECT_EQ(c.inbox, 0);
    EXPECT_EQ(c.outbox_unsent, 0);
  }
  RawDb raw(Path());
  EXPECT_EQ(raw.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(raw.One("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"),
            (std::vector<std::string>{"history", "inbox", "meta", "operations", "outbox", "payments",
                                      "phase_counts", "replay_messages", "replays",
                                      "sqlite_sequence"}));
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"
                       " ORDER BY name"),
            (std::vector<std::string>{"history_order", "operations_unfinished", "outbox_unsent",
                                      "payments_doubt", "payments_due", "payments_in_flight"}));
  // Reopening an up-to-date store migrates nothing and keeps working.
  Store again = Store::Open(Path());
  EXPECT_EQ(again.RowCounts(kAt).payments, 0);
}

TEST_F(StoreTest, MigratesAZeroLengthFile) {
  WriteFile(Path(), "");
  Store store = Store::Open(Path());
  RawDb raw(Path());
  EXPECT_EQ(raw.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
}

TEST_F(StoreTest, RoundTripsEveryTable) {
  Store store = Store::Open(Path());
  Commit c = MakeCommit("order-1", 1, std::nullopt);
  c.events.push_back(FullEvent("order-1", 2, 9));
  c.after.last_sequence = 2;
  ASSERT_TRUE(store.CommitOne(c)) << store.CommitOne(c).message;

  const auto loaded = store.LoadPayment("order-1");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(domain::EncodePayment(*loaded), domain::EncodePayment(c.after));
  EXPECT_FALSE(store.LoadPayment("order-2").has_value());

  EXPECT_TRUE(store.HasEvent("order-1-in-1"));
  EXPECT_FALSE(store.HasEvent("order-1-in-2"));

  const auto outbox = store.OutboxFor("order-1");
  ASSERT_EQ(outbox.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(domain::EncodePaymentEvent(outbox[i].event), domain::EncodePaymentEvent(c.events[i]));
    EXPECT_EQ(outbox[i].created_at, c.at);
    EXPECT_FALSE(outbox[i].sent_at.has_value());
  }
  EXPECT_LT(outbox[0].seq, outbox[1].seq);

  const auto ops = store.Operations("order-1");
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].order_id, "order-1");
  EXPECT_EQ(ops[0].call_id, 101u);
  EXPECT_EQ(ops[0].op_id, 2u);
  EXPECT_EQ(ops[0].kind, "capture");
  EXPECT_EQ(ops[0].payee_reference, "PR101");
  EXPECT_EQ(ops[0].amount, 5000);
  EXPECT_EQ(ops[0].status, "in_flight");
  EXPECT_EQ(ops[0].sent_at, c.at);
  EXPECT_FALSE(ops[0].finished_at.has_value());
  EXPECT_EQ(ops[0].result, "");
  EXPECT_FALSE(ops[0].latency_us.has_value());
  EXPECT_EQ(store.UnfinishedOperations().size(), 1u);

  const auto history = store.History("order-1");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].order_id, "order-1");
  EXPECT_EQ(history[0].at, c.at);
  EXPECT_EQ(history[0].input, "order_event:shipped");
  EXPECT_EQ(history[0].phase_before, "");
  EXPECT_EQ(history[0].phase_after, "authorized");
  EXPECT_EQ(history[0].note, c.note);

  // The columns the queries and operators use mirror the body.
  RawDb raw(Path());
  EXPECT_EQ(
      raw.Column("SELECT phase || ' ' || payment_id || ' ' || authorized || ' ' || captured"
                 " || ' ' || cancelled || ' ' || reversed || ' ' || due_at || ' ' ||"
                 " doubt_since || ' ' || in_flight_call FROM payments"),
      (std::vector<std::string>{"authorized " + c.after.payment_id + " 150001 50001 1001 2001 " +
                                std::to_string(domain::ToMillis(c.after.due_at)) + " " +
                                std::to_string(domain::ToMillis(c.after.doubt_since)) + " " +
                                std::to_string(static_cast<int64_t>(c.after.in_flight.call_id))}));
  EXPECT_EQ(raw.One("SELECT kind FROM outbox ORDER BY seq"), "reversal_failed");

  const Counts counts = store.RowCounts(c.after.due_at);
  EXPECT_EQ(counts.payments, 1);
  EXPECT_EQ(counts.payments_due, 1);
  EXPECT_EQ(counts.payments_in_flight, 1);
  EXPECT_EQ(counts.inbox, 1);
  EXPECT_EQ(counts.outbox_unsent, 2);
  EXPECT_EQ(counts.operations_unfinished, 1);
}

TEST_F(StoreTest, UpdatesThePaymentFinishesCallsAndAppendsHistory) {
  Store store = Store::Open(Path());
  ASSERT_TRUE(store.CommitOne(MakeCommit("order-1", 1, std::nullopt)));

  Commit next = MakeCommit("order-1", 2, Phase::kAuthorized);
  next.after.phase = Phase::kAborted;
  next.after.in_flight = {};
  next.inbox_event_id.clear();  // a PayEx result, not an order event
  next.finished = CallFinished{101, "success", 250};
  next.input_name = "payex_result";
  ASSERT_TRUE(store.CommitOne(next));

  const auto loaded = store.LoadPayment("order-1");
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(domain::EncodePayment(*loaded), domain::EncodePayment(next.after));
  EXPECT_EQ(store.RowCounts(kAt).payments, 1);
  EXPECT_EQ(store.RowCounts(kAt).inbox, 1);

  const auto ops = store.Operations("order-1");
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].call_id, 101u);
  EXPECT_EQ(ops[0].status, "finished");
  EXPECT_EQ(ops[0].finished_at, next.at);
  EXPECT_EQ(ops[0].result, "success");
  EXPECT_EQ(ops[0].latency_us, 250);
  EXPECT_EQ(ops[1].call_id, 102u);
  EXPECT_EQ(ops[1].status, "in_flight");
  ASSERT_EQ(store.UnfinishedOperations().size(), 1u);
  EXPECT_EQ(store.UnfinishedOperations()[0].call_id, 102u);

  const auto history = store.History("order-1");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_LT(history[0].id, history[1].id);
  EXPECT_EQ(history[1].phase_before, "authorized");
  EXPECT_EQ(history[1].phase_after, "aborted");
  EXPECT_EQ(history[1].input, "payex_result");

  // A stale or repeated result changes nothing and is not an error.
  Commit stale = next;
  stale.events.clear();
  stale.calls.clear();
  stale.finished = CallFinished{101, "in_doubt", 9};
  ASSERT_TRUE(store.CommitOne(stale));
  EXPECT_EQ(store.Operations("order-1")[0].result, "success");
  stale.finished = CallFinished{999, "success", 9};
  ASSERT_TRUE(store.CommitOne(stale));
}

TEST_F(StoreTest, OutboxIsReadInCommitOrderAndMarkedSent) {
  Store store = Store::Open(Path());
  std::vector<Commit> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(MakeCommit("order-" + std::to_string(i), 1, {}));
  batch.push_back(MakeCommit("order-0", 2, Phase::kAuthorized));
  ASSERT_TRUE(store.CommitBatch(batch));

  auto unsent = store.UnsentOutbox(100);
  ASSERT_EQ(unsent.size(), 6u);
  for (size_t i = 0; i < unsent.size(); ++i) {
    EXPECT_EQ(unsent[i].event.event_id, batch[i].events[0].event_id);
    if (i > 0) {
      EXPECT_LT(unsent[i - 1].seq, unsent[i].seq);
    }
  }
  EXPECT_EQ(store.UnsentOutbox(2).size(), 2u);

  const std::vector<int64_t> seqs = {unsent[0].seq, unsent[2].seq};
  const WriteResult marked = store.MarkSent(seqs, kAt);
  ASSERT_TRUE(marked) << marked.message;
  EXPECT_EQ(marked.rows, 2);
  const WriteResult again = store.MarkSent(seqs, kAt + std::chrono::seconds(1));
  ASSERT_TRUE(again);
  EXPECT_EQ(again.rows, 0);

  unsent = store.UnsentOutbox(100);
  ASSERT_EQ(unsent.size(), 4u);
  EXPECT_EQ(unsent[0].event.event_id, batch[1].events[0].event_id);
  EXPECT_EQ(store.OutboxFor("order-0")[0].sent_at, kAt);  // kept the first mark
  EXPECT_EQ(store.RowCounts(kAt).outbox_unsent, 4);
}

// The counts by phase move with each commit (a scrape reads them instead of
// scanning every payment), a failed batch moves none, the payments in doubt come
// from their index, and a store of schema 2 gets its counts from its rows.
TEST_F(StoreTest, CountsPaymentsByPhaseAsCommitsMoveThem) {
  auto counted = [](Store& store) {
    std::map<std::string, int64_t> m;
    for (const auto& [phase, n] : store.Gauges().by_phase) m[phase] = n;
    return m;
  };
  auto scanned = [this] {
    std::map<std::string, int64_t> m;
    RawDb raw(Path());
    const auto phases = raw.Column("SELECT phase FROM payments");
    for (const auto& p : phases) ++m[p];
    return m;
  };
  {
    Store store = Store::Open(Path());
    std::vector<Commit> batch;
    for (int i = 0; i < 3; ++i) {
      Commit c = MakeCommit("p" + std::to_string(i), 1, std::nullopt);
      c.after.phase = Phase::kAwaitingPayer;
      c.after.doubt_since = i == 2 ? kAt : domain::Time{};
      batch.push_back(c);
    }
    ASSERT_TRUE(store.CommitBatch(batch));
    EXPECT_EQ(counted(store), (std::map<std::string, int64_t>{{"awaiting_payer", 3}}));
    const auto doubt = store.Gauges().in_doubt;
    ASSERT_EQ(doubt.size(), 1u);
    EXPECT_EQ(doubt[0].first, "p2");
    EXPECT_EQ(doubt[0].second, kAt);

    // p0 authorized and then failed in one batch, p2's doubt resolved.
    Commit a = MakeCommit("p0", 2, Phase::kAwaitingPayer);
    a.after.doubt_since = domain::Time{};
    Commit f = MakeCommit("p0", 3, Phase::kAuthorized);
    f.after.phase = Phase::kFailed;
    f.after.doubt_since = domain::Time{};
    Commit r = MakeCommit("p2", 2, Phase::kAwaitingPayer);
    r.after.phase = Phase::kAwaitingPayer;
    r.after.doubt_since = domain::Time{};
    const int64_t first_seq = store.UnsentOutbox(1)[0].seq;
    const std::vector<int64_t> sent = {first_seq, first_seq, 999999};
    const WriteResult w = store.CommitBatch(std::vector<Commit>{a, f, r}, sent, kAt);
    ASSERT_TRUE(w) << w.message;
    EXPECT_EQ(w.rows, 1) << "rows newly marked sent";
    EXPECT_EQ(counted(store), scanned());
    EXPECT_EQ(counted(store), (std::map<std::string, int64_t>{{"awaiting_payer", 2}, {"failed", 1}}));
    EXPECT_TRUE(store.Gauges().in_doubt.empty());
    EXPECT_EQ(store.Gauges().outbox_unsent, 5);

    // A batch that fails counts nothing.
    Commit moved = MakeCommit("p1", 2, Phase::kAwaitingPayer);
    Commit duplicate = MakeCommit("p2", 2, Phase::kAwaitingPayer);  // its inbox event again
    ASSERT_FALSE(store.CommitBatch(std::vector<Commit>{moved, duplicate}));
    EXPECT_EQ(counted(store), scanned());
  }
  // Schema 2 had no counts: the migration counts the rows once.
  {
    RawDb raw(Path());
    raw.Exec(
        "DROP TABLE meta; ALTER TABLE operations DROP COLUMN latency_us; DROP TABLE phase_counts;"
        " DROP INDEX payments_doubt; PRAGMA user_version = 2;");
  }
  Store again = Store::Open(Path());
  EXPECT_EQ(counted(again), scanned());
  EXPECT_EQ(counted(again), (std::map<std::string, int64_t>{{"awaiting_payer", 2}, {"failed", 1}}));
}

TEST_F(StoreTest, AFailingCommitLeavesNothingOfItsBatch) {
  Store store = Store::Open(Path());
  ASSERT_TRUE(store.CommitOne(MakeCommit("existing", 1, std::nullopt)));
  const Counts before = store.RowCounts(kAt);

  std::vector<Commit> batch;
  batch.push_back(MakeCommit("a", 1, std::nullopt));
  batch.push_back(MakeCommit("b", 1, std::nullopt));
  batch.push_back(MakeCommit("existing", 2, Phase::kAuthorized));
  batch[2].inbox_event_id = "a-in-1";  // already consumed by batch[0]
  const WriteResult r = store.CommitBatch(batch);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code, ErrorCode::kConstraint);
  EXPECT_EQ(r.failed_at, 2u);
  EXPECT_THAT(r.message, HasSubstr("a-in-1"));
  EXPECT_THAT(r.message, HasSubstr(Path()));

  EXPECT_FALSE(store.LoadPayment("a").has_value());
  EXPECT_FALSE(store.LoadPayment("b").has_value());
  EXPECT_FALSE(store.HasEvent("a-in-1"));
  EXPECT_EQ(store.LoadPayment("existing")->last_sequence, 1u);
  const Counts after = store.RowCounts(kAt);
  EXPECT_EQ(after.payments, before.payments);
  EXPECT_EQ(after.inbox, before.inbox);
  EXPECT_EQ(after.outbox_unsent, before.outbox_unsent);
  EXPECT_EQ(after.operations_unfinished, before.operations_unfinished);
  EXPECT_EQ(store.History("existing").size(), 1u);
  EXPECT_TRUE(store.History("a").empty());

  // The store is usable afterwards: the good part commits on its own.
  batch.pop_back();
  ASSERT_TRUE(store.CommitBatch(batch));
  EXPECT_TRUE(store.LoadPayment("b").has_value());
}

TEST_F(StoreTest, EveryKindOfConflictFailsTheBatch) {
  Store store = Store::Open(Path());
  ASSERT_TRUE(store.CommitOne(MakeCommit("o", 1, std::nullopt)));
  const auto expect_conflict = [&](Commit c, const std::string& what) {
    const WriteResult r = store.CommitOne(c);
    EXPECT_FALSE(r) << what;
    EXPECT_EQ(r.code, ErrorCode::kConstraint) << what << ": " << r.message;
    EXPECT_EQ(r.failed_at, 0u) << what;
  };
  Commit dup_outbox = MakeCommit("o", 2, Phase::kAuthorized);
  dup_outbox.events[0].event_id = "o-ev-1";
  expect_conflict(dup_outbox, "outbox event id reused");
  Commit dup_sequence = MakeCommit("o", 2, Phase::kAuthorized);
  dup_sequence.events[0].sequence = 1;
  expect_conflict(dup_sequence, "outbox sequence reused");
  Commit dup_call = MakeCommit("o", 2, Phase::kAuthorized);
  dup_call.calls[0].call_id = 101;
  expect_conflict(dup_call, "call id reused");
  Commit foreign_event = MakeCommit("o", 2, Phase::kAuthorized);
  foreign_event.events[0].order_id = "other";
  expect_conflict(foreign_event, "event of another order");
  Commit no_order = MakeCommit("", 2, std::nullopt);
  expect_conflict(no_order, "no order id");
  EXPECT_EQ(store.History("o").size(), 1u);
}

TEST_F(StoreTest, InboxTurnsARedeliveryIntoAKnownEvent) {
  Store store = Store::Open(Path());
  EXPECT_FALSE(store.HasEvent("o-in-1"));
  ASSERT_TRUE(store.CommitOne(MakeCommit("o", 1, std::nullopt)));
  EXPECT_TRUE(store.HasEvent("o-in-1"));
  // The engine checks HasEvent first; committing the same event again is a bug
  // that the store refuses rather than recording twice.
  Commit again = MakeCommit("o", 2, Phase::kAuthorized);
  again.inbox_event_id = "o-in-1";
  const WriteResult r = store.CommitOne(again);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.code, ErrorCode::kConstraint);
  EXPECT_EQ(store.RowCounts(kAt).inbox, 1);
}

TEST_F(StoreTest, FindsDuePaymentsByIndex) {
  Store store = Store::Open(Path());
  EXPECT_FALSE(store.NextDueAt().has_value());
  std::vector<Commit> batch;
  const std::vector<int64_t> due = {50, 10, 0, 30, 20, 40};  // seconds after kAt; 0 = none
  for (size_t i = 0; i < due.size(); ++i) {
    Commit c = MakeCommit("p" + std::to_string(i), 1, std::nullopt);
    c.after.due_at = due[i] == 0 ? Time{} : kAt + std::chrono::seconds(due[i]);
    c.after.in_flight.call_id = i % 2;  // p1, p3, p5 have a call in flight
    batch.push_back(std::move(c));
  }
  ASSERT_TRUE(store.CommitBatch(batch));

  EXPECT_EQ(store.NextDueAt(), kAt + std::chrono::seconds(10));
  EXPECT_TRUE(store.DuePayments(kAt, 10).empty());
  EXPECT_EQ(store.DuePayments(kAt + std::chrono::seconds(30), 10),
            (std::vector<std::string>{"p1", "p4", "p3"}));
  EXPECT_EQ(store.DuePayments(kAt + std::chrono::seconds(100), 2),
            (std::vector<std::string>{"p1", "p4"}));
  EXPECT_EQ(store.RowCounts(kAt + std::chrono::seconds(30)).payments_due, 3);

  auto in_flight = store.PaymentsWithCallsInFlight();
  std::sort(in_flight.begin(), in_flight.end());
  EXPECT_EQ(in_flight, (std::vector<std::string>{"p1", "p3", "p5"}));

  // Clearing due_at and in_flight takes a payment off both lists.
  Commit done = batch[1];
  done.after.due_at = Time{};
  done.after.in_flight = {};
  done.inbox_event_id.clear();
  done.events.clear();
  done.calls.clear();
  ASSERT_TRUE(store.CommitOne(done));
  EXPECT_EQ(store.NextDueAt(), kAt + std::chrono::seconds(20));
  EXPECT_EQ(store.DuePayments(kAt + std::chrono::seconds(30), 10),
            (std::vector<std::string>{"p4", "p3"}));
  EXPECT_EQ(store.PaymentsWithCallsInFlight().size(), 2u);
}

TEST_F(StoreTest, QueriesUseTheirIndexes) {
  { Store store = Store::Open(Path()); }
  RawDb raw(Path());
  // Column 3 of EXPLAIN QUERY PLAN is the detail ("SEARCH payments USING INDEX ...").
  const auto plan = [&](const std::string& sql) {
    std::string detail;
    for (const auto& row : raw.Column("EXPLAIN QUERY PLAN " + sql, 3)) detail += row + "|";
    return detail;
  };
  EXPECT_THAT(plan("SELECT order_id FROM payments WHERE due_at IS NOT NULL AND due_at <= 5"
                   " ORDER BY due_at LIMIT 10"),
              HasSubstr("payments_due"));
  EXPECT_THAT(plan("SELECT min(due_at) FROM payments WHERE due_at IS NOT NULL"),
              HasSubstr("payments_due"));
  EXPECT_THAT(plan("SELECT seq, body FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 5"),
              HasSubstr("outbox_unsent"));
  EXPECT_THAT(plan("SELECT order_id FROM payments WHERE in_flight_call IS NOT NULL"),
              HasSubstr("payments_in_flight"));
  EXPECT_THAT(plan("SELECT * FROM operations WHERE finished_at IS NULL ORDER BY sent_at"),
              HasSubstr("operations_unfinished"));
  EXPECT_THAT(plan("SELECT * FROM history WHERE order_id = 'x' ORDER BY id"),
              HasSubstr("history_order"));
}

TEST_F(StoreTest, KeepsEverythingAcrossReopen) {
  {
    Store store = Store::Open(Path());
    ASSERT_TRUE(store.CommitOne(MakeCommit("o", 1, std::nullopt)));
  }
  Store store = Store::Open(Path());
  ASSERT_TRUE(store.LoadPayment("o").has_value());
  EXPECT_TRUE(store.HasEvent("o-in-1"));
  EXPECT_EQ(store.UnsentOutbox(10).size(), 1u);
  EXPECT_EQ(store.History("o").size(), 1u);
}

TEST_F(StoreTest, CheckpointsOnRequestWhenAutomaticCheckpointsAreOff) {
  Options manual;
  manual.wal_autocheckpoint_pages = 0;
  Store store = Store::Open(Path(), manual);
  std::vector<Commit> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(MakeCommit("o" + std::to_string(i), 1, {}));
  ASSERT_TRUE(store.CommitBatch(batch));
  const auto db_size = [&] { return ReadFile(Path()).size(); };
  const size_t before = db_size();
  const WriteResult r = store.Checkpoint();
  ASSERT_TRUE(r) << r.message;
  EXPECT_GT(r.rows, 0);
  EXPECT_GT(db_size(), before);
  EXPECT_EQ(store.RowCounts(kAt).payments, 50);
}

TEST_F(StoreTest, AnotherWriterHoldingTheLockIsAClearError) {
  { Store store = Store::Open(Path()); }
  RawDb other(Path());
  other.Exec("BEGIN IMMEDIATE");
  Options fast;
  fast.busy_timeout = std::chrono::milliseconds(50);
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kLocked, fast);
  EXPECT_THAT(e.what(), HasSubstr("another process"));
  other.Exec("ROLLBACK");

  Store store = Store::Open(Path(), fast);
  other.Exec("BEGIN IMMEDIATE");
  const WriteResult r = store.CommitOne(MakeCommit("o", 1, std::nullopt));
  EXPECT_FALSE(r);
  EXPECT_EQ(r.code, ErrorCode::kLocked);
  other.Exec("ROLLBACK");
  EXPECT_TRUE(store.CommitOne(MakeCommit("o", 1, std::nullopt)));
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsRefusedAndLeftAlone) {
  std::mt19937 rng(7);
  std::string garbage(8192, '\0');
  for (char& ch : garbage) ch = static_cast<char>(rng());
  WriteFile(Path(), garbage);
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kCorrupt);
  EXPECT_THAT(e.what(), HasSubstr("not a database"));
  EXPECT_THAT(e.what(), HasSubstr("backup"));
  EXPECT_EQ(ReadFile(Path()), garbage);
}

TEST_F(StoreTest, ADamagedPageFailsQuickCheck) {
  {
    Store store = Store::Open(Path());
    std::vector<Commit> batch;
    for (int i = 0; i < 300; ++i) batch.push_back(MakeCommit("o" + std::to_string(i), 1, {}));
    ASSERT_TRUE(store.CommitBatch(batch));
  }
  {
    RawDb raw(Path());
    raw.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::string bytes = ReadFile(Path());
  ASSERT_GT(bytes.size(), 16u * 4096);
  // Scribble over the middle of the file (page 1, the schema, stays intact).
  for (size_t i = 8 * 4096; i < 12 * 4096; ++i) bytes[i] = static_cast<char>(i * 7);
  WriteFile(Path(), bytes);
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kCorrupt);
  EXPECT_THAT(e.what(), HasSubstr("backup"));
}

TEST_F(StoreTest, ANewerSchemaIsRefused) {
  { Store store = Store::Open(Path()); }
  {
    RawDb raw(Path());
    raw.Exec("PRAGMA user_version = 99");
  }
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kTooNew);
  EXPECT_THAT(e.what(), HasSubstr("99"));
  EXPECT_THAT(e.what(), HasSubstr("newer payorch"));
  RawDb raw(Path());
  EXPECT_EQ(raw.One("PRAGMA user_version"), "99");
}

TEST_F(StoreTest, SomeoneElsesDatabaseIsRefused) {
  {
    RawDb raw(Path());
    raw.Exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)");
  }
  ExpectOpenFails(Path(), ErrorCode::kForeign);
  RawDb raw(Path());
  EXPECT_EQ(raw.One("SELECT count(*) FROM sqlite_schema"), "1");
}

TEST_F(StoreTest, AVersionFourStoreGetsTheLatencyInMicroseconds) {
  { Store store = Store::Open(Path()); }
  {
    RawDb raw(Path());
    raw.Exec("ALTER TABLE operations DROP COLUMN latency_us; PRAGMA user_version = 4;");
  }
  { Store store = Store::Open(Path()); }
  RawDb raw(Path());
  EXPECT_EQ(raw.One("PRAGMA user_version"), "5");
  EXPECT_EQ(raw.One("SELECT count(*) FROM pragma_table_info('operations') WHERE name = 'latency_us'"),
            "1");
}

TEST_F(StoreTest, AStoreIsBoundToThePartitionItWasFirstStartedFor) {
  {
    Store store = Store::Open(Path());
    store.BindPartition(2, 4);
    store.BindPartition(2, 4);  // the same again: fine
  }
  Store store = Store::Open(Path());
  store.BindPartition(2, 4);  // and after a reopen
  for (auto [partition, partitions] : {std::pair<uint32_t, uint32_t>{1, 4}, {2, 8}, {0, 1}}) {
    try {
      store.BindPartition(partition, partitions);
      ADD_FAILURE() << "bound to " << partition << "/" << partitions;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.code(), ErrorCode::kForeign);
      EXPECT_THAT(e.what(), HasSubstr("holds partition 2 of 4, not partition " +
                                      std::to_string(partition) + " of " +
                                      std::to_string(partitions)));
    }
  }
  RawDb raw(Path());
  EXPECT_EQ(raw.One("SELECT value FROM meta WHERE key = 'partition'"), "2/4");
}

TEST_F(StoreTest, MissingDirectoriesAndNonFilesAreClearErrors) {
  const StoreError missing_dir =
      ExpectOpenFails(dir_.File("nope/payorch.db"), ErrorCode::kUnwritable);
  EXPECT_THAT(missing_dir.what(), HasSubstr("does not exist"));
  WriteFile(dir_.File("plain"), "x");
  ExpectOpenFails(dir_.File("plain/payorch.db"), ErrorCode::kUnwritable);
  ExpectOpenFails(dir_.path(), ErrorCode::kUnwritable);

  Options no_create;
  no_create.create_if_missing = false;
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kMissing, no_create);
  EXPECT_THAT(e.what(), HasSubstr("create_if_missing"));
  EXPECT_NE(access(Path().c_str(), F_OK), 0);
}

TEST_F(StoreTest, AWalWithoutItsDatabaseIsRefused) {
  WriteFile(Path() + "-wal", std::string(4096, 'w'));
  const StoreError e = ExpectOpenFails(Path(), ErrorCode::kCorrupt);
  EXPECT_THAT(e.what(), HasSubstr("-wal"));
  EXPECT_NE(access(Path().c_str(), F_OK), 0);
}

// Permission checks do not apply to root, so as root the open runs in a child
// that drops to an unprivileged user first.
TEST_F(StoreTest, AnUnwritableDirectoryIsAClearError) {
  const std::string ro_dir = dir_.File("readonly");
  ASSERT_EQ(mkdir(ro_dir.c_str(), 0555), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  const std::string path = ro_dir + "/payorch.db";

  const testing::Child child = testing::ForkWithPipe([&](int write_fd) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(2);
    std::string report;
    try {
      Store::Open(path);
      report = "opened";
    } catch (const StoreError& e) {
      report = std::string(ErrorCodeName(e.code())) + "\n" + e.what();
    } catch (...) {
      report = "other exception";
    }
    (void)!write(write_fd, report.data(), report.size());
    _exit(0);
  });
  const pid_t pid = child.pid;
  std::string report;
  char buf[512];
  for (ssize_t n; (n = read(child.read_fd, buf, sizeof buf)) > 0;) report.append(buf, n);
  close(child.read_fd);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(report.substr(0, report.find('\n')), "unwritable") << report;
  EXPECT_THAT(report, HasSubstr(path));
  EXPECT_THAT(report, HasSubstr("not writable"));
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace payorch::store

namespace payorch::store {
namespace {

std::string Bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

TEST_F(StoreTest, AReadOnlyOpenReadsWhatIsCommittedAndWritesNothing) {
  Store writer = Store::Open(Path());
  ASSERT_TRUE(writer.CommitOne(MakeCommit("order-1", 1, std::nullopt)));
  ASSERT_TRUE(writer.Checkpoint());
  const std::string db_before = Bytes(Path());
  const std::string wal_before = Bytes(Path() + "-wal");

  Options ro;
  ro.read_only = true;
  ro.quick_check = false;
  Store reader = Store::Open(Path(), ro);
  ASSERT_TRUE(reader.LoadPayment("order-1").has_value());
  EXPECT_EQ(reader.History("order-1").size(), 1u);
  // A write is refused, and nothing reached the files.
  WriteResult w = reader.CommitOne(MakeCommit("order-2", 1, std::nullopt));
  EXPECT_FALSE(w.ok);
  EXPECT_FALSE(reader.LoadPayment("order-2").has_value());
  EXPECT_EQ(Bytes(Path()), db_before);
  EXPECT_EQ(Bytes(Path() + "-wal"), wal_before);

  // It sees what the writer commits afterwards (a WAL reader next to payorchd).
  ASSERT_TRUE(writer.CommitOne(MakeCommit("order-3", 1, std::nullopt)));
  EXPECT_TRUE(reader.LoadPayment("order-3").has_value());
}

TEST_F(StoreTest, AReadOnlyOpenNeverCreatesOrMigrates) {
  Options ro;
  ro.read_only = true;
  try {
    Store::Open(Path(), ro);
    FAIL() << "opened a store that does not exist";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kMissing) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(Path()));
  // A store of an older schema: read-only does not migrate it.
  {
    Store::Open(Path());
  }
  {
    RawDb raw(Path());
    raw.Exec("PRAGMA user_version = 1");
  }
  const std::string before = Bytes(Path());
  try {
    Store::Open(Path(), ro);
    FAIL() << "opened an older schema read-only";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTooOld) << e.what();
    EXPECT_NE(std::string(e.what()).find("start the payorchd"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Bytes(Path()), before);
}

}  // namespace
}  // namespace payorch::store
