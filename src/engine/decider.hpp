// The payments in memory and the one way they change: domain::Decide. Apply runs
// an input through the state machine and hands the decision to the group commit
// (payment row, inbox entry, events, calls, history, in one transaction); the
// cached payment is the decided one at once, so the next input builds on it.
// Thread: the engine thread. Errors: a store read that fails makes the engine
// fatal (Context::StoreBroken); Apply then returns ok=false and decides nothing.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "domain/decide.hpp"
#include "engine/context.hpp"
#include "engine/group_commit.hpp"

namespace payorch::engine {

class Decider {
 public:
  Decider(Context& ctx, GroupCommit& commit);

  struct Applied {
    bool ok = true;
    bool written = false;  // the decision changed something and goes to the store
    std::vector<domain::PaymentEvent> events;
  };

  // The cached payment, else its row (then cached), else nullptr.
  domain::Payment* Find(const std::string& order_id);

  // record: write the decision even when it changes nothing (an operator's action
  // belongs in the payment's timeline). result: the PayEx outcome being applied,
  // for the operations row of its call.
  Applied Apply(const std::string& order_id, const domain::Input& input, const char* input_name,
                const domain::PayexResult* result = nullptr, bool record = false);

  // A history row of the payment as it is (an operator's action).
  void Record(const std::string& order_id, const std::string& input_name,
              const std::string& note);

  // True while a decision of this order waits for its commit.
  bool Uncommitted(const std::string& order_id) const { return uncommitted_.count(order_id) > 0; }
  // A commit landed: its orders are equal to their rows again (unless decided since).
  void Committed(const CommitJob& job);
  // Keeps the cache within options.cache_max: the least recently used payments
  // with nothing in flight (no decision waiting for its commit, no PayEx call) go,
  // down to 90% of the bound; a later input loads the row again.
  void Trim();
  size_t cached() const { return cache_.size(); }

 private:
  struct Cached {
    domain::Payment payment;
    std::list<const std::string*>::iterator used;  // its place in used_
  };
  domain::Payment& Insert(const std::string& order_id, domain::Payment payment);
  metrics::Counter& Evicted();

  Context& ctx_;
  GroupCommit& commit_;
  std::unordered_map<std::string, Cached> cache_;
  std::list<const std::string*> used_;  // the cache's keys, most recently used first
  // Orders with a decision not yet committed -> the job that will commit it.
  std::unordered_map<std::string, uint64_t> uncommitted_;
};

}  // namespace payorch::engine
