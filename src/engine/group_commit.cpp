#include "engine/group_commit.hpp"

#include <chrono>

#include "engine/log.hpp"

namespace payorch::engine {

namespace {
double Seconds(Steady d) {
  return std::chrono::duration<double>(d).count();
}
// How long a confirmed publish waits for a decision to ride along before it is
// marked on its own (a lost mark only means one more publish after a restart).
constexpr std::chrono::milliseconds kMarkDelay{5};
}  // namespace

GroupCommit::GroupCommit(Context& ctx, OnCommitted on_committed)
    : ctx_(ctx),
      on_committed_(std::move(on_committed)),
      gather_timer_(ctx.ports.clock.MakeTimer()),
      mark_timer_(ctx.ports.clock.MakeTimer()) {}

void GroupCommit::Add(store::Commit commit, std::vector<domain::PayexCall> calls, bool events) {
  if (batch_.commits.empty()) batch_.opened = ctx_.ports.clock.Monotonic();
  batch_.commits.push_back(std::move(commit));
  for (auto& c : calls) batch_.released.calls.push_back(std::move(c));
  batch_.released.events = batch_.released.events || events;
}

void GroupCommit::AddAck(Ack ack) {
  batch_.released.acks.push_back(ack);
}

void GroupCommit::MarkSent(int64_t seq) {
  sent_.push_back(seq);
  if (!batch_.commits.empty() || mark_armed_ || ctx_.stopped) return;
  mark_armed_ = true;
  mark_timer_->Arm(kMarkDelay, [this] {
    mark_armed_ = false;
    Flush();
  });
}

void GroupCommit::Schedule() {
  if (batch_.commits.size() >= ctx_.options.max_batch) {
    Flush();
    return;
  }
  if (flush_posted_) return;
  flush_posted_ = true;
  ctx_.ports.clock.Post([this] {
    flush_posted_ = false;
    Flush();
  });
}

void GroupCommit::Flush() {
  if (ctx_.fatal || ctx_.stopped) return;
  if (batch_.commits.empty() && batch_.released.acks.empty() && sent_.empty()) return;
  const size_t max = ctx_.options.max_batch;
  // While the writer syncs one job, the next batch grows.
  if (!jobs_.empty() && batch_.commits.size() < max) return;
  const auto gather = ctx_.options.commit_delay;
  if (gather.count() > 0 && !ctx_.draining && batch_.commits.size() < max &&
      !batch_.commits.empty()) {
    const Steady waited = ctx_.ports.clock.Monotonic() - batch_.opened;
    if (waited < gather) {
      if (!gather_armed_) {
        gather_armed_ = true;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(gather - waited);
        gather_timer_->Arm(left, [this] {
          gather_armed_ = false;
          Flush();
        });
      }
      return;
    }
  }
  auto job = std::make_shared<CommitJob>();
  job->id = ++last_job_;
  job->commits = std::move(batch_.commits);
  job->sent = std::move(sent_);
  sent_.clear();
  jobs_.push_back(Job{job, std::move(batch_.released)});
  batch_ = Batch{};
  ctx_.ports.writer.Submit(job, [this](store::WriteResult r, Steady elapsed) {
    OnWritten(std::move(r), elapsed);
  });
}

void GroupCommit::OnWritten(store::WriteResult r, Steady elapsed) {
  Job done = std::move(jobs_.front());
  jobs_.pop_front();
  const CommitJob& job = *done.job;
  if (!r.ok) {
    Log(Level::kError, "store.commit_failed",
        {{"code", store::ErrorCodeName(r.code)},
         {"decisions", std::to_string(job.commits.size())},
         {"error", r.message}});
    ctx_.metrics.counter("payorch_commit_failures_total", "Group commits that failed.").Inc();
    ctx_.StoreBroken(r.message);
    return;
  }
  int64_t events = 0;
  for (const store::Commit& c : job.commits) events += static_cast<int64_t>(c.events.size());
  ctx_.gauges.Committed(events, r.rows);
  if (!job.commits.empty()) {
    ctx_.metrics.counter("payorch_commits_total", "Group commits (one transaction each).").Inc();
    ctx_.metrics
        .histogram("payorch_commit_batch_size", "Decisions per group commit.",
                   {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
        .Observe(static_cast<double>(job.commits.size()));
    ctx_.metrics
        .histogram("payorch_commit_seconds", "Time of one group commit, fsync included.",
                   metrics::LatencyBucketsSeconds())
        .Observe(Seconds(elapsed));
  }
  on_committed_(job, std::move(done.released));
  if (jobs_.empty()) Flush();  // what gathered meanwhile
}

void GroupCommit::Stop() {
  gather_timer_->Cancel();
  mark_timer_->Cancel();
}

}  // namespace payorch::engine
