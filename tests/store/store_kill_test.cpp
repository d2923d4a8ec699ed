// A child process commits large batches in a loop and is killed with SIGKILL at
// random moments, most of them inside CommitBatch. After every kill the file must
// open cleanly and hold every batch the child reported committed, plus at most
// the one it was working on, each batch with all of its rows or none.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "test_util.hpp"

namespace payorch::store {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kPerBatch = 256;  // decisions per batch, each with 5 rows
constexpr int kRounds = 20;
constexpr auto kBound = 60s;  // how long any one wait may take before the test fails

std::string Tag(int batch, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "b%06d-%04d", batch, i);
  return buf;
}

std::vector<Commit> MakeBatch(int batch) {
  std::vector<Commit> commits(kPerBatch);
  for (int i = 0; i < kPerBatch; ++i) {
    const std::string order = Tag(batch, i);
    Commit& c = commits[i];
    c.after = testing::FullPayment(order, batch);
    c.after.last_sequence = 1;
    c.inbox_event_id = order + "-in";
    c.events.push_back(testing::FullEvent(order, 1, batch));
    c.calls.push_back(testing::FullCall(order, 1));
    c.input_name = "order_event:purchase_requested";
    c.note = "batch " + std::to_string(batch);
    c.at = domain::FromMillis(1'700'000'000'000 + batch);
  }
  return commits;
}

// The child: commit batches from `first` on, writing ~batch to `fd` before each
// CommitBatch and batch after it. Never returns.
[[noreturn]] void CommitForever(const std::string& path, int first, int fd) {
  try {
    Store store = Store::Open(path);
    for (int batch = first;; ++batch) {
      const std::vector<Commit> commits = MakeBatch(batch);
      const int starting = ~batch;
      if (write(fd, &starting, sizeof starting) != sizeof starting) _exit(4);
      const WriteResult r = store.CommitBatch(commits);
      if (!r) {
        std::fprintf(stderr, "child: batch %d: %s\n", batch, r.message.c_str());
        _exit(3);
      }
      if (write(fd, &batch, sizeof batch) != sizeof batch) _exit(4);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    _exit(5);
  }
}

// What the parent knows of the child's progress.
struct Progress {
  int last_acked = -1;     // the last batch whose CommitBatch returned
  int acks = 0;            // batches acknowledged in this round
  bool in_commit = false;  // the child was inside CommitBatch at its last message
  Clock::time_point commit_started{};
  Clock::duration commit_time{};  // the total time acknowledged CommitBatch calls took
};

// Reads the child's messages until `done()` holds, `stop_at` passes or the pipe
// closes. Returns false when kBound passes first.
template <typename Done>
bool ReadAcks(int fd, Progress& progress, Done done,
              Clock::time_point stop_at = Clock::time_point::max()) {
  const auto deadline = Clock::now() + kBound;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= stop_at) return true;
    if (now >= deadline) return false;
    const auto wait =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::min(stop_at, deadline) - now);
    const timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                      static_cast<long>(wait.count() % 1'000'000'000)};
    pollfd p{fd, POLLIN, 0};
    if (ppoll(&p, 1, &ts, nullptr) <= 0) continue;
    int batch = 0;
    const ssize_t n = read(fd, &batch, sizeof batch);
    if (n <= 0) return true;  // the child is gone
    progress.in_commit = batch < 0;
    if (batch < 0) {
      progress.commit_started = Clock::now();
    } else {
      progress.last_acked = batch;
      ++progress.acks;
      progress.commit_time += Clock::now() - progress.commit_started;
    }
  }
  return true;
}

// Rows per batch number in `table`, the batch taken from the tag at the start of `column`.
std::map<int, int> RowsPerBatch(sqlite3* db, const std::string& table, const std::string& column) {
  std::map<int, int> out;
  const std::string sql = "SELECT CAST(substr(" + column + ", 2, 6) AS INTEGER), count(*) FROM " +
                          table + " GROUP BY 1";
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  while (sqlite3_step(s) == SQLITE_ROW) out[sqlite3_column_int(s, 0)] = sqlite3_column_int(s, 1);
  sqlite3_finalize(s);
  return out;
}

