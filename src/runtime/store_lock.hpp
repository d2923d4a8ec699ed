// Who may decide for a store's payments: the holder of an exclusive flock on
// "<store>.lock", with its pid written inside for the message of the one refused.
// Its payments live in its memory between commits, so a second payorchd on the same
// file would decide (and call PayEx for) the same payment twice. Partitioned (issue
// 13), the instance that holds a partition's lock serves that partition; the others
// try again (TryAcquire) and take it over when the holder dies, as the kernel drops
// a dead process's flocks.
#pragma once

#include <optional>
#include <string>

namespace payorch::runtime {

class StoreLock {
 public:
  // Takes the lock now, or throws std::runtime_error naming the holder's pid.
  static StoreLock Acquire(const std::string& store_path);
  // Takes the lock if it is free; else nullopt, and the holder's pid in *holder.
  // Throws std::runtime_error when the lock file cannot be opened.
  static std::optional<StoreLock> TryAcquire(const std::string& store_path,
                                             std::string* holder = nullptr);

  StoreLock(StoreLock&& other) noexcept;
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock();  // releases it

  const std::string& store_path() const { return store_path_; }

 private:
  StoreLock(int fd, std::string store_path) : fd_(fd), store_path_(std::move(store_path)) {}
  int fd_ = -1;
  std::string store_path_;
};

}  // namespace payorch::runtime
