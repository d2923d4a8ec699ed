#include "store/store.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>
#include <utility>

#include "domain/serialize.hpp"

namespace payorch::store {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kForeign: return "foreign";
    case ErrorCode::kTooNew: return "too_new";
    case ErrorCode::kTooOld: return "too_old";
    case ErrorCode::kMissing: return "missing";
    case ErrorCode::kUnwritable: return "unwritable";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kConstraint: return "constraint";
    case ErrorCode::kFull: return "full";
    case ErrorCode::kIo: return "io";
  }
  return "?";
}

namespace {

using domain::FromMillis;
using domain::Time;
using domain::ToMillis;

// "payo": marks the file as a payorch store, so Open refuses someone else's database.
constexpr int32_t kApplicationId = 0x7061796F;

// Migration N takes the schema from version N-1 to N. Append only: a shipped
// migration is never edited, since files out there were built by it.
constexpr std::array<const char*, Store::kSchemaVersion> kMigrations = {
    // 1: the initial schema. Times are ms since the epoch, UTC; NULL means none.
    R"sql(
CREATE TABLE payments (
  order_id       TEXT PRIMARY KEY NOT NULL CHECK (order_id <> ''),
  phase          TEXT NOT NULL,
  payment_id     TEXT NOT NULL,
  authorized     INTEGER NOT NULL,
  captured       INTEGER NOT NULL,
  cancelled      INTEGER NOT NULL,
  reversed       INTEGER NOT NULL,
  due_at         INTEGER,
  doubt_since    INTEGER,
  in_flight_call INTEGER,
  updated_at     INTEGER NOT NULL,
  body           BLOB NOT NULL
);
CREATE INDEX payments_due ON payments(due_at) WHERE due_at IS NOT NULL;
CREATE INDEX payments_in_flight ON payments(in_flight_call) WHERE in_flight_call IS NOT NULL;

CREATE TABLE inbox (
  event_id    TEXT PRIMARY KEY NOT NULL,
  order_id    TEXT NOT NULL REFERENCES payments(order_id),
  received_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id   TEXT NOT NULL UNIQUE,
  order_id   TEXT NOT NULL REFERENCES payments(order_id),
  sequence   INTEGER NOT NULL,
  kind       TEXT NOT NULL,
  body       BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  sent_at    INTEGER,
  UNIQUE (order_id, sequence)
);
CREATE INDEX outbox_unsent ON outbox(seq) WHERE sent_at IS NULL;

CREATE TABLE operations (
  order_id        TEXT NOT NULL REFERENCES payments(order_id),
  call_id         INTEGER NOT NULL,
  op_id           INTEGER NOT NULL,
  kind            TEXT NOT NULL,
  payee_reference TEXT NOT NULL,
  amount          INTEGER NOT NULL,
  status          TEXT NOT NULL,
  sent_at         INTEGER NOT NULL,
  finished_at     INTEGER,
  result          TEXT,
  latency_ms      INTEGER,
  PRIMARY KEY (order_id, call_id)
) WITHOUT ROWID;
CREATE INDEX operations_unfinished ON operations(sent_at) WHERE finished_at IS NULL;

CREATE TABLE history (
  id           INTEGER PRIMARY KEY,
  order_id     TEXT NOT NULL REFERENCES payments(order_id),
  at           INTEGER NOT NULL,
  input        TEXT NOT NULL,
  phase_before TEXT,
  phase_after  TEXT NOT NULL,
  note         TEXT NOT NULL
);
CREATE INDEX history_order ON history(order_id, id);
)sql",
    // 2: operators' replays of dead letters (payorchctl dlq replay): who, when, why
    // and which messages, one row per message so that a replay can be searched.
    R"sql(
CREATE TABLE replays (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  who           TEXT NOT NULL,
  started_at    INTEGER NOT NULL,
  finished_at   INTEGER,
  reason        TEXT NOT NULL,
  filter        TEXT NOT NULL,
  queue         TEXT NOT NULL,
  message_count INTEGER NOT NULL DEFAULT 0,
  outcome       TEXT NOT NULL,
  detail        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE replay_messages (
  replay_id   INTEGER NOT NULL REFERENCES replays(id),
  n           INTEGER NOT NULL,
  message_id  TEXT NOT NULL,
  event_id    TEXT NOT NULL,
  order_id    TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  replayed_at INTEGER NOT NULL,
  PRIMARY KEY (replay_id, n)
) WITHOUT ROWID;
)sql",
};

ErrorCode CodeOf(int rc) {
  switch (rc & 0xFF) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: return ErrorCode::kCorrupt;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return ErrorCode::kLocked;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH: return ErrorCode::kUnwritable;
    case SQLITE_FULL: return ErrorCode::kFull;
    case SQLITE_CONSTRAINT: return ErrorCode::kConstraint;
    default: return ErrorCode::kIo;
  }
}

