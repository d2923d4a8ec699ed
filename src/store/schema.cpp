// The store's schema, its migrations, and Store::Open: the checks before SQLite
// touches a path, the checks before anything is written, WAL and FULL sync.
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/serialize.hpp"
#include "store/impl.hpp"

namespace payorch::store {

namespace {

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
    // 3: payments counted by phase as they change (the gauges of /metrics read these
    // instead of scanning every payment), and an index of the payments in doubt.
    R"sql(
CREATE TABLE phase_counts (
  phase TEXT PRIMARY KEY NOT NULL,
  n     INTEGER NOT NULL
) WITHOUT ROWID;
-- One pass without a sort (GROUP BY would sort every payment in memory).
INSERT INTO phase_counts (phase, n)
  SELECT name, CASE name
      WHEN 'new' THEN s.new WHEN 'creating' THEN s.creating
      WHEN 'awaiting_msisdn' THEN s.awaiting_msisdn WHEN 'authorizing' THEN s.authorizing
      WHEN 'awaiting_payer' THEN s.awaiting_payer WHEN 'aborting' THEN s.aborting
      WHEN 'authorized' THEN s.authorized WHEN 'failed' THEN s.failed
      WHEN 'aborted' THEN s.aborted END
  FROM (SELECT total(phase = 'new') AS new, total(phase = 'creating') AS creating,
               total(phase = 'awaiting_msisdn') AS awaiting_msisdn,
               total(phase = 'authorizing') AS authorizing,
               total(phase = 'awaiting_payer') AS awaiting_payer,
               total(phase = 'aborting') AS aborting, total(phase = 'authorized') AS authorized,
               total(phase = 'failed') AS failed, total(phase = 'aborted') AS aborted
        FROM payments) AS s,
       (SELECT 'new' AS name UNION ALL SELECT 'creating' UNION ALL SELECT 'awaiting_msisdn'
        UNION ALL SELECT 'authorizing' UNION ALL SELECT 'awaiting_payer'
        UNION ALL SELECT 'aborting' UNION ALL SELECT 'authorized' UNION ALL SELECT 'failed'
        UNION ALL SELECT 'aborted');
CREATE INDEX payments_doubt ON payments(doubt_since) WHERE doubt_since IS NOT NULL;
)sql",
    // 4: facts about the store itself, one row each: which partition of how many it
    // holds ('partition' as "N/P", written by payorchd's first start on it).
    R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    // 5: each PayEx call's latency in microseconds (a loopback call takes less than a
    // millisecond; latency_ms, kept for older readers, said 0).
    R"sql(
ALTER TABLE operations ADD COLUMN latency_us INTEGER;
)sql",
};

}  // namespace

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

  int flags =
      (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
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
    if (auto damage = impl->QuickCheck()) Throw(path, ErrorCode::kCorrupt, *damage);
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
    for (const char* sql : kSql) impl->stmts.push_back(std::make_unique<Stmt>(impl->db, path, sql));
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

std::optional<std::string> Store::Impl::QuickCheck() {
  const auto lines = QueryTexts("PRAGMA quick_check(5)", "PRAGMA quick_check");
  if (lines.size() == 1 && lines[0] == "ok") return std::nullopt;
  std::string what = "PRAGMA quick_check found damage:";
  for (std::string l : lines) {
    if (l.rfind("*** in database ", 0) == 0) l.erase(0, l.find('\n') + 1);
    for (char& ch : l)
      if (ch == '\n') ch = ' ';
    what += " " + l + ";";
  }
  return what;
}

void Store::BindPartition(uint32_t partition, uint32_t partitions) {
  Impl& im = *impl_;
  const std::string mine = std::to_string(partition) + "/" + std::to_string(partitions);
  const char* what = "binding the store to its partition";
  im.Exec("BEGIN IMMEDIATE", what);
  try {
    const auto bound = im.QueryTexts("SELECT value FROM meta WHERE key = 'partition'", what);
    if (bound.empty()) {
      const std::string sql = "INSERT INTO meta (key, value) VALUES ('partition', '" + mine + "')";
      im.Exec(sql.c_str(), what);
    }
    im.Exec("COMMIT", what);
    if (!bound.empty() && bound[0] != mine) {
      const std::string theirs = bound[0];
      const auto slash = theirs.find('/');
      Throw(im.path, ErrorCode::kForeign,
            "this store holds partition " + theirs.substr(0, slash) + " of " +
                (slash == std::string::npos ? std::string("?") : theirs.substr(slash + 1)) +
                ", not partition " + std::to_string(partition) + " of " +
                std::to_string(partitions) +
                ": check store.path and bus.topology.partitions (a deployment's partition count "
                "is fixed; its orders are not moved between partitions)");
    }
  } catch (...) {
    if (sqlite3_get_autocommit(im.db) == 0)
      sqlite3_exec(im.db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::optional<std::string> Store::QuickCheck() {
  return impl_->QuickCheck();
}

void Store::Interrupt() {
  sqlite3_interrupt(impl_->db);
}

}  // namespace payorch::store
