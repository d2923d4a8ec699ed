#include "runtime/integrity_check.hpp"

#include <pthread.h>

#include <chrono>
#include <fstream>

#include "engine/log.hpp"

namespace payorch::runtime {

std::string DamagedMarker(const std::string& store_path) {
  return store_path + ".damaged";
}

void MarkDamaged(const std::string& store_path, const std::string& what) {
  std::ofstream out(DamagedMarker(store_path), std::ios::trunc);
  out << what << "\n";
}

void RefuseIfMarkedDamaged(const std::string& store_path) {
  std::ifstream in(DamagedMarker(store_path));
  if (!in) return;
  std::string what;
  std::getline(in, what);
  throw store::StoreError(
      store::ErrorCode::kCorrupt,
      "store " + store_path + ": an earlier integrity check found damage (" + what +
          "); payorch never repairs a store: restore it from a backup, then remove " +
          DamagedMarker(store_path));
}

namespace {
store::Store OpenReadOnly(const std::string& path) {
  store::Options o;
  o.read_only = true;
  o.quick_check = false;
  o.cache_kib = 2048;  // it reads every page once: a cache would only grow the RSS
  return store::Store::Open(path, o);
}
}  // namespace

IntegrityCheck::IntegrityCheck(const std::string& path, Done on_done)
    : store_(OpenReadOnly(path)) {
  thread_ = std::thread([this, on_done = std::move(on_done)] {
    pthread_setname_np(pthread_self(), "payorch-check");  // top -H, perf
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::string> damage;
    std::optional<std::string> could_not_run;
    try {
      damage = store_.QuickCheck();
    } catch (const store::StoreError& e) {
      // SQLite may report severe damage as an error rather than as rows: a finding.
      if (e.code() == store::ErrorCode::kCorrupt) {
        damage = e.what();
      } else {
        could_not_run = e.what();
      }
    } catch (const std::exception& e) {
      could_not_run = e.what();
    }
    if (could_not_run) {
      // Not a finding (busy, out of memory, interrupted): nothing is marked damaged.
      if (!stopping_)
        engine::Log(engine::Level::kWarn, "store.check_failed",
                    {{"error", *could_not_run}, {"action", "the next start checks again"}});
      done_ = true;
      return;
    }
    if (!stopping_)
      on_done(std::move(damage),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    done_ = true;
  });
}

IntegrityCheck::~IntegrityCheck() {
  stopping_ = true;
  // An interrupt reaches only a statement already running: repeat until the
  // check has seen one (or finished).
  while (!done_) {
    store_.Interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  thread_.join();
}

}  // namespace payorch::runtime
