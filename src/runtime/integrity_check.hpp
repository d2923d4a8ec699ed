// The store's integrity check beside the engine: PRAGMA quick_check reads the whole
// file (about a second per GB), too long to wait for before serving a store of
// millions of payments, so payorchd serves at once and checks on a thread and a
// read-only connection of their own. `on_done` gets nullopt when the file is
// intact, else what was found (the caller stops the engine: what it would decide
// on a damaged file cannot be trusted). Thread: its own; on_done runs there.
// Errors: a check that cannot run (busy, out of memory) is logged, not reported as
// damage; on_done is not called then.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "store/store.hpp"

namespace payorch::runtime {

// Damage found is recorded next to the store (<path>.damaged, what was found), so
// that a supervisor's restart does not serve from the damaged file again.
std::string DamagedMarker(const std::string& store_path);
void MarkDamaged(const std::string& store_path, const std::string& what);
// Throws store::StoreError (kCorrupt) naming the marker when an earlier check
// recorded damage.
void RefuseIfMarkedDamaged(const std::string& store_path);

class IntegrityCheck {
 public:
  using Done = std::function<void(std::optional<std::string> damage, double seconds)>;
  // Opens its own read-only connection to `path` and starts.
  IntegrityCheck(const std::string& path, Done on_done);
  ~IntegrityCheck();  // interrupts a check still running and waits (on_done is not called)

 private:
  store::Store store_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace payorch::runtime
