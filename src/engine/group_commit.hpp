// Group commit: decisions made close together become one transaction and one
// fsync. Decisions collect in a batch; the batch goes to the Writer at once when
// it is idle (or after options.commit_delay), and while one commit syncs the next
// batch grows, up to options.max_batch, so the batch size follows the load. What
// waits for a commit (acks, PayEx calls, the relay) is released by OnCommitted in
// commit order. Confirmed publishes are marked sent in the next commit.
// Thread: the engine thread; the writer works wherever its port puts it.
// Errors: a failed commit makes the engine fatal: later batches were decided on top
// of it, so nothing after it may land; the next start decides again from the file.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "engine/context.hpp"

namespace payorch::engine {

struct Ack {
  uint64_t generation = 0;
  uint64_t tag = 0;
};

// What is released when a job is committed.
struct Released {
  std::vector<Ack> acks;
  std::vector<domain::PayexCall> calls;
  bool events = false;  // new outbox rows
};

class GroupCommit {
 public:
  using OnCommitted = std::function<void(const CommitJob& job, Released released)>;
  GroupCommit(Context& ctx, OnCommitted on_committed);

  // The id of the job the decisions collected now will become.
  uint64_t NextJob() const { return last_job_ + 1; }
  void Add(store::Commit commit, std::vector<domain::PayexCall> calls, bool events);
  // An ack that waits for the batch being collected (its decision is in it).
  void AddAck(Ack ack);
  // An outbox row the broker confirmed: marked sent with the next commit, or
  // after a few milliseconds when no decision comes along.
  void MarkSent(int64_t seq);

  // After what is ready now has been decided: flush (decisions arriving together
  // share a commit).
  void Schedule();
  // Hands the batch to the writer when it is idle (or the batch is full).
  void Flush();

  size_t collected() const { return batch_.commits.size(); }
  size_t in_flight() const { return jobs_.size(); }
  bool Idle() const {
    return jobs_.empty() && batch_.commits.empty() && batch_.released.acks.empty();
  }
  void Stop();

 private:
  struct Batch {
    std::vector<store::Commit> commits;
    Released released;
    Steady opened{};
  };
  struct Job {
    std::shared_ptr<CommitJob> job;
    Released released;
  };
  void OnWritten(store::WriteResult r, Steady elapsed);

  Context& ctx_;
  OnCommitted on_committed_;
  Batch batch_;
  std::vector<int64_t> sent_;
  std::deque<Job> jobs_;  // submitted, in order
  uint64_t last_job_ = 0;
  bool flush_posted_ = false;
  std::unique_ptr<Timer> gather_timer_;
  bool gather_armed_ = false;
  std::unique_ptr<Timer> mark_timer_;
  bool mark_armed_ = false;
};

}  // namespace payorch::engine