// What an operator should do about an error, appended to its message.
const char* Advice(ErrorCode code) {
  switch (code) {
    case ErrorCode::kCorrupt:
      return "payorch does not reset or overwrite a damaged store: stop, move the file (with its "
             "-wal and -shm) aside and restore it from a backup";
    case ErrorCode::kLocked:
      return "another process holds the database lock (another payorchd, or an sqlite3 shell in a "
             "transaction): stop it, or raise busy_timeout";
    case ErrorCode::kUnwritable:
      return "payorch needs to read and write the file and to create FILE-wal and FILE-shm in its "
             "directory: fix the path or its permissions";
    case ErrorCode::kFull: return "free disk space; nothing of this write was stored";
    default: return nullptr;
  }
}

std::string Describe(const std::string& path, const std::string& what, ErrorCode code) {
  std::string m = "store " + path + ": " + what;
  if (const char* advice = Advice(code)) m += std::string(" (") + advice + ")";
  return m;
}

[[noreturn]] void Throw(const std::string& path, ErrorCode code, const std::string& what) {
  throw StoreError(code, Describe(path, what, code));
}

// For messages that already say what to do.
[[noreturn]] void ThrowPlain(const std::string& path, ErrorCode code, const std::string& what) {
  throw StoreError(code, "store " + path + ": " + what);
}

// SQLite's message, and its generic words for the code when they add something.
std::string SqliteWords(const char* msg, int rc) {
  std::string words = msg != nullptr ? msg : "";
  const std::string generic = sqlite3_errstr(rc);
  if (words.empty()) return generic;
  if (words != generic) words += " (" + generic + ")";
  return words;
}

[[noreturn]] void ThrowSqlite(sqlite3* db, const std::string& path, int rc,
                              const std::string& what) {
  Throw(path, CodeOf(rc),
        what + ": " + SqliteWords(db != nullptr ? sqlite3_errmsg(db) : nullptr, rc));
}

// A prepared statement kept for the life of the connection.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const char* sql) {
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) ThrowSqlite(db, path, rc, std::string("preparing ") + sql);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One execution of a cached statement: binds, steps, reads columns, and resets the
// statement when it goes out of scope (also when unwinding), so a statement never
// holds a read transaction open. Text is bound SQLITE_STATIC: the caller's strings
// outlive the Run.
class Run {
 public:
  Run(sqlite3* db, const std::string& path, const Stmt& stmt, const char* what)
      : db_(db), path_(path), stmt_(stmt.get()), what_(what) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Run& Int(int i, int64_t v) { return Check(sqlite3_bind_int64(stmt_, i, v)); }
  Run& Text(int i, std::string_view v) {
    return Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  Run& Blob(int i, std::string_view v) {
    return Check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  Run& Null(int i) { return Check(sqlite3_bind_null(stmt_, i)); }
  // Times of zero mean "none" in the domain: stored as NULL.
  Run& TimeOrNull(int i, Time t) { return ToMillis(t) == 0 ? Null(i) : Int(i, ToMillis(t)); }

  // True for a row, false when done.
  bool Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    ThrowSqlite(db_, path_, rc, what_);
  }
  void Exec() {
    while (Step()) {
    }
  }

  bool IsNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
  int64_t ColInt(int c) const { return sqlite3_column_int64(stmt_, c); }
  std::string ColText(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, c));
  }
  std::string_view ColBlob(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, c));
    return p == nullptr ? std::string_view() : std::string_view(p, sqlite3_column_bytes(stmt_, c));
  }
  Time ColTime(int c) const { return FromMillis(ColInt(c)); }
  std::optional<Time> ColOptTime(int c) const {
    if (IsNull(c)) return std::nullopt;
    return ColTime(c);
  }

 private:
  Run& Check(int rc) {
    if (rc != SQLITE_OK) ThrowSqlite(db_, path_, rc, std::string(what_) + ": binding");
    return *this;
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_;
  const char* what_;
};

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
  kStmtCount,
};

#define PAYORCH_OPERATION_COLUMNS                                                           \
  "order_id, call_id, op_id, kind, payee_reference, amount, status, sent_at, finished_at, " \
  "result, latency_ms"

constexpr std::array<const char*, kStmtCount> kSql = {
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
    "UPDATE operations SET status = 'finished', finished_at = ?3, result = ?4, latency_ms = ?5"
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
};

#undef PAYORCH_OPERATION_COLUMNS

