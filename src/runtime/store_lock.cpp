#include "runtime/store_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace payorch::runtime {

std::optional<StoreLock> StoreLock::TryAcquire(const std::string& store_path,
                                               std::string* holder) {
  const std::string path = store_path + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error("cannot open the lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (holder) {
      char buf[32] = {};
      ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      *holder = pid.empty() ? "?" : pid;
    }
    ::close(fd);
    return std::nullopt;
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; the pid is only for the message of the refused.
  }
  return StoreLock(fd, store_path);
}

StoreLock StoreLock::Acquire(const std::string& store_path) {
  std::string holder;
  if (auto lock = TryAcquire(store_path, &holder)) return std::move(*lock);
  throw std::runtime_error("another payorchd (pid " + holder + ") is using the store " +
                           store_path + ": stop it first, or give this one its own store.path");
}

StoreLock::StoreLock(StoreLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), store_path_(std::move(other.store_path_)) {}

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    store_path_ = std::move(other.store_path_);
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the only descriptor releases the flock
}

}  // namespace payorch::runtime
