// Timers are rows: every payment's next wake-up is its indexed due_at in the
// store (polls, backoff, deadlines, reads of what is in doubt), so a million
// waiting payments cost disk, not memory. The engine keeps one timer, for the
// earliest, and feeds domain::Tick to the payments that are due.
// Thread: the engine thread. Errors: a store read that fails makes the engine fatal.
#pragma once

#include <memory>
#include <optional>

#include "engine/context.hpp"
#include "engine/decider.hpp"
#include "engine/group_commit.hpp"

namespace payorch::engine {

class DueTimer {
 public:
  DueTimer(Context& ctx, Decider& decider, GroupCommit& commit);

  // Looks at the earliest due_at again (after a commit, at start).
  void Arm();
  void Stop();

 private:
  void OnTimer();

  Context& ctx_;
  Decider& decider_;
  GroupCommit& commit_;
  std::unique_ptr<Timer> timer_;
  std::optional<domain::Time> armed_at_;
  domain::Time quiet_until_{};  // after a tick that changed nothing: no tick before this
};

}  // namespace payorch::engine
