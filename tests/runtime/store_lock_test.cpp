#include "runtime/store_lock.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace payorch::runtime {
namespace {

std::string TempStore() {
  return (std::filesystem::temp_directory_path() /
          ("payorch-lock-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
      .string();
}

// One holder at a time (flocks of separate opens exclude each other, in one process
// as across processes); the refused one learns the holder's pid; the next takes it
// as soon as the holder lets go, as a standby instance takes over a partition.
TEST(StoreLockTest, OneHolderAtATimeAndTheNextTakesOver) {
  const std::string store = TempStore();
  std::optional<StoreLock> first = StoreLock::TryAcquire(store);
  ASSERT_TRUE(first.has_value());
  std::string holder;
  EXPECT_FALSE(StoreLock::TryAcquire(store, &holder).has_value());
  EXPECT_EQ(holder, std::to_string(::getpid()));
  try {
    StoreLock::Acquire(store);
    ADD_FAILURE() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another payorchd (pid " + std::to_string(::getpid())),
              std::string::npos)
        << e.what();
  }
  // Moved, it is still held; released, the next one gets it.
  StoreLock moved = std::move(*first);
  first.reset();
  EXPECT_FALSE(StoreLock::TryAcquire(store).has_value());
  { StoreLock gone = std::move(moved); }
  EXPECT_TRUE(StoreLock::TryAcquire(store).has_value());
  std::filesystem::remove(store + ".lock");
}

TEST(StoreLockTest, AnUnusableDirectoryIsAnError) {
  EXPECT_THROW(StoreLock::TryAcquire("/nonexistent-dir/payorch.db"), std::runtime_error);
}

}  // namespace
}  // namespace payorch::runtime
