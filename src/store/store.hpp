// The durable state of payorch in one SQLite file (WAL, synchronous=FULL): payments,
// inbox, outbox, PayEx operations and history. CommitBatch makes a batch of
// decisions durable in one transaction and one fsync (design.md §3, group commit).
// Thread: a Store owns one SQLite connection and is used by one thread at a time;
// open one Store per thread (they may share the file), never share a Store.
// Errors: Open throws StoreError naming the file and what to do; writes return a
// [[nodiscard]] WriteResult (nothing of a failed write is stored); queries throw
// StoreError only when the file or the disk is broken. After a failed write that
// is not kConstraint or kLocked, stop and restart: what is on disk is consistent.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "domain/types.hpp"

namespace payorch::store {

enum class ErrorCode {
  kCorrupt,     // not a database, malformed, failed quick_check, a body that does not decode
  kForeign,     // an SQLite file that is not a payorch store
  kTooNew,      // schema written by a newer payorch than this one
  kTooOld,      // read_only: schema older than this build (its payorchd migrates it)
  kMissing,     // the file does not exist and Options::create_if_missing is off
  kUnwritable,  // the file, its directory or its -wal/-shm cannot be created or written
  kLocked,      // another connection held the lock longer than busy_timeout
  kConstraint,  // a write broke a constraint (a duplicate event id, a reused call id, ...)
  kFull,        // the disk is full
  kIo,          // any other SQLite or IO failure
};
const char* ErrorCodeName(ErrorCode code);

class StoreError : public std::runtime_error {
 public:
  StoreError(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

struct Options {
  // Opens the file read-only (SQLITE_OPEN_READONLY): no migration, no lock probe,
  // nothing written, not even to a file that needs a migration (kTooOld). For
  // operators' reads next to a running payorchd (payorchctl list/show/--dry-run).
  // Writes return a failed WriteResult.
  bool read_only = false;
  // Off: a store of an older schema is refused (kTooOld) instead of migrated. For
  // payorchctl, which writes its replay records next to a running payorchd and must
  // never change the schema under it; only payorchd migrates.
  bool migrate = true;
  // Off for a daemon that must find its existing state: a missing file is then an error.
  bool create_if_missing = true;
  // How long a statement waits for another connection's lock before kLocked.
  std::chrono::milliseconds busy_timeout{5000};
  // PRAGMA quick_check at Open; reads the whole file (about a second per GB).
  // payorchd opens without it and runs QuickCheck beside the engine instead.
  bool quick_check = true;
  // SQLite page cache of this connection.
  int cache_kib = 32 * 1024;
  // The commit that takes the WAL past this many pages copies it into the file
  // (a checkpoint, with its own fsync). SQLite's default is 1000; a larger WAL
  // lets pages rewritten by many commits be copied once (measured by store_bench).
  // 0 turns it off: then Checkpoint() must be called, e.g. by a Store on another thread.
  int wal_autocheckpoint_pages = 4000;
};

// The outcome of a PayEx call that a decision consumed: finishes its operations row.
struct CallFinished {
  uint64_t call_id = 0;
  std::string result;  // domain::ResultClassName(...), or e.g. "abandoned" after a restart
  int64_t latency_us = 0;  // the call, sent to answered
};

// Everything one decision makes durable. Values only (no pointers into the
// engine's cache), so a decision can wait in a group-commit queue while the engine
// decides the same payment again.
struct Commit {
  // The phase the decision started from, for history and the counts by phase: the
  // phase of the payment's row as the batches before left it; nullopt when the
  // payment had no row yet.
  std::optional<domain::Phase> phase_before;
  domain::Payment after;                     // upserted as the payments row of after.order_id
  std::string inbox_event_id;                // the order event consumed; empty when none
  std::vector<domain::PaymentEvent> events;  // to the outbox, in sequence order
  std::vector<domain::PayexCall> calls;      // operations rows, status in_flight
  std::optional<CallFinished> finished;      // applied before calls
  std::string input_name;                    // history: what was decided on
  std::string note;                          // history: one line for the operator
  domain::Time at{};                         // when: received_at, created_at, sent_at, ...
};

// The outcome of a write. Nothing of a failed write is stored.
struct [[nodiscard]] WriteResult {
  bool ok = true;
  ErrorCode code = ErrorCode::kIo;  // when !ok
  std::string message;              // when !ok: the file, the row, SQLite's words
  std::optional<size_t> failed_at;  // the index of the commit or seq that failed, if known
  int64_t rows = 0;                 // MarkSent: rows newly marked

  explicit operator bool() const { return ok; }
};

struct OutboxRow {
  int64_t seq = 0;  // the outbox's own order: publish in this order
  domain::PaymentEvent event;
  domain::Time created_at{};
  std::optional<domain::Time> sent_at;
};

struct OperationRow {
  std::string order_id;
  uint64_t call_id = 0;
  uint32_t op_id = 0;
  std::string kind;  // domain::OpKindName
  std::string payee_reference;
  int64_t amount = 0;
  std::string status;  // "in_flight" or "finished"
  domain::Time sent_at{};
  std::optional<domain::Time> finished_at;
  std::string result;  // CallFinished::result; empty while in flight
  std::optional<int64_t> latency_us;  // microseconds
};

struct HistoryRow {
  int64_t id = 0;
  std::string order_id;
  domain::Time at{};
  std::string input;
  std::string phase_before;  // empty for the first row of a payment
  std::string phase_after;
  std::string note;
};

// For metrics. payments and inbox count every row (O(rows)); the rest use
// their partial indexes.
struct Counts {
  int64_t payments = 0;
  int64_t payments_due = 0;  // due_at <= now
  int64_t payments_in_flight = 0;
  int64_t inbox = 0;
  int64_t outbox_unsent = 0;
  int64_t operations_unfinished = 0;
};

// What the engine's gauges start from (it keeps them itself as it decides): payments
// per phase (kept in the store as each commit changes them), the payments in doubt
// with their doubt_since, the outbox backlog. Cost: the phases and the payments in
// doubt, never a scan of all payments.
struct PaymentGauges {
  std::vector<std::pair<std::string, int64_t>> by_phase;  // phase name, count
  std::vector<std::pair<std::string, domain::Time>> in_doubt;  // order id, doubt_since
  int64_t outbox_unsent = 0;
};

// A replay of dead letters by an operator (payorchctl dlq replay): who, when, why,
// which messages. Written while the replay runs: started as "running", messages
// added in batches as their copies are confirmed, finished with its outcome.
struct ReplayRecord {
  int64_t id = 0;
  std::string who;  // $USER, or payorchctl --who
  domain::Time started_at{};
  std::optional<domain::Time> finished_at;  // none while running (or if the replayer died)
  std::string reason;                       // the operator's --reason text
  std::string filter;         // which messages: "all", "ids=...", "error=... since=..."
  std::string queue;          // the dead-letter queue replayed from
  int64_t message_count = 0;  // messages replayed (published and confirmed)
  std::string outcome;        // "running", "completed", "failed"
  std::string detail;         // for people: why it failed, what remained
};

// One message of a replay.
struct ReplayedMessage {
  std::string message_id;  // payorchctl's id of the dead letter
  std::string event_id;    // "" when the body did not decode
  std::string order_id;    // "" when the body did not decode
  std::string routing_key;
  domain::Time replayed_at{};
};

// Payments for an operator's list; unset filters match everything.
struct PaymentFilter {
  std::optional<domain::Phase> phase;
  std::optional<domain::Time> updated_before;  // last changed before this time
  std::optional<domain::Time> updated_since;   // last changed at or after this time
  bool in_doubt = false;                       // only payments with an unresolved doubt
  size_t limit = 1000;
};

// A payments row without its body.
struct PaymentSummary {
  std::string order_id;
  std::string phase;
  std::string payment_id;
  domain::Balance balance;
  std::optional<domain::Time> due_at;
  std::optional<domain::Time> doubt_since;
  std::optional<int64_t> in_flight_call;
  domain::Time updated_at{};
};

class Store {
 public:
  // The schema version this build writes (PRAGMA user_version); one migration each.
  static constexpr int kSchemaVersion = 5;

  // Opens or creates the store, applying missing migrations (one transaction each).
  // Throws StoreError for a corrupt or foreign file, a newer schema, a lock held
  // past busy_timeout, an unwritable file or directory: never resets or recreates.
  static Store Open(const std::string& path, const Options& options = {});

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  // One transaction (BEGIN IMMEDIATE ... COMMIT) for the whole batch, in order:
  // per commit the payment upsert, the inbox row, finishing the call, the new
  // operations, the outbox events and a history row. All or nothing.
  // `sent`: outbox rows confirmed by the broker meanwhile, marked in the same
  // transaction (MarkSent without a second fsync); WriteResult::rows counts those
  // newly marked.
  WriteResult CommitBatch(std::span<const Commit> batch, std::span<const int64_t> sent = {},
                          domain::Time sent_at = {});
  WriteResult CommitOne(const Commit& commit) { return CommitBatch({&commit, 1}); }

  // Marks outbox rows as confirmed by the broker; rows already marked are left alone.
  WriteResult MarkSent(std::span<const int64_t> seqs, domain::Time at);

  // Copies what it can of the WAL into the database file without waiting for
  // readers or the writer (a PASSIVE checkpoint); rows = frames copied.
  WriteResult Checkpoint();

  std::optional<domain::Payment> LoadPayment(std::string_view order_id);
  // True when this order event was consumed before (the inbox has it).
  bool HasEvent(std::string_view event_id);
  // Orders whose due_at <= now, earliest first.
  std::vector<std::string> DuePayments(domain::Time now, size_t limit);
  // The earliest due_at of any payment: the engine's one in-memory timer.
  std::optional<domain::Time> NextDueAt();
  // Unsent outbox rows in seq order (the order they were committed), after `after_seq`
  // (the relay's cursor: rows it already holds in memory are not read again).
  std::vector<OutboxRow> UnsentOutbox(size_t limit, int64_t after_seq = 0);
  // Payments whose body has a call in flight (in_flight.call_id != 0): what a
  // restart must resolve.
  std::vector<std::string> PaymentsWithCallsInFlight();
  // Operations rows not finished, oldest first.
  std::vector<OperationRow> UnfinishedOperations();

  // An operator's view of one order.
  std::vector<HistoryRow> History(std::string_view order_id);
  std::vector<OperationRow> Operations(std::string_view order_id);
  std::vector<OutboxRow> OutboxFor(std::string_view order_id);

  Counts RowCounts(domain::Time now);
  // For the engine's start: O(phases + payments in doubt + unsent outbox rows).
  PaymentGauges Gauges();

  // Operator's list of payments, oldest change first (payorchctl payment list).
  std::vector<PaymentSummary> ListPayments(const PaymentFilter& filter);

  // Replay records (schema version 2). StartReplay inserts `record` as running and
  // sets record.id; AddReplayedMessages appends messages and counts them (one
  // transaction); FinishReplay sets finished_at, outcome and detail.
  WriteResult StartReplay(ReplayRecord& record);
  WriteResult AddReplayedMessages(int64_t replay_id, std::span<const ReplayedMessage> messages);
  WriteResult FinishReplay(int64_t replay_id, std::string_view outcome, std::string_view detail,
                           domain::Time at);
  // Newest first.
  std::vector<ReplayRecord> Replays(size_t limit);
  std::optional<ReplayRecord> LoadReplay(int64_t replay_id);
  std::vector<ReplayedMessage> ReplayMessages(int64_t replay_id);

  // PRAGMA quick_check over the whole file (about a second per GB): nullopt when
  // intact, else what it found. Throws StoreError when it cannot run (or was
  // interrupted).
  std::optional<std::string> QuickCheck();
  // Records that this store holds `partition` of `partitions` (payorchd, at start),
  // or throws StoreError kForeign when it was bound to another: a store copied or
  // mounted under the wrong partition, or a deployment whose partition count changed,
  // would otherwise serve orders that belong elsewhere.
  void BindPartition(uint32_t partition, uint32_t partitions);
  // Makes a query running on this connection (QuickCheck) stop soon with an error;
  // the one call that may come from another thread.
  void Interrupt();

  const std::string& path() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace payorch::store
