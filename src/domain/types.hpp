// The vocabulary of payorch's payment state machine: order events, PayEx
// observations, payment state, effects and payment events. Plain values, standard
// library only; no IO, no clock. Shared by every layer above the domain.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace payorch::domain {

// Milliseconds since the Unix epoch, UTC. Always passed in, never read from a clock here.
using Time = std::chrono::sys_time<std::chrono::milliseconds>;
using Duration = std::chrono::milliseconds;

inline int64_t ToMillis(Time t) {
  return t.time_since_epoch().count();
}
inline Time FromMillis(int64_t ms) {
  return Time(Duration(ms));
}

// ---------------------------------------------------------------------------
// Inbound order events (contract.md, "Inbound: order events").

struct PurchaseRequested {
  int64_t amount = 0;
  int64_t vat_amount = 0;
  std::string currency;
  std::string description;
  std::string payer_reference;
  std::string msisdn;
  std::string user_agent;
  std::string language;
  std::map<std::string, std::string> metadata;

  bool operator==(const PurchaseRequested&) const = default;
};
struct PayerMsisdnProvided {
  std::string msisdn;

  bool operator==(const PayerMsisdnProvided&) const = default;
};
struct OrderShipped {
  std::string shipment_id;
  int64_t amount = 0;
  int64_t vat_amount = 0;
  std::string description;

  bool operator==(const OrderShipped&) const = default;
};
struct OrderCancelled {
  std::string reason;

  bool operator==(const OrderCancelled&) const = default;
};
struct RefundRequested {
  std::string refund_id;
  int64_t amount = 0;
  int64_t vat_amount = 0;
  std::string description;

  bool operator==(const RefundRequested&) const = default;
};

using OrderEventKind = std::variant<PurchaseRequested, PayerMsisdnProvided, OrderShipped,
                                    OrderCancelled, RefundRequested>;

struct OrderEvent {
  std::string event_id;
  std::string order_id;
  Time occurred_at{};
  OrderEventKind kind;

  bool operator==(const OrderEvent&) const = default;
};

// "purchase_requested", "payer_msisdn_provided", "shipped", "cancelled", "refund_requested".
const char* OrderEventKindName(const OrderEventKind& kind);

// ---------------------------------------------------------------------------
// What PayEx says (through payex/ client, callbacks and polls).

enum class PaymentState { kUnknown, kReady, kPending, kFailed, kAborted };
// PayEx's words: "Ready", "Pending", "Failed", "Aborted"; "unknown".
const char* PaymentStateName(PaymentState state);
enum class TxType { kOther, kAuthorization, kCapture, kCancellation, kReversal };
enum class TxState { kUnknown, kInitialized, kAwaitingActivity, kCompleted, kFailed };

struct Problem {
  std::string type;  // PayEx problem type URI, or a payorch code for local refusals
  std::string title;
  std::string detail;
  int status = 0;                                             // HTTP status, 0 if none
  std::vector<std::pair<std::string, std::string>> problems;  // {name, description}

  bool operator==(const Problem&) const = default;
};

struct Transaction {
  std::string id;  // "/psp/vipps/payments/{pid}/transactions/{tid}"
  TxType type = TxType::kOther;
  TxState state = TxState::kUnknown;
  int64_t number = 0;
  int64_t amount = 0;
  int64_t vat_amount = 0;
  std::string payee_reference;
  std::optional<Problem> problem;  // on Failed transactions

  bool operator==(const Transaction&) const = default;
};

// A GET of the payment with its transactions expanded: the truth.
struct PaymentSnapshot {
  std::string payment_id;
  PaymentState state = PaymentState::kUnknown;
  int64_t amount = 0;
  int64_t remaining_capture = 0;
  int64_t remaining_cancellation = 0;
  int64_t remaining_reversal = 0;
  std::vector<Transaction> transactions;  // authorizations, captures, cancellations, reversals
  bool can_authorize = false;             // create-authorization (or direct-authorization) offered
  bool can_abort = false;

  bool operator==(const PaymentSnapshot&) const = default;
};

// ---------------------------------------------------------------------------
// Operations payorch runs against PayEx.

enum class OpKind { kCreate, kAuthorize, kCapture, kCancel, kReverse, kAbort, kRead };
const char* OpKindName(OpKind kind);

enum class OpStatus {
  kWaiting,   // needs an authorization first (capture before authorization)
  kQueued,    // ready; runs when nothing else is in flight and not_before has passed
  kInFlight,  // the call was committed as sent; outcome not yet known
  kInDoubt,   // outcome unknown (timeout, reset, 5xx, restart): resolve by reading PayEx
  kPending,   // PayEx holds it Initialized: poll, send nothing new on this payment
  kDone,
  kFailed,
};
const char* OpStatusName(OpStatus status);

