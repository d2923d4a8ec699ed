// The payment state machine: Decide(policy, payment, input, now) -> next payment,
// events and PayEx calls. Pure and total: no clock, no IO, no randomness, never
// throws for any (state, input) pair; refusals are `rejected` events.
#pragma once

#include <string>
#include <string_view>

#include "domain/order_rules.hpp"
#include "domain/types.hpp"

namespace payorch::domain {

using namespace std::chrono_literals;

struct Policy {
  // How long the payer has to answer in the Vipps app after the authorization was
  // accepted (Vipps documents 5 + 5 minutes); then the payment is aborted.
  Duration confirmation_timeout = 10min;
  // How long a purchase without MSISDN waits for PayerMsisdnProvided.
  Duration msisdn_timeout = 30min;
  // Polling while the payer decides: first poll, then doubling up to poll_max.
  Duration first_poll = 3s;
  Duration poll_max = 30s;
  // Reading a payment whose outcome is in doubt or Initialized: doubling up to this.
  Duration slow_poll = 5min;
  // Transient failures: exponential backoff with full (deterministic) jitter.
  Duration backoff_base = 500ms;
  Duration backoff_cap = 60s;
  // A call with no outcome this long after it was sent is in doubt. The executor
  // counts it from the send; a call still queued this long after its decision is
  // not sent at all (PayexCall::send_by). Decide's own watchdog is the backstop at
  // twice this after the decision, when every call has either left or been dropped.
  Duration call_watchdog = 2min;
  // How long after its last send an attempt whose outcome is unknown may still take
  // effect at PayEx and show in its reads. A money-moving request with no trace at
  // PayEx is sent again (same payeeReference) only after this: PayEx is not known
  // to refuse a repeated reference, so an earlier attempt still on its way would
  // otherwise move the money twice. Keep it well above payex.request_timeout.
  Duration transit_horizon = 60s;
};

Decision Decide(const Policy& policy, const Payment& current, const Input& input, Time now);

// "+47" and 8 digits, after removing spaces and dashes and accepting "0047" and
// bare 8 digits; nullopt when the number is not Norwegian.
std::optional<std::string> NormalizeMsisdn(std::string_view raw);

// "+47****5432": for logs.
std::string MaskMsisdn(std::string_view msisdn);

// The payeeReference of an operation: 30 characters of [A-Za-z0-9], derived from
// the order, the operation kind, its shipment/refund id and attempt, so a restart
// derives the same one and different operations never share one.
std::string PayeeReference(std::string_view order_id, OpKind kind, std::string_view ref_id,
                           uint32_t attempt);
// The stable id of the payment event with this sequence number of this order.
std::string PaymentEventId(std::string_view order_id, uint64_t sequence);

// Money invariants of a payment; empty when they hold, else what is broken.
std::string CheckInvariants(const Payment& payment);

}  // namespace payorch::domain
