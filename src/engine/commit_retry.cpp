#include "engine/log.hpp"
#include "engine/ports.hpp"

namespace payorch::engine {

store::WriteResult CommitRetryingWhenBusy(store::Store& store, const CommitJob& job,
                                          domain::Time sent_at, int attempts,
                                          const std::function<void(int attempt)>& pause) {
  store::WriteResult r;
  for (int attempt = 1;; ++attempt) {
    r = store.CommitBatch(job.commits, job.sent, sent_at);
    // Locked: another connection (an operator's replay, a backup) held the file
    // past busy_timeout. Nothing of the batch is stored, and nothing later was
    // committed before it, so trying again keeps the commit order.
    if (r.ok || r.code != store::ErrorCode::kLocked || attempt >= attempts) return r;
    Log(Level::kWarn, "store.commit_busy",
        {{"attempt", std::to_string(attempt)},
         {"decisions", std::to_string(job.commits.size())},
         {"error", r.message}});
    if (pause) pause(attempt);
  }
}

}  // namespace payorch::engine
