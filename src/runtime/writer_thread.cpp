#include "runtime/writer_thread.hpp"

#include <pthread.h>

#include <chrono>

#include "engine/log.hpp"

namespace payorch::runtime {

WriterThread::WriterThread(store::Store& store, engine::Clock& clock, int commit_attempts)
    : store_(store), clock_(clock), attempts_(commit_attempts) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "payorch-writer");  // top -H, perf, lifecycle_bench
    Loop();
  });
}

WriterThread::~WriterThread() {
  Stop(/*discard=*/true);
}

void WriterThread::Submit(std::shared_ptr<engine::CommitJob> job,
                          std::function<void(store::WriteResult, engine::Steady)> done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Item{std::move(job), std::move(done)});
  }
  cv_.notify_one();
}

void WriterThread::Loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    store::WriteResult r;
    const auto t0 = std::chrono::steady_clock::now();
    if (failed_) {
      r.ok = false;
      r.code = store::ErrorCode::kIo;
      r.message = "an earlier commit failed";
    } else {
      r = engine::CommitRetryingWhenBusy(store_, *item.job, clock_.Now(), attempts_,
                                         [](int attempt) {
                                           std::this_thread::sleep_for(
                                               std::chrono::milliseconds(50 * attempt));
                                         });
      failed_ = !r.ok;
    }
    const engine::Steady elapsed = std::chrono::steady_clock::now() - t0;
    clock_.Post([done = std::move(item.done), r = std::move(r), elapsed]() mutable {
      done(std::move(r), elapsed);
    });
  }
}

void WriterThread::Stop(bool discard) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (discard) queue_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace payorch::runtime
