// The engine's writer on a thread of its own with its own store connection: the
// engine thread never waits for an fsync. Jobs are committed in the order they are
// submitted; a commit refused as busy is tried again (CommitRetryingWhenBusy).
// Thread: its own; results are posted to the engine thread (Clock::Post).
// Errors: after a failed job every later one fails too ("an earlier commit failed").
// The WAL checkpoints are checkpointer.hpp.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/ports.hpp"

namespace payorch::runtime {

class WriterThread : public engine::Writer {
 public:
  // `store`: the writer's own connection, used on the writer thread only.
  WriterThread(store::Store& store, engine::Clock& clock, int commit_attempts);
  ~WriterThread() override;
  void Submit(std::shared_ptr<engine::CommitJob> job,
              std::function<void(store::WriteResult, engine::Steady)> done) override;
  void Stop(bool discard) override;

 private:
  struct Item {
    std::shared_ptr<engine::CommitJob> job;
    std::function<void(store::WriteResult, engine::Steady)> done;
  };
  void Loop();

  store::Store& store_;
  engine::Clock& clock_;
  int attempts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  bool failed_ = false;  // writer thread only
  std::thread thread_;
};

}  // namespace payorch::runtime
