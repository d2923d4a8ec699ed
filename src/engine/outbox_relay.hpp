// The outbox relay: committed payment events are published with confirms in
// outbox order, one at a time per order (a consumer sees an order's events in
// sequence even across reconnects and retries), and marked sent on the confirm
// (with the next group commit). Failed publishes go back to the front and are
// retried with backoff; a restart publishes again what was not confirmed (same
// event_id: consumers deduplicate).
//
// A publish refused for good (PublishOutcome::permanent: the message can never be
// sent as it is) is parked, not retried: it stays unsent in the outbox, is counted
// (payorch_events_parked_total, payorch_outbox_parked_events), logged once, listed
// by Parked() (payorchctl payment parked) and tried again on an operator's Republish of its
// order or at the next start (after a fix). Its order's later events wait behind
// it, so consumers still see the order's sequence without gaps; every other order
// flows on.
// Thread: the engine thread. Errors: a store read that fails makes the engine fatal.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/context.hpp"
#include "engine/group_commit.hpp"
#include "engine/parked_event.hpp"

namespace payorch::engine {

class OutboxRelay {
 public:
  OutboxRelay(Context& ctx, GroupCommit& commit);

  // New rows were committed (or the link came up): look for work.
  void Wake(bool new_rows = false);
  // An operator's republish: these rows go out again (unsent ones as usual),
  // before the order's later rows still waiting. Returns how many were queued.
  size_t Republish(const std::string& order_id, std::vector<store::OutboxRow> rows);

  // Parked events wait for an operator: a drain does not wait for them.
  bool Idle() const { return in_flight_ == 0 && pending_.empty() && !more_; }
  std::vector<ParkedEvent> Parked() const;
  size_t in_flight() const { return in_flight_; }
  void Stop();

 private:
  struct Row {
    store::OutboxRow row;
    bool republish = false;  // already marked sent: do not mark again
  };
  void Round();
  void OnPublished(Row row, PublishOutcome res);
  void RetryLater();
  void Park(Row row, const PublishOutcome& res);
  void UpdateParkedGauge();

  Context& ctx_;
  GroupCommit& commit_;
  std::list<Row> pending_;
  std::unordered_set<int64_t> seqs_;  // pending or in flight
  std::unordered_set<std::string> busy_orders_;
  // Orders whose first unsent event was refused for good: that event (first) and
  // the order's later ones, in sequence order, out of pending_.
  struct Held {
    std::list<Row> rows;             // in sequence order, the refused one among them
    domain::PaymentEvent refused;    // the event the bus refused
    std::string reason;
    domain::Time since{};
  };
  std::map<std::string, Held> parked_;
  size_t in_flight_ = 0;
  int64_t cursor_ = 0;
  bool more_ = true;  // the store may hold unsent rows not yet loaded
  bool posted_ = false;
  std::unique_ptr<Timer> retry_timer_;
  bool retry_armed_ = false;
  std::chrono::milliseconds backoff_{0};
};

}  // namespace payorch::engine
