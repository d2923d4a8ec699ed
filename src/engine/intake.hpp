// Intake: an order event from the source goes through the inbox (a duplicate is
// acked and ignored, also while its original waits for its commit), then
// domain::Decide; its ack waits for the commit that holds its decision.
// Thread: the engine thread. Errors: when the store breaks, the delivery is given
// back to the queue (requeued) and the engine stops.
#pragma once

#include <string>
#include <unordered_map>

#include "engine/context.hpp"
#include "engine/decider.hpp"
#include "engine/group_commit.hpp"

namespace payorch::engine {

class Intake {
 public:
  Intake(Context& ctx, Decider& decider, GroupCommit& commit);

  void OnDelivery(Delivery d);
  // A commit landed: its order events are in the inbox now.
  void Committed(const CommitJob& job);

 private:
  void Consumed(const char* kind, const char* result);

  Context& ctx_;
  Decider& decider_;
  GroupCommit& commit_;
  // Order events decided but not yet committed -> the job that will commit them.
  std::unordered_map<std::string, uint64_t> pending_inbox_;
};

}  // namespace payorch::engine
