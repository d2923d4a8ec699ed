// Store::Impl: one SQLite connection with its prepared statements (kSql), shared
// by the store's files (schema.cpp, commit.cpp, queries.cpp, replays.cpp). Private
// to src/store.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "store/sqlite.hpp"

namespace payorch::store {
namespace detail {

enum StmtId {
  kBegin,
  kCommit,
  kRollback,
  kUpsertPayment,
  kInsertInbox,
  kFinishCall,
  kInsertOperation,
  kInsertOutbox,
  kInsertHistory,
  kMarkSent,
  kLoadPayment,
  kHasEvent,
  kDuePayments,
  kNextDueAt,
  kUnsentOutbox,
  kInFlight,
  kUnfinishedOperations,
  kHistory,
  kOperations,
  kOutboxFor,
  kCountPayments,
  kCountDue,
  kCountInFlight,
  kCountInbox,
  kCountUnsent,
  kCountUnfinished,
  kAddPhaseCount,
  kPhaseCounts,
  kInDoubt,
  kStmtCount,
};

#define PAYORCH_OPERATION_COLUMNS                                                           \
  "order_id, call_id, op_id, kind, payee_reference, amount, status, sent_at, finished_at, " \
  "result, COALESCE(latency_us, latency_ms * 1000)"

inline constexpr std::array<const char*, kStmtCount> kSql = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO payments (order_id, phase, payment_id, authorized, captured, cancelled, reversed,"
    " due_at, doubt_since, in_flight_call, updated_at, body)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (order_id) DO UPDATE SET phase = excluded.phase,"
    " payment_id = excluded.payment_id, authorized = excluded.authorized,"
    " captured = excluded.captured, cancelled = excluded.cancelled,"
    " reversed = excluded.reversed, due_at = excluded.due_at,"
    " doubt_since = excluded.doubt_since, in_flight_call = excluded.in_flight_call,"
    " updated_at = excluded.updated_at, body = excluded.body",
    "INSERT INTO inbox (event_id, order_id, received_at) VALUES (?1, ?2, ?3)",
    "UPDATE operations SET status = 'finished', finished_at = ?3, result = ?4,"
    " latency_ms = ?5 / 1000, latency_us = ?5"
    " WHERE order_id = ?1 AND call_id = ?2 AND finished_at IS NULL",
    "INSERT INTO operations (order_id, call_id, op_id, kind, payee_reference, amount, status,"
    " sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in_flight', ?7)",
    "INSERT INTO outbox (event_id, order_id, sequence, kind, body, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT INTO history (order_id, at, input, phase_before, phase_after, note)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "UPDATE outbox SET sent_at = ?2 WHERE seq = ?1 AND sent_at IS NULL",
    "SELECT body FROM payments WHERE order_id = ?1",
    "SELECT 1 FROM inbox WHERE event_id = ?1",
    "SELECT order_id FROM payments WHERE due_at IS NOT NULL AND due_at <= ?1"
    " ORDER BY due_at LIMIT ?2",
    "SELECT min(due_at) FROM payments WHERE due_at IS NOT NULL",
    "SELECT seq, body, created_at, sent_at FROM outbox WHERE sent_at IS NULL AND seq > ?2"
    " ORDER BY seq LIMIT ?1",
    "SELECT order_id FROM payments WHERE in_flight_call IS NOT NULL",
    "SELECT " PAYORCH_OPERATION_COLUMNS
    " FROM operations WHERE finished_at IS NULL"
    " ORDER BY sent_at",
    "SELECT id, order_id, at, input, phase_before, phase_after, note FROM history"
    " WHERE order_id = ?1 ORDER BY id",
    "SELECT " PAYORCH_OPERATION_COLUMNS " FROM operations WHERE order_id = ?1 ORDER BY call_id",
    "SELECT seq, body, created_at, sent_at FROM outbox WHERE order_id = ?1 ORDER BY sequence",
    "SELECT count(*) FROM payments",
    "SELECT count(*) FROM payments WHERE due_at IS NOT NULL AND due_at <= ?1",
    "SELECT count(*) FROM payments WHERE in_flight_call IS NOT NULL",
    "SELECT count(*) FROM inbox",
    "SELECT count(*) FROM outbox WHERE sent_at IS NULL",
    "SELECT count(*) FROM operations WHERE finished_at IS NULL",
    "INSERT INTO phase_counts (phase, n) VALUES (?1, ?2)"
    " ON CONFLICT (phase) DO UPDATE SET n = n + excluded.n",
    "SELECT phase, n FROM phase_counts WHERE n <> 0",
    "SELECT order_id, doubt_since FROM payments WHERE doubt_since IS NOT NULL",
};

#undef PAYORCH_OPERATION_COLUMNS

}  // namespace detail

using namespace detail;

struct Store::Impl {
  std::string path;
  Options options;
  sqlite3* db = nullptr;
  std::vector<std::unique_ptr<Stmt>> stmts;
  std::string body;  // reused encoding buffer

  ~Impl() {
    stmts.clear();  // finalize before closing
    if (db != nullptr) sqlite3_close_v2(db);
  }

  [[noreturn]] void Fail(int rc, const std::string& what) const { ThrowSqlite(db, path, rc, what); }

  // The same error with the row it concerns put in front of SQLite's words.
  [[noreturn]] void Rethrow(const StoreError& e, const std::string& context) const {
    const std::string prefix = "store " + path + ": ";
    std::string msg = e.what();
    if (msg.compare(0, prefix.size(), prefix) == 0) msg.erase(0, prefix.size());
    throw StoreError(e.code(), prefix + context + ": " + msg);
  }

  void Exec(const char* sql, const char* what) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      const std::string words = SqliteWords(err, rc);
      sqlite3_free(err);
      Throw(path, CodeOf(rc), std::string(what) + ": " + words);
    }
  }

  // The single value of a one-row query run once (used at Open, before the cache).
  int64_t QueryInt(const char* sql, const char* what) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    if (rc != SQLITE_OK) Fail(rc, what);
    rc = sqlite3_step(s);
    const int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) Fail(rc, what);
    return v;
  }

  std::vector<std::string> QueryTexts(const char* sql, const char* what) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    if (rc != SQLITE_OK) Fail(rc, what);
    std::vector<std::string> out;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      out.emplace_back(p != nullptr ? p : "");
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) Fail(rc, what);
    return out;
  }

  Run Use(StmtId id, const char* what) { return Run(db, path, *stmts[id], what); }

  // PRAGMA quick_check: nullopt when intact, else what it found (one line).
  std::optional<std::string> QuickCheck();
  void Apply(const Commit& c);
  OutboxRow ReadOutbox(const Run& r, size_t first_col);
  OperationRow ReadOperation(const Run& r);
};

}  // namespace payorch::store
