// The checkpointer: copies the WAL into the database file off the engine thread
// every 250 ms (a PASSIVE checkpoint on a store connection of its own), so a
// commit never waits for a checkpoint (store_bench measured this as the faster
// path). Thread: its own. Errors: a failed checkpoint is logged; the next try
// copies what is left.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "store/store.hpp"

namespace payorch::runtime {

class Checkpointer {
 public:
  explicit Checkpointer(store::Store& store);
  ~Checkpointer();  // Stop()
  void Stop();

 private:
  store::Store& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace payorch::runtime
