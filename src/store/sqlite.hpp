// The store's SQLite helpers, private to src/store: errors with advice, prepared
// statements and their runs, transactions. Thread: as the Store using them.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace payorch::store::detail {

using domain::FromMillis;
using domain::Time;
using domain::ToMillis;

inline ErrorCode CodeOf(int rc) {
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
inline const char* Advice(ErrorCode code) {
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

inline std::string Describe(const std::string& path, const std::string& what, ErrorCode code) {
  std::string m = "store " + path + ": " + what;
  if (const char* advice = Advice(code)) m += std::string(" (") + advice + ")";
  return m;
}

[[noreturn]] inline void Throw(const std::string& path, ErrorCode code, const std::string& what) {
  throw StoreError(code, Describe(path, what, code));
}

// For messages that already say what to do.
[[noreturn]] inline void ThrowPlain(const std::string& path, ErrorCode code,
                                    const std::string& what) {
  throw StoreError(code, "store " + path + ": " + what);
}

// SQLite's message, and its generic words for the code when they add something.
inline std::string SqliteWords(const char* msg, int rc) {
  std::string words = msg != nullptr ? msg : "";
  const std::string generic = sqlite3_errstr(rc);
  if (words.empty()) return generic;
  if (words != generic) words += " (" + generic + ")";
  return words;
}

[[noreturn]] inline void ThrowSqlite(sqlite3* db, const std::string& path, int rc,
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

// Steps `r` through its result rows, reading each one with `read`.
template <typename Read>
auto ReadRows(Run& r, Read read) {
  std::vector<std::decay_t<decltype(read(std::as_const(r)))>> out;
  while (r.Step()) out.push_back(read(r));
  return out;
}

inline std::string FirstColumn(const Run& r) {
  return r.ColText(0);
}

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

inline WriteResult Failed(const StoreError& e, std::optional<size_t> at) {
  WriteResult r;
  r.ok = false;
  r.code = e.code();
  r.message = e.what();
  r.failed_at = at;
  return r;
}

}  // namespace payorch::store::detail