// Steps `r` through its result rows, reading each one with `read`.
template <typename Read>
auto ReadRows(Run& r, Read read) {
  std::vector<std::decay_t<decltype(read(std::as_const(r)))>> out;
  while (r.Step()) out.push_back(read(r));
  return out;
}

std::string FirstColumn(const Run& r) {
  return r.ColText(0);
}

}  // namespace

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

  void Apply(const Commit& c);
  OutboxRow ReadOutbox(const Run& r, size_t first_col);
  OperationRow ReadOperation(const Run& r);
};

namespace {

// BEGIN IMMEDIATE takes the write lock up front, so a batch never fails half-way
// on a lock upgrade; the destructor rolls back whatever was not committed.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path, const Stmt& begin, const Stmt& commit,
              const Stmt& rollback)
      : db_(db), path_(path), commit_(commit), rollback_(rollback) {
    Run(db_, path_, begin, "BEGIN IMMEDIATE").Exec();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // SQLite may already have rolled back by itself (some IO errors, SQLITE_FULL).
    if (!committed_ && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_step(rollback_.get());
      sqlite3_reset(rollback_.get());
    }
  }
  void Commit() {
    Run(db_, path_, commit_, "COMMIT").Exec();
    committed_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  const Stmt& commit_;
  const Stmt& rollback_;
  bool committed_ = false;
};

WriteResult Failed(const StoreError& e, std::optional<size_t> at) {
  WriteResult r;
  r.ok = false;
  r.code = e.code();
  r.message = e.what();
  r.failed_at = at;
  return r;
}

}  // namespace

void Store::Impl::Apply(const Commit& c) {
  const domain::Payment& p = c.after;
  const std::string& order = p.order_id;
  if (order.empty()) Throw(path, ErrorCode::kConstraint, "a commit without order_id");
  for (const auto& e : c.events) {
    if (e.order_id != order)
      Throw(path, ErrorCode::kConstraint,
            "order " + order + ": event " + e.event_id + " belongs to order " + e.order_id);
  }
  for (const auto& call : c.calls) {
    if (call.order_id != order)
      Throw(path, ErrorCode::kConstraint,
            "order " + order + ": call " + std::to_string(call.call_id) + " belongs to order " +
                call.order_id);
  }
  const int64_t at = ToMillis(c.at);

  body = domain::EncodePayment(p);
  {
    Run r = Use(kUpsertPayment, "writing the payments row");
    r.Text(1, order).Text(2, domain::PhaseName(p.phase)).Text(3, p.payment_id);
    r.Int(4, p.balance.authorized).Int(5, p.balance.captured).Int(6, p.balance.cancelled);
    r.Int(7, p.balance.reversed).TimeOrNull(8, p.due_at).TimeOrNull(9, p.doubt_since);
    if (p.in_flight.call_id != 0) {
      r.Int(10, static_cast<int64_t>(p.in_flight.call_id));
    } else {
      r.Null(10);
    }
    r.Int(11, at).Blob(12, body).Exec();
  }
  if (!c.inbox_event_id.empty()) {
    Run r = Use(kInsertInbox, "writing the inbox row");
    r.Text(1, c.inbox_event_id).Text(2, order).Int(3, at);
    try {
      r.Exec();
    } catch (const StoreError& e) {
      Rethrow(e, "order " + order + ": inbox event " + c.inbox_event_id);
    }
  }
  if (c.finished) {
    // A result for a call that is unknown or already finished (stale) changes nothing.
    Run r = Use(kFinishCall, "finishing the operations row");
    r.Text(1, order).Int(2, static_cast<int64_t>(c.finished->call_id)).Int(3, at);
    r.Text(4, c.finished->result).Int(5, c.finished->latency_ms).Exec();
  }
  for (const auto& call : c.calls) {
    Run r = Use(kInsertOperation, "writing the operations row");
    r.Text(1, order).Int(2, static_cast<int64_t>(call.call_id)).Int(3, call.op_id);
    r.Text(4, domain::OpKindName(call.kind)).Text(5, call.payee_reference).Int(6, call.amount);
    r.Int(7, at);
    try {
      r.Exec();
    } catch (const StoreError& e) {
      Rethrow(e, "order " + order + ": call " + std::to_string(call.call_id));
    }
  }
  for (const auto& e : c.events) {
    const std::string event_body = domain::EncodePaymentEvent(e);
    Run r = Use(kInsertOutbox, "writing the outbox row");
    r.Text(1, e.event_id).Text(2, order).Int(3, static_cast<int64_t>(e.sequence));
    r.Text(4, domain::EventKindName(e.kind)).Blob(5, event_body).Int(6, at);
    try {
      r.Exec();
    } catch (const StoreError& err) {
      Rethrow(err, "order " + order + ": outbox event " + e.event_id + " (sequence " +
                       std::to_string(e.sequence) + ")");
    }
  }
  {
    Run r = Use(kInsertHistory, "writing the history row");
    r.Text(1, order).Int(2, at).Text(3, c.input_name);
    if (c.phase_before) {
      r.Text(4, domain::PhaseName(*c.phase_before));
    } else {
      r.Null(4);
    }
    r.Text(5, domain::PhaseName(p.phase)).Text(6, c.note).Exec();
  }
}

