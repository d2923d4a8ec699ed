#include "runtime/integrity_check.hpp"

#include <chrono>

namespace payorch::runtime {

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
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::string> damage;
    try {
      damage = store_.QuickCheck();
    } catch (const std::exception& e) {
      damage = std::string("the integrity check could not run: ") + e.what();
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