// One PayEx operation of a payment. Money operations carry their payeeReference,
// derived deterministically and persisted before the call.
struct Op {
  uint32_t id = 0;  // 1, 2, 3, ... per payment
  OpKind kind = OpKind::kCreate;
  OpStatus status = OpStatus::kQueued;
  std::string payee_reference;  // create, capture, cancel, reverse; empty otherwise
  std::string ref_id;           // shipment_id (capture), refund_id (reverse)
  uint32_t attempt = 0;         // bumps the payeeReference after a definite failure
  int64_t amount = 0;           // capture/reverse: requested; cancel: released (known after)
  int64_t vat_amount = 0;
  std::string description;
  std::string caused_by;         // the order event this operation answers
  uint32_t transient_tries = 0;  // consecutive transient failures (backoff exponent)
  uint32_t doubt_reads = 0;      // reads spent resolving doubt (backoff exponent)
  Time not_before{};             // backoff: not sent before this time
  // An earlier attempt whose outcome is unknown may still land at PayEx until this
  // time (its doubt began at or after its last send, plus Policy::transit_horizon):
  // the operation is never sent again before it. Zero when no attempt was in doubt.
  Time in_transit_until{};
  std::string transaction_id;    // PayEx transaction id, once known
  std::string failure_code;      // set when kFailed

  bool operator==(const Op&) const = default;
};

// The outcome class of one PayEx call (design.md §4).
enum class ResultClass {
  kSuccess,          // 2xx with a body that parsed
  kDefiniteFailure,  // PayEx said no (4xx problem): not retried as is
  kTransient,        // nothing happened at PayEx (connect failure, 429, 5xx before sending)
  kInDoubt,          // may have happened: timeout/reset after sending, 5xx on a money POST
};
const char* ResultClassName(ResultClass c);

// What the executor hands back for the call it made.
struct PayexResult {
  uint64_t call_id = 0;  // the in-flight call this answers; a mismatch is stale and ignored
  ResultClass result = ResultClass::kSuccess;
  std::optional<Problem> problem;           // definite failures
  std::optional<Transaction> transaction;   // authorize, capture, cancel, reverse
  std::optional<PaymentSnapshot> snapshot;  // create, read, abort
  int64_t latency_us = 0;  // sent to answered (set by the engine)

  bool operator==(const PayexResult&) const = default;
};

// ---------------------------------------------------------------------------
// Payment state.

enum class Phase {
  kNew,             // no purchase accepted (an unknown order, or only refused events)
  kCreating,        // creating the PayEx payment
  kAwaitingMsisdn,  // created; waiting for PayerMsisdnProvided
  kAuthorizing,     // POSTing the authorization with the MSISDN
  kAwaitingPayer,   // the payer is asked in the Vipps app; polling and callbacks
  kAborting,        // aborting (cancelled, or the confirmation deadline passed)
  kAuthorized,      // money reserved: captures, cancel, reversals
  kFailed,          // authorization failed (declined, timed out, refused); final
  kAborted,         // aborted before authorization; final
};
const char* PhaseName(Phase phase);
std::optional<Phase> PhaseFromName(const std::string& name);

// Why an abort was started: decides how the purchase is answered.
enum class AbortCause { kNone, kCancelled, kTimedOut, kMsisdnTimedOut, kPayexRefused };

struct Balance {
  int64_t authorized = 0;
  int64_t captured = 0;
  int64_t cancelled = 0;
  int64_t reversed = 0;

  bool operator==(const Balance&) const = default;
};

struct InFlight {
  uint64_t call_id = 0;  // 0 when nothing is in flight
  uint32_t op_id = 0;    // 0 for a read
  Time sent_at{};        // when the call was decided (it leaves after its commit)

  bool operator==(const InFlight&) const = default;
};

struct Payment {
  std::string order_id;
  Phase phase = Phase::kNew;
  std::string payment_id;  // PayEx relative id, once created
  // The accepted purchase.
  std::string purchase_event_id;
  PurchaseRequested purchase;
  std::string msisdn;           // normalized +47XXXXXXXX, empty until known
  std::string msisdn_event_id;  // the PayerMsisdnProvided that brought it, if separate
  std::string cancel_event_id;  // an accepted OrderCancelled not yet answered
  std::string cancel_reason;    // its reason, for the abort and the `aborted` answer
  AbortCause abort_cause = AbortCause::kNone;
  bool cancel_requested = false;  // an OrderCancelled was accepted (no new captures)
  std::string authorization_tx;   // PayEx authorization transaction id
  Balance balance;
  std::vector<Op> ops;
  InFlight in_flight;
  uint64_t last_call_id = 0;
  uint64_t last_sequence = 0;  // payment events emitted so far (gap-free per order)
  bool read_wanted = false;    // a callback or poll asked for a fresh GET
  uint32_t polls = 0;          // polls while awaiting the payer (backoff exponent)
  Time created_at{};
  Time next_poll_at{};  // zero when not polling
  Time deadline{};      // confirmation / MSISDN deadline; zero when none
  Time doubt_since{};   // oldest unresolved doubt; zero when none
  Time updated_at{};
  // The next time this payment needs Decide(Tick): derived by Decide, indexed by
  // the store. Zero when nothing is scheduled.
  Time due_at{};