OutboxRow Store::Impl::ReadOutbox(const Run& r, size_t first_col) {
  const int c = static_cast<int>(first_col);
  OutboxRow row;
  row.seq = r.ColInt(c);
  auto event = domain::DecodePaymentEvent(r.ColBlob(c + 1));
  if (!event)
    Throw(path, ErrorCode::kCorrupt,
          "outbox row " + std::to_string(row.seq) +
              " has a body that does not decode (written by a newer payorch, or damaged)");
  row.event = std::move(*event);
  row.created_at = r.ColTime(c + 2);
  row.sent_at = r.ColOptTime(c + 3);
  return row;
}

OperationRow Store::Impl::ReadOperation(const Run& r) {
  OperationRow row;
  row.order_id = r.ColText(0);
  row.call_id = static_cast<uint64_t>(r.ColInt(1));
  row.op_id = static_cast<uint32_t>(r.ColInt(2));
  row.kind = r.ColText(3);
  row.payee_reference = r.ColText(4);
  row.amount = r.ColInt(5);
  row.status = r.ColText(6);
  row.sent_at = r.ColTime(7);
  row.finished_at = r.ColOptTime(8);
  row.result = r.ColText(9);
  if (!r.IsNull(10)) row.latency_ms = r.ColInt(10);
  return row;
}

namespace {

// Checks made before SQLite touches the path, because SQLite's own error for
// these cases is a bare "unable to open database file".
void CheckPath(const std::string& path, const Options& options) {
  namespace fs = std::filesystem;
  if (path.empty() || path == ":memory:" || path.front() == ':')
    ThrowPlain(path, ErrorCode::kUnwritable, "not a file path: the store must be a file on disk");
  const fs::path file(path);
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";

  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      ThrowPlain(path, ErrorCode::kUnwritable, "is a directory; the store path must name a file");
    if (access(path.c_str(), options.read_only ? R_OK : R_OK | W_OK) != 0)
      Throw(path, ErrorCode::kUnwritable,
            std::string(options.read_only ? "the file is not readable: "
                                           : "the file is not readable and writable: ") +
                std::strerror(errno));
  } else {
    const int err = errno;
    if (err == ENOTDIR)
      ThrowPlain(path, ErrorCode::kUnwritable,
                 "a component of the path is a file, not a directory: fix the configured path");
    if (err != ENOENT)
      Throw(path, ErrorCode::kUnwritable, std::string("cannot stat: ") + std::strerror(err));
    struct stat dst {};
    if (stat(dir.c_str(), &dst) != 0)
      ThrowPlain(path, ErrorCode::kUnwritable,
                 "directory " + dir.string() + " does not exist (" + std::strerror(errno) +
                     "): create it, or fix the configured path");
    if (!options.create_if_missing || options.read_only)
      ThrowPlain(path, ErrorCode::kMissing,
                 "the file does not exist and create_if_missing is off: check the configured path "
                 "(the store is never recreated implicitly)");
    // A -wal without its database means the database was deleted or moved while
    // its last transactions were still in the WAL: starting afresh would replay
    // them onto an empty file.
    struct stat wst {};
    if (stat((path + "-wal").c_str(), &wst) == 0 && wst.st_size > 0)
      ThrowPlain(
          path, ErrorCode::kCorrupt,
          "found " + path +
              "-wal but not the database file itself: the file was removed or "
              "moved; put it back, or remove the -wal and -shm files to start an empty store");
  }
  if (!options.read_only && access(dir.c_str(), W_OK | X_OK) != 0)
    Throw(path, ErrorCode::kUnwritable,
          "directory " + dir.string() + " is not writable (" + std::strerror(errno) + ")");
}

}  // namespace

