// A commit that finds the store locked by another connection (an operator's
// replay, a backup) past busy_timeout is tried again within a bound, not fatal;
// the writer thread (src/runtime) and the simulation's writer share this commit.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "engine/ports.hpp"
#include "store/store.hpp"

namespace payorch::engine {
namespace {

struct Scratch {
  Scratch() {
    dir = std::filesystem::temp_directory_path() /
          ("payorch-commit-retry-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~Scratch() { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

// Another connection that holds the write lock until Release().
class LockHolder {
 public:
  explicit LockHolder(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ~LockHolder() {
    Release();
    sqlite3_close(db_);
  }
  void Release() {
    if (held_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    held_ = false;
  }

 private:
  sqlite3* db_ = nullptr;
  bool held_ = true;
};

CommitJob OneDecision(const std::string& order_id) {
  CommitJob job;
  job.id = 1;
  store::Commit c;
  c.after.order_id = order_id;
  c.after.phase = domain::Phase::kCreating;
  c.input_name = "test";
  c.at = domain::FromMillis(1'800'000'000'000);
  job.commits.push_back(c);
  return job;
}

TEST(CommitRetry, ALockHeldPastBusyTimeoutIsWaitedOutNotFatal) {
  Scratch s;
  const std::string path = (s.dir / "store.db").string();
  store::Options o;
  o.busy_timeout = std::chrono::milliseconds(20);
  store::Store store = store::Store::Open(path, o);
  LockHolder other(path);
  int pauses = 0;
  store::WriteResult r = CommitRetryingWhenBusy(store, OneDecision("o-1"), domain::Time{}, 4,
                                                [&](int attempt) {
                                                  ++pauses;
                                                  if (attempt == 2) other.Release();
                                                });
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(pauses, 2);  // refused twice, committed on the third try
  EXPECT_TRUE(store.LoadPayment("o-1").has_value());
}

TEST(CommitRetry, ALockThatOutlastsTheBoundFailsAsLockedAndWritesNothing) {
  Scratch s;
  const std::string path = (s.dir / "store.db").string();
  store::Options o;
  o.busy_timeout = std::chrono::milliseconds(20);
  store::Store store = store::Store::Open(path, o);
  LockHolder other(path);
  int pauses = 0;
  store::WriteResult r = CommitRetryingWhenBusy(store, OneDecision("o-2"), domain::Time{}, 3,
                                                [&](int) { ++pauses; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, store::ErrorCode::kLocked) << r.message;
  EXPECT_EQ(pauses, 2);
  other.Release();
  EXPECT_FALSE(store.LoadPayment("o-2").has_value());
}

}  // namespace
}  // namespace payorch::engine
