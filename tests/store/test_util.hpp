// Helpers for the store tests: a temp directory removed at scope exit, and domain
// values with every field set to something other than its default.
// Test code; single-threaded; failures throw std::runtime_error.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "domain/types.hpp"

namespace payorch::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A forked child process and the read end of a pipe from it.
struct Child {
  pid_t pid;
  int read_fd;
};
// Forks a child that closes the read end and runs `child(write_fd)`, which must end the
// process (_exit) itself; the parent closes the write end.
Child ForkWithPipe(const std::function<void(int write_fd)>& child);

// A payment in a late phase with ops, in-flight call, metadata and all times set;
// `salt` varies the values so two payments differ in every field.
domain::Payment FullPayment(const std::string& order_id, int64_t salt = 1);
// An event of `order_id` with every field set.
domain::PaymentEvent FullEvent(const std::string& order_id, uint64_t sequence, int64_t salt = 1);
// A capture call of `order_id`.
domain::PayexCall FullCall(const std::string& order_id, uint64_t call_id);

}  // namespace payorch::store::testing