Store Store::Open(const std::string& path, const Options& options) {
  CheckPath(path, options);
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;

  int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
              SQLITE_OPEN_NOMUTEX;
  if (options.create_if_missing && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr);
  if (rc != SQLITE_OK) impl->Fail(rc, "cannot open");
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, static_cast<int>(options.busy_timeout.count()));

  // Read-only checks first: nothing is written to a file until it is known to be
  // an intact payorch store of a version this build understands (or empty).
  const int64_t tables = impl->QueryInt("SELECT count(*) FROM sqlite_schema",
                                        "reading the schema (is this an SQLite database?)");
  if (options.quick_check) {
    const auto lines = impl->QueryTexts("PRAGMA quick_check(5)", "PRAGMA quick_check");
    if (lines.size() != 1 || lines[0] != "ok") {
      std::string what = "PRAGMA quick_check found damage:";
      for (std::string l : lines) {
        if (l.rfind("*** in database ", 0) == 0) l.erase(0, l.find('\n') + 1);
        for (char& ch : l)
          if (ch == '\n') ch = ' ';
        what += " " + l + ";";
      }
      Throw(path, ErrorCode::kCorrupt, what);
    }
  }
  const int64_t version = impl->QueryInt("PRAGMA user_version", "reading user_version");
  const int64_t app_id = impl->QueryInt("PRAGMA application_id", "reading application_id");
  if (app_id != 0 && app_id != kApplicationId)
    Throw(path, ErrorCode::kForeign,
          "an SQLite database of another application (application_id " + std::to_string(app_id) +
              "), not a payorch store: check the configured path");
  if (version == 0 && tables > 0)
    Throw(path, ErrorCode::kForeign,
          "an SQLite database with " + std::to_string(tables) +
              " schema objects but no payorch schema: payorch will not touch it; check the "
              "configured path");
  if (version > 0 && app_id != kApplicationId)
    Throw(path, ErrorCode::kForeign,
          "schema version " + std::to_string(version) +
              " but no payorch application_id: not a payorch store; check the configured path");
  if (version > kSchemaVersion)
    Throw(path, ErrorCode::kTooNew,
          "schema version " + std::to_string(version) + " is newer than this payorch knows (" +
              std::to_string(kSchemaVersion) +
              "): it was written by a newer payorch; run that version, or restore a backup made "
              "for this one (payorch never downgrades a store)");

  if (!options.read_only && !options.migrate && version < kSchemaVersion)
    Throw(path, ErrorCode::kTooOld,
          "schema version " + std::to_string(version) + " is older than this payorch's (" +
              std::to_string(kSchemaVersion) +
              "): only payorchd migrates a store; use the payorchctl of the payorchd that runs "
              "on it, or start the payorchd of this version once");
  if (options.read_only) {
    if (version < kSchemaVersion)
      Throw(path, ErrorCode::kTooOld,
            "schema version " + std::to_string(version) + " is older than this payorch's (" +
                std::to_string(kSchemaVersion) +
                "): start the payorchd of this version once (it migrates the store), then "
                "read it; a read-only open changes nothing");
    impl->Exec("PRAGMA foreign_keys = ON", "setting foreign_keys=ON");
    impl->Exec("PRAGMA temp_store = MEMORY", "setting temp_store");
    impl->Exec(("PRAGMA cache_size = -" + std::to_string(options.cache_kib)).c_str(),
               "setting cache_size");
    impl->stmts.reserve(kStmtCount);
    for (const char* sql : kSql)
      impl->stmts.push_back(std::make_unique<Stmt>(impl->db, path, sql));
    return Store(std::move(impl));
  }

  // WAL: readers do not block the writer, and one commit is one append + fsync.
  const auto mode = impl->QueryTexts("PRAGMA journal_mode = WAL", "setting journal_mode=WAL");
  if (mode.size() != 1 || mode[0] != "wal")
    Throw(path, ErrorCode::kIo,
          "journal_mode=WAL refused (got " + (mode.empty() ? std::string("nothing") : mode[0]) +
              "): the file system must support shared memory (no network file systems)");
  // FULL: a commit is on disk when COMMIT returns; the broker ack depends on it.
  impl->Exec("PRAGMA synchronous = FULL", "setting synchronous=FULL");
  impl->Exec("PRAGMA foreign_keys = ON", "setting foreign_keys=ON");
  impl->Exec("PRAGMA temp_store = MEMORY", "setting temp_store");
  impl->Exec(("PRAGMA cache_size = -" + std::to_string(options.cache_kib)).c_str(),
             "setting cache_size");
  sqlite3_wal_autocheckpoint(impl->db, options.wal_autocheckpoint_pages);

  for (int v = static_cast<int>(version) + 1; v <= kSchemaVersion; ++v) {
    const std::string what = "migrating to schema version " + std::to_string(v);
    impl->Exec("BEGIN IMMEDIATE", what.c_str());
    try {
      // Another process may have migrated while this one waited for the lock.
      if (impl->QueryInt("PRAGMA user_version", what.c_str()) < v) {
        impl->Exec(kMigrations[v - 1], what.c_str());
        if (v == 1)
          impl->Exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str(),
                     what.c_str());
        impl->Exec(("PRAGMA user_version = " + std::to_string(v)).c_str(), what.c_str());
      }
      impl->Exec("COMMIT", what.c_str());
    } catch (...) {
      if (sqlite3_get_autocommit(impl->db) == 0)
        sqlite3_exec(impl->db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  // Take and release the write lock once, so a file that can be read but not
  // written, or a writer that never lets go, is a start-up error and not the first
  // commit's.
  impl->Exec("BEGIN IMMEDIATE", "checking that the store can be written");
  impl->Exec("COMMIT", "checking that the store can be written");

  impl->stmts.reserve(kStmtCount);
  for (const char* sql : kSql) impl->stmts.push_back(std::make_unique<Stmt>(impl->db, path, sql));
  return Store(std::move(impl));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

const std::string& Store::path() const {
  return impl_->path;
}

WriteResult Store::CommitBatch(std::span<const Commit> batch, std::span<const int64_t> sent,
                               Time sent_at) {
  if (batch.empty() && sent.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    for (size_t i = 0; i < batch.size(); ++i) {
      current = i;
      s.Apply(batch[i]);
    }
    current.reset();
    // Confirms ride along with the decisions: one transaction, one fsync for both.
    for (int64_t seq : sent)
      s.Use(kMarkSent, "marking outbox rows sent").Int(1, seq).Int(2, ToMillis(sent_at)).Exec();
    tx.Commit();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, current);
  } catch (const std::bad_alloc&) {
    return Failed(StoreError(ErrorCode::kIo, "store " + s.path + ": out of memory"), current);
  }
}

WriteResult Store::MarkSent(std::span<const int64_t> seqs, Time at) {
  if (seqs.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  int64_t rows = 0;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    for (size_t i = 0; i < seqs.size(); ++i) {
      current = i;
      s.Use(kMarkSent, "marking outbox rows sent").Int(1, seqs[i]).Int(2, ToMillis(at)).Exec();
      rows += sqlite3_changes(s.db);
    }
    current.reset();
    tx.Commit();
  } catch (const StoreError& e) {
    return Failed(e, current);
  }
  WriteResult r;
  r.rows = rows;
  return r;
}

WriteResult Store::Checkpoint() {
  int wal_frames = 0;
  int copied = 0;
  const int rc = sqlite3_wal_checkpoint_v2(impl_->db, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &wal_frames, &copied);
  if (rc != SQLITE_OK) {
    const ErrorCode code = CodeOf(rc);
    return Failed(StoreError(code, Describe(impl_->path,
                                            std::string("checkpoint: ") +
                                                SqliteWords(sqlite3_errmsg(impl_->db), rc),
                                            code)),
                  std::nullopt);
  }
  WriteResult r;
  r.rows = copied;
  return r;
}

std::optional<domain::Payment> Store::LoadPayment(std::string_view order_id) {
  Run r = impl_->Use(kLoadPayment, "loading a payment");
  r.Text(1, order_id);
  if (!r.Step()) return std::nullopt;
  auto p = domain::DecodePayment(r.ColBlob(0));
  if (!p)
    Throw(impl_->path, ErrorCode::kCorrupt,
          "payments row " + std::string(order_id) +
              " has a body that does not decode (written by a newer payorch, or damaged)");
  return p;
}

bool Store::HasEvent(std::string_view event_id) {
  Run r = impl_->Use(kHasEvent, "looking up the inbox");
  r.Text(1, event_id);
  return r.Step();
}

std::vector<std::string> Store::DuePayments(Time now, size_t limit) {
  Run r = impl_->Use(kDuePayments, "finding due payments");
  r.Int(1, ToMillis(now)).Int(2, static_cast<int64_t>(limit));
  return ReadRows(r, FirstColumn);
}

std::optional<Time> Store::NextDueAt() {
  Run r = impl_->Use(kNextDueAt, "finding the next due time");
  if (!r.Step()) return std::nullopt;
  return r.ColOptTime(0);
}

std::vector<OutboxRow> Store::UnsentOutbox(size_t limit, int64_t after_seq) {
  Run r = impl_->Use(kUnsentOutbox, "reading unsent outbox rows");
  r.Int(1, static_cast<int64_t>(limit)).Int(2, after_seq);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOutbox(row, 0); });
}