  bool operator==(const Payment&) const = default;
};

// ---------------------------------------------------------------------------
// Inputs and effects.

struct Tick {};          // the payment's due_at has come (poll, deadline, backoff)
struct CallbackHint {};  // PayEx called back about this payment: GET it soon
struct Resume {};        // the process started: whatever was in flight is in doubt

using Input = std::variant<OrderEvent, PayexResult, Tick, CallbackHint, Resume>;
const char* InputName(const Input& input);

// Failure codes (contract.md: Failure.code), stable.
namespace code {
inline constexpr const char* kInvalidAmount = "invalid_amount";
inline constexpr const char* kInvalidVatAmount = "invalid_vat_amount";
inline constexpr const char* kInvalidCurrency = "invalid_currency";
inline constexpr const char* kInvalidDescription = "invalid_description";
inline constexpr const char* kInvalidMsisdn = "invalid_msisdn";
inline constexpr const char* kInvalidLanguage = "invalid_language";
inline constexpr const char* kInvalidUserAgent = "invalid_user_agent";
inline constexpr const char* kInvalidPayerReference = "invalid_payer_reference";
inline constexpr const char* kInvalidShipmentId = "invalid_shipment_id";
inline constexpr const char* kInvalidRefundId = "invalid_refund_id";
inline constexpr const char* kInvalidMetadata = "invalid_metadata";
inline constexpr const char* kAmountExceedsRemaining = "amount_exceeds_remaining";
inline constexpr const char* kUnknownOrder = "unknown_order";
inline constexpr const char* kDuplicatePurchase = "duplicate_purchase";
inline constexpr const char* kDuplicateShipment = "duplicate_shipment";
inline constexpr const char* kDuplicateRefund = "duplicate_refund";
inline constexpr const char* kMsisdnAlreadyProvided = "msisdn_already_provided";
inline constexpr const char* kOrderCancelled = "order_cancelled";
inline constexpr const char* kPaymentClosed = "payment_closed";
inline constexpr const char* kNotAuthorized = "not_authorized";
inline constexpr const char* kDeclined = "declined";
inline constexpr const char* kTimedOut = "timed_out";
inline constexpr const char* kAborted = "aborted";
inline constexpr const char* kPayexProblem = "payex_problem";
}  // namespace code

struct Failure {
  std::string code;
  std::string message;
  std::string payex_problem_type;

  bool operator==(const Failure&) const = default;
};

enum class EventKind {
  kAuthorized,
  kAuthorizationFailed,
  kCaptured,
  kCaptureFailed,
  kCancelled,
  kCancelFailed,
  kReversed,
  kReversalFailed,
  kAborted,
  kRejected,
};
// "authorized", "authorization_failed", ...: the routing key is "payment." + this.
const char* EventKindName(EventKind kind);
std::optional<EventKind> EventKindFromName(const std::string& name);
bool IsFailureKind(EventKind kind);

// An outbound payment event (contract.md, "Outbound: payment events"), flattened:
// the fields a kind does not use stay empty.
struct PaymentEvent {
  std::string event_id;  // stable: derived from order_id and sequence
  std::string order_id;
  std::string payment_id;
  uint64_t sequence = 0;
  Time occurred_at{};
  std::string caused_by_event_id;
  Balance balance;
  EventKind kind = EventKind::kRejected;
  int64_t amount = 0;          // authorized, captured, cancelled, reversed
  std::string transaction_id;  // authorized, captured, cancelled, reversed
  std::string shipment_id;     // captured
  std::string refund_id;       // reversed
  std::string reason;          // aborted
  Failure failure;             // *_failed, rejected

  bool operator==(const PaymentEvent&) const = default;
};

// A PayEx call the engine must make after the decision is committed. Everything
// the request needs is here, so the executor never reads the payment itself.
struct PayexCall {
  uint64_t call_id = 0;
  uint32_t op_id = 0;  // 0 for a read
  OpKind kind = OpKind::kRead;
  std::string order_id;
  std::string payment_id;       // empty for create
  std::string payee_reference;  // create, capture, cancel, reverse
  int64_t amount = 0;
  int64_t vat_amount = 0;
  std::string description;
  std::string msisdn;                         // authorize
  std::string abort_reason;                   // abort
  std::optional<PurchaseRequested> purchase;  // create
  std::string expand;                         // read: "$expand" value
  // The executor never sends the call after this (it answers kTransient, "not
  // sent"): a call that waited this long for a slot or the rate limit is given up,
  // so it can never leave after the state machine stopped waiting for it. Zero
  // for reads, which may leave whenever.
  Time send_by{};

  bool operator==(const PayexCall&) const = default;
};

struct Decision {
  Payment next;
  std::vector<PaymentEvent> events;  // to the outbox, in sequence order
  std::vector<PayexCall> calls;      // at most one (one call in flight per payment)
  bool accepted_event = false;       // an order event was consumed (inbox entry)
  std::string note;                  // one line for the history (the operator's timeline)

  bool operator==(const Decision&) const = default;
};

}  // namespace payorch::domain
