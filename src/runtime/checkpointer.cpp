#include "runtime/checkpointer.hpp"

#include <pthread.h>

#include <chrono>

#include "engine/log.hpp"

namespace payorch::runtime {

Checkpointer::Checkpointer(store::Store& store) : store_(store) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "payorch-checkpt");  // top -H, perf, lifecycle_bench
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (stop_) break;
      lock.unlock();
      store::WriteResult r = store_.Checkpoint();
      if (!r.ok) engine::Log(engine::Level::kWarn, "store.checkpoint_failed", {{"error", r.message}});
      lock.lock();
    }
  });
}

Checkpointer::~Checkpointer() {
  Stop();
}

void Checkpointer::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace payorch::runtime