PaymentGauges Store::Gauges() {
  Impl& s = *impl_;
  PaymentGauges g;
  const Stmt phases(s.db, s.path, "SELECT phase, count(*) FROM payments GROUP BY phase");
  Run by_phase(s.db, s.path, phases, "counting payments by phase");
  g.by_phase = ReadRows(by_phase, [](const Run& row) {
    return std::pair<std::string, int64_t>(row.ColText(0), row.ColInt(1));
  });
  const Stmt doubt(s.db, s.path,
                   "SELECT min(doubt_since) FROM payments WHERE doubt_since IS NOT NULL");
  Run oldest(s.db, s.path, doubt, "finding the oldest doubt");
  if (oldest.Step()) g.oldest_doubt = oldest.ColOptTime(0);
  Run unsent = s.Use(kCountUnsent, "counting unsent outbox rows");
  unsent.Step();
  g.outbox_unsent = unsent.ColInt(0);
  return g;
}

std::vector<std::string> Store::PaymentsWithCallsInFlight() {
  Run r = impl_->Use(kInFlight, "finding payments with calls in flight");
  return ReadRows(r, FirstColumn);
}

std::vector<OperationRow> Store::UnfinishedOperations() {
  Run r = impl_->Use(kUnfinishedOperations, "reading unfinished operations");
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOperation(row); });
}

