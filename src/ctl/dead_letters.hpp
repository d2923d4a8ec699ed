// payorchctl's view of the dead-letter queue: what one dead letter is (its id,
// reason, original routing key, order and event), which messages a filter selects,
// the message a replay publishes, and what replaying would do now (--dry-run).
// Pure functions over values, except Classify, which reads the store. Any thread.
//
// Message ids: a dead letter's id is its AMQP message_id (the contract sets it to
// the event_id) when it has one; otherwise "h-" and 12 hex digits of a hash of its
// body, headers and routing key (FNV-1a 64). Both are stable while the message
// waits in the queue. Copies of the same message share an id: an id selects all.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "bus/config.hpp"
#include "bus/message.hpp"
#include "bus/topology.hpp"
#include "codec/codec.hpp"
#include "domain/decide.hpp"
#include "domain/types.hpp"

namespace payorch::store {
class Store;
}

namespace payorch::ctl {

// Headers of a replayed message (contract.md, "Bad input and the dead-letter queue").
inline constexpr const char* kReplayedByHeader = "x-payorch-replayed-by";
inline constexpr const char* kReplayIdHeader = "x-payorch-replay-id";

struct DeadLetter {
  std::string id;      // see the file comment
  std::string reason;  // x-payorch-error, else the broker's x-death reason, else "unknown"
  std::string detail;  // x-payorch-detail, or what x-death says
  // Where it came from (x-payorch-original-*, else x-death, else the DLQ delivery).
  std::string original_exchange;
  std::string routing_key;
  std::string order_id;  // from the body; "" when it does not decode
  std::string event_id;  // from the body, else the message_id
  std::optional<domain::Time> dead_lettered_at;
  std::optional<codec::DecodeError> decode_error;  // set when the body does not decode
  std::optional<domain::OrderEvent> event;         // set when it does
  std::string replay_id;    // x-payorch-replay-id: replayed before by that replay
  bus::GotMessage message;  // as taken from the queue

  size_t Size() const { return message.body.size(); }
  std::optional<std::chrono::milliseconds> Age(domain::Time now) const;
};

std::string MessageId(const bus::GotMessage& message);
DeadLetter Describe(bus::GotMessage message, const bus::Topology& topology);

// Which dead letters a command works on. Empty ids and no other field: nothing
// (commands refuse that); `all` selects everything.
struct Filter {
  std::vector<std::string> ids;
  bool all = false;
  std::optional<std::string> reason;       // --error / --reason (list, purge)
  std::optional<std::string> routing_key;  // the original routing key
  std::optional<std::string> order_id;
  std::optional<std::chrono::milliseconds> since;  // dead-lettered at most this long ago

  bool SelectsSomething() const;
  bool Matches(const DeadLetter& letter, domain::Time now) const;
  // For people and the replay record: "all", "ids=a,b", "error=x routing_key=y ...".
  std::string Describe() const;
};

// The message a replay publishes: the original exchange and routing key, the body,
// content type, message_id and other properties as they were (but user_id, which
// the broker checks against the publishing connection's user); the x-payorch-*,
// x-death, x-first-death-*, x-last-death-* and x-delivery-count headers dropped;
// x-payorch-replayed-by and x-payorch-replay-id added. Mandatory: a message no
// queue takes comes back instead of vanishing.
bus::Message ReplayMessage(const DeadLetter& letter, const std::string& who,
                           const std::string& replay_id);

// What replaying a message would do against the payment's current state.
enum class Verdict {
  kProcessed,  // the inbox has its event_id: the daemon ignores it
  kValid,      // Decide accepts it
  kRejected,   // Decide answers it with a `rejected` event
  kMalformed,  // it still does not decode: it would be dead-lettered again
  kDuplicate,  // another copy of a message (same id) earlier in the run: acked with it
};
// "processed", "valid", "rejected", "malformed", "duplicate"
const char* VerdictName(Verdict verdict);

struct DryRun {
  Verdict verdict = Verdict::kValid;
  std::string what;  // one line for the operator
};

// A dry run replays the selection in queue order in memory: every event Decide
// consumes (Decision::accepted_event) updates a running copy of its payment and
// goes into a simulated inbox, so a PayerMsisdnProvided behind its
// PurchaseRequested is valid, and a second message with one event_id is ignored.
struct Simulation {
  std::map<std::string, domain::Payment> payments;  // by order id, as this run left them
  std::map<std::string, std::string> inbox;         // event id -> the message id that applied it
};

// Runs the pure domain::Decide on a copy of the payment (or an empty one); changes
// nothing in the store. Reads the inbox and the payment from `store`, and from
// `simulation` first when given (which it then updates).
DryRun Classify(const DeadLetter& letter, store::Store& store, const domain::Policy& policy,
                domain::Time now, Simulation* simulation = nullptr);

// Codes the consumer writes in x-payorch-error and reasons the broker writes in
// x-death: what `--error` selects by. `dlq replay --reason` refuses them (it is why).
bool IsKnownErrorCode(const std::string& text);

}  // namespace payorch::ctl