std::string IntegrityCheck(sqlite3* db) {
  std::string result;
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr);
  while (sqlite3_step(s) == SQLITE_ROW)
    result += reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return result;
}

TEST(StoreKillTest, EveryBatchSurvivesWholeOrNotAtAll) {
  testing::TempDir dir;
  const std::string path = dir.File("payorch.db");
  std::mt19937 rng(std::random_device{}());
  int next_batch = 0;             // the first batch number the next child commits
  int kills_in_commit = 0;        // the child was inside CommitBatch
  int kills_after_last_sync = 0;  // ...and its batch turned out committed

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const testing::Child child =
        testing::ForkWithPipe([&](int write_fd) { CommitForever(path, next_batch, write_fd); });
    const pid_t pid = child.pid;
    const int fd = child.read_fd;

    // Every fifth round the kill comes at a random moment of the first 20 ms (in
    // Open, a migration, or the first batch). Otherwise the child commits a few
    // batches, timing them, and is killed at a random moment of the next
    // CommitBatch (up to 1.2 times as long as one took).
    const bool early = round % 5 == 0;
    const int wanted = early ? 0 : 1 + static_cast<int>(rng() % 4);
    Progress progress;
    progress.last_acked = next_batch - 1;
    ASSERT_TRUE(ReadAcks(fd, progress,
                         [&] { return progress.acks >= wanted && (early || progress.in_commit); }))
        << "the child made no progress within " << kBound.count() << " s";
    const auto window =
        early ? Clock::duration(20ms) : progress.commit_time * 12 / (10 * progress.acks);
    const auto kill_at = Clock::now() + window * static_cast<int>(rng() % 1000) / 1000;
    ASSERT_TRUE(ReadAcks(
        fd, progress, [] { return false; }, kill_at));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    // Acks written before the kill are still in the pipe.
    ASSERT_TRUE(ReadAcks(fd, progress, [] { return false; }));
    close(fd);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended by itself (status " << status << "): see its stderr";

    // The store opens (quick_check included) and SQLite finds nothing wrong.
    { Store store = Store::Open(path); }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(IntegrityCheck(db), "ok");
    const auto payments = RowsPerBatch(db, "payments", "order_id");
    const std::map<std::string, std::map<int, int>> others = {
        {"inbox", RowsPerBatch(db, "inbox", "event_id")},
        {"outbox", RowsPerBatch(db, "outbox", "order_id")},
        {"operations", RowsPerBatch(db, "operations", "order_id")},
        {"history", RowsPerBatch(db, "history", "order_id")},
    };
    sqlite3_close(db);

    // Batches 0..last form a prefix with all their rows in every table.
    const int last = payments.empty() ? -1 : payments.rbegin()->first;
    EXPECT_EQ(static_cast<int>(payments.size()), last + 1) << "a batch is missing in the middle";
    for (const auto& [batch, rows] : payments)
      EXPECT_EQ(rows, kPerBatch) << "payments of " << batch;
    for (const auto& [table, per_batch_rows] : others) {
      EXPECT_EQ(per_batch_rows.size(), payments.size()) << table;
      for (const auto& [batch, rows] : per_batch_rows)
        EXPECT_EQ(rows, kPerBatch) << table << " of batch " << batch;
    }
    // Every acknowledged batch is there; at most the one in progress beyond it.
    EXPECT_GE(last, progress.last_acked);
    EXPECT_LE(last, progress.last_acked + 1);
    if (progress.in_commit) ++kills_in_commit;
    if (last == progress.last_acked + 1) ++kills_after_last_sync;
    if (::testing::Test::HasFailure()) return;
    next_batch = last + 1;
  }
  // For the log: how many kills landed inside CommitBatch, and of those how many
  // after the commit was durable but before CommitBatch returned.
  std::printf(
      "%d kills, %d batches committed, %d kills inside CommitBatch, %d of them after "
      "the commit was durable\n",
      kRounds, next_batch, kills_in_commit, kills_after_last_sync);
}

}  // namespace
}  // namespace payorch::store