std::vector<HistoryRow> Store::History(std::string_view order_id) {
  Run r = impl_->Use(kHistory, "reading history");
  r.Text(1, order_id);
  return ReadRows(r, [](const Run& row) {
    HistoryRow h;
    h.id = row.ColInt(0);
    h.order_id = row.ColText(1);
    h.at = row.ColTime(2);
    h.input = row.ColText(3);
    h.phase_before = row.ColText(4);
    h.phase_after = row.ColText(5);
    h.note = row.ColText(6);
    return h;
  });
}

std::vector<OperationRow> Store::Operations(std::string_view order_id) {
  Run r = impl_->Use(kOperations, "reading operations");
  r.Text(1, order_id);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOperation(row); });
}

std::vector<OutboxRow> Store::OutboxFor(std::string_view order_id) {
  Run r = impl_->Use(kOutboxFor, "reading outbox rows");
  r.Text(1, order_id);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOutbox(row, 0); });
}

Counts Store::RowCounts(Time now) {
  auto count = [this](StmtId id, std::optional<Time> t = std::nullopt) {
    Run r = impl_->Use(id, "counting rows");
    if (t) r.Int(1, ToMillis(*t));
    r.Step();
    return r.ColInt(0);
  };
  Counts c;
  c.payments = count(kCountPayments);
  c.payments_due = count(kCountDue, now);
  c.payments_in_flight = count(kCountInFlight);
  c.inbox = count(kCountInbox);
  c.outbox_unsent = count(kCountUnsent);
  c.operations_unfinished = count(kCountUnfinished);
  return c;
}

// --- Operator queries and replay records (payorchctl) -------------------------
// Prepared per call rather than cached: an operator's tool runs them a few times.

std::vector<PaymentSummary> Store::ListPayments(const PaymentFilter& filter) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT order_id, phase, payment_id, authorized, captured, cancelled, reversed,"
                  " due_at, doubt_since, in_flight_call, updated_at FROM payments"
                  " WHERE (?1 IS NULL OR phase = ?1) AND (?2 IS NULL OR updated_at < ?2)"
                  " AND (?3 = 0 OR doubt_since IS NOT NULL)"
                  " ORDER BY updated_at, order_id LIMIT ?4");
  const std::string phase = filter.phase ? domain::PhaseName(*filter.phase) : "";
  Run r(s.db, s.path, stmt, "listing payments");
  if (filter.phase) {
    r.Text(1, phase);
  } else {
    r.Null(1);
  }
  if (filter.updated_before) {
    r.Int(2, ToMillis(*filter.updated_before));
  } else {
    r.Null(2);
  }
  r.Int(3, filter.in_doubt ? 1 : 0).Int(4, static_cast<int64_t>(filter.limit));
  return ReadRows(r, [](const Run& row) {
    PaymentSummary p;
    p.order_id = row.ColText(0);
    p.phase = row.ColText(1);
    p.payment_id = row.ColText(2);
    p.balance = domain::Balance{row.ColInt(3), row.ColInt(4), row.ColInt(5), row.ColInt(6)};
    p.due_at = row.ColOptTime(7);
    p.doubt_since = row.ColOptTime(8);
    if (!row.IsNull(9)) p.in_flight_call = row.ColInt(9);
    p.updated_at = row.ColTime(10);
    return p;
  });
}

WriteResult Store::StartReplay(ReplayRecord& record) {
  Impl& s = *impl_;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt stmt(s.db, s.path,
                    "INSERT INTO replays (who, started_at, reason, filter, queue, outcome, detail)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, 'running', '')");
    Run(s.db, s.path, stmt, "recording a replay")
        .Text(1, record.who)
        .Int(2, ToMillis(record.started_at))
        .Text(3, record.reason)
        .Text(4, record.filter)
        .Text(5, record.queue)
        .Exec();
    const int64_t id = sqlite3_last_insert_rowid(s.db);
    tx.Commit();
    record.id = id;
    record.outcome = "running";
    record.message_count = 0;
    record.finished_at.reset();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, std::nullopt);
  }
}

WriteResult Store::AddReplayedMessages(int64_t replay_id,
                                       std::span<const ReplayedMessage> messages) {
  if (messages.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt count(s.db, s.path, "SELECT message_count FROM replays WHERE id = ?1");
    int64_t n = 0;
    {
      Run r(s.db, s.path, count, "reading the replay record");
      r.Int(1, replay_id);
      if (!r.Step())
        Throw(s.path, ErrorCode::kConstraint, "no replay record " + std::to_string(replay_id));
      n = r.ColInt(0);
    }
    const Stmt insert(s.db, s.path,
                      "INSERT INTO replay_messages (replay_id, n, message_id, event_id, order_id,"
                      " routing_key, replayed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    for (size_t i = 0; i < messages.size(); ++i) {
      current = i;
      const ReplayedMessage& m = messages[i];
      Run(s.db, s.path, insert, "recording a replayed message")
          .Int(1, replay_id)
          .Int(2, ++n)
          .Text(3, m.message_id)
          .Text(4, m.event_id)
          .Text(5, m.order_id)
          .Text(6, m.routing_key)
          .Int(7, ToMillis(m.replayed_at))
          .Exec();
    }
    current.reset();
    const Stmt update(s.db, s.path, "UPDATE replays SET message_count = ?2 WHERE id = ?1");
    Run(s.db, s.path, update, "counting replayed messages").Int(1, replay_id).Int(2, n).Exec();
    tx.Commit();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, current);
  }
}

WriteResult Store::FinishReplay(int64_t replay_id, std::string_view outcome,
                                std::string_view detail, Time at) {
  Impl& s = *impl_;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt stmt(s.db, s.path,
                    "UPDATE replays SET finished_at = ?2, outcome = ?3, detail = ?4 WHERE id = ?1");
    Run(s.db, s.path, stmt, "finishing the replay record")
        .Int(1, replay_id)
        .Int(2, ToMillis(at))
        .Text(3, outcome)
        .Text(4, detail)
        .Exec();
    if (sqlite3_changes(s.db) != 1)
      Throw(s.path, ErrorCode::kConstraint, "no replay record " + std::to_string(replay_id));
    tx.Commit();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, std::nullopt);
  }
}

namespace {

#define PAYORCH_REPLAY_COLUMNS \
  "id, who, started_at, finished_at, reason, filter, queue, message_count, outcome, detail"

ReplayRecord ReadReplay(const Run& r) {
  ReplayRecord rec;
  rec.id = r.ColInt(0);
  rec.who = r.ColText(1);
  rec.started_at = r.ColTime(2);
  rec.finished_at = r.ColOptTime(3);
  rec.reason = r.ColText(4);
  rec.filter = r.ColText(5);
  rec.queue = r.ColText(6);
  rec.message_count = r.ColInt(7);
  rec.outcome = r.ColText(8);
  rec.detail = r.ColText(9);
  return rec;
}

}  // namespace

std::vector<ReplayRecord> Store::Replays(size_t limit) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT " PAYORCH_REPLAY_COLUMNS " FROM replays ORDER BY id DESC LIMIT ?1");
  Run r(s.db, s.path, stmt, "reading replay records");
  r.Int(1, static_cast<int64_t>(limit));
  return ReadRows(r, ReadReplay);
}

std::optional<ReplayRecord> Store::LoadReplay(int64_t replay_id) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path, "SELECT " PAYORCH_REPLAY_COLUMNS " FROM replays WHERE id = ?1");
  Run r(s.db, s.path, stmt, "reading a replay record");
  r.Int(1, replay_id);
  if (!r.Step()) return std::nullopt;
  return ReadReplay(r);
}

#undef PAYORCH_REPLAY_COLUMNS

std::vector<ReplayedMessage> Store::ReplayMessages(int64_t replay_id) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT message_id, event_id, order_id, routing_key, replayed_at"
                  " FROM replay_messages WHERE replay_id = ?1 ORDER BY n");
  Run r(s.db, s.path, stmt, "reading replayed messages");
  r.Int(1, replay_id);
  return ReadRows(r, [](const Run& row) {
    ReplayedMessage m;
    m.message_id = row.ColText(0);
    m.event_id = row.ColText(1);
    m.order_id = row.ColText(2);
    m.routing_key = row.ColText(3);
    m.replayed_at = row.ColTime(4);
    return m;
  });
}

}  // namespace payorch::store
