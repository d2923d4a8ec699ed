// Reads: the engine's (payments, inbox, due payments, outbox, calls in flight) and
// the operators' (history, operations, counts, lists).
#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/serialize.hpp"
#include "store/impl.hpp"

namespace payorch::store {

OutboxRow Store::Impl::ReadOutbox(const Run& r, size_t first_col) {
  const int c = static_cast<int>(first_col);
  OutboxRow row;
  row.seq = r.ColInt(c);
  auto event = domain::DecodePaymentEvent(r.ColBlob(c + 1));
  if (!event)
    Throw(path, ErrorCode::kCorrupt,
          "outbox row " + std::to_string(row.seq) +
              " has a body that does not decode (written by a newer payorch, or damaged)");
  row.event = std::move(*event);
  row.created_at = r.ColTime(c + 2);
  row.sent_at = r.ColOptTime(c + 3);
  return row;
}

OperationRow Store::Impl::ReadOperation(const Run& r) {
  OperationRow row;
  row.order_id = r.ColText(0);
  row.call_id = static_cast<uint64_t>(r.ColInt(1));
  row.op_id = static_cast<uint32_t>(r.ColInt(2));
  row.kind = r.ColText(3);
  row.payee_reference = r.ColText(4);
  row.amount = r.ColInt(5);
  row.status = r.ColText(6);
  row.sent_at = r.ColTime(7);
  row.finished_at = r.ColOptTime(8);
  row.result = r.ColText(9);
  if (!r.IsNull(10)) row.latency_us = r.ColInt(10);
  return row;
}

std::optional<domain::Payment> Store::LoadPayment(std::string_view order_id) {
  Run r = impl_->Use(kLoadPayment, "loading a payment");
  r.Text(1, order_id);
  if (!r.Step()) return std::nullopt;
  auto p = domain::DecodePayment(r.ColBlob(0));
  if (!p)
    Throw(impl_->path, ErrorCode::kCorrupt,
          "payments row " + std::string(order_id) +
              " has a body that does not decode (written by a newer payorch, or damaged)");
  return p;
}

bool Store::HasEvent(std::string_view event_id) {
  Run r = impl_->Use(kHasEvent, "looking up the inbox");
  r.Text(1, event_id);
  return r.Step();
}

std::vector<std::string> Store::DuePayments(Time now, size_t limit) {
  Run r = impl_->Use(kDuePayments, "finding due payments");
  r.Int(1, ToMillis(now)).Int(2, static_cast<int64_t>(limit));
  return ReadRows(r, FirstColumn);
}

std::optional<Time> Store::NextDueAt() {
  Run r = impl_->Use(kNextDueAt, "finding the next due time");
  if (!r.Step()) return std::nullopt;
  return r.ColOptTime(0);
}

std::vector<OutboxRow> Store::UnsentOutbox(size_t limit, int64_t after_seq) {
  Run r = impl_->Use(kUnsentOutbox, "reading unsent outbox rows");
  r.Int(1, static_cast<int64_t>(limit)).Int(2, after_seq);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOutbox(row, 0); });
}

PaymentGauges Store::Gauges() {
  PaymentGauges g;
  Run phases = impl_->Use(kPhaseCounts, "reading the payments by phase");
  g.by_phase = ReadRows(phases, [](const Run& row) {
    return std::pair<std::string, int64_t>(row.ColText(0), row.ColInt(1));
  });
  Run doubt = impl_->Use(kInDoubt, "reading the payments in doubt");
  g.in_doubt = ReadRows(doubt, [](const Run& row) {
    return std::pair<std::string, Time>(row.ColText(0), row.ColTime(1));
  });
  Run unsent = impl_->Use(kCountUnsent, "counting unsent outbox rows");
  unsent.Step();
  g.outbox_unsent = unsent.ColInt(0);
  return g;
}

std::vector<std::string> Store::PaymentsWithCallsInFlight() {
  Run r = impl_->Use(kInFlight, "finding payments with calls in flight");
  return ReadRows(r, FirstColumn);
}

std::vector<OperationRow> Store::UnfinishedOperations() {
  Run r = impl_->Use(kUnfinishedOperations, "reading unfinished operations");
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOperation(row); });
}

std::vector<HistoryRow> Store::History(std::string_view order_id) {
  Run r = impl_->Use(kHistory, "reading history");
  r.Text(1, order_id);
  return ReadRows(r, [](const Run& row) {
    HistoryRow h;
    h.id = row.ColInt(0);
    h.order_id = row.ColText(1);
    h.at = row.ColTime(2);
    h.input = row.ColText(3);
    h.phase_before = row.ColText(4);
    h.phase_after = row.ColText(5);
    h.note = row.ColText(6);
    return h;
  });
}

std::vector<OperationRow> Store::Operations(std::string_view order_id) {
  Run r = impl_->Use(kOperations, "reading operations");
  r.Text(1, order_id);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOperation(row); });
}

std::vector<OutboxRow> Store::OutboxFor(std::string_view order_id) {
  Run r = impl_->Use(kOutboxFor, "reading outbox rows");
  r.Text(1, order_id);
  return ReadRows(r, [this](const Run& row) { return impl_->ReadOutbox(row, 0); });
}

Counts Store::RowCounts(Time now) {
  auto count = [this](StmtId id, std::optional<Time> t = std::nullopt) {
    Run r = impl_->Use(id, "counting rows");
    if (t) r.Int(1, ToMillis(*t));
    r.Step();
    return r.ColInt(0);
  };
  Counts c;
  c.payments = count(kCountPayments);
  c.payments_due = count(kCountDue, now);
  c.payments_in_flight = count(kCountInFlight);
  c.inbox = count(kCountInbox);
  c.outbox_unsent = count(kCountUnsent);
  c.operations_unfinished = count(kCountUnfinished);
  return c;
}

// --- Operator queries and replay records (payorchctl) -------------------------
// Prepared per call rather than cached: an operator's tool runs them a few times.

std::vector<PaymentSummary> Store::ListPayments(const PaymentFilter& filter) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT order_id, phase, payment_id, authorized, captured, cancelled, reversed,"
                  " due_at, doubt_since, in_flight_call, updated_at FROM payments"
                  " WHERE (?1 IS NULL OR phase = ?1) AND (?2 IS NULL OR updated_at < ?2)"
                  " AND (?3 = 0 OR doubt_since IS NOT NULL) AND (?5 IS NULL OR updated_at >= ?5)"
                  " ORDER BY updated_at, order_id LIMIT ?4");
  const std::string phase = filter.phase ? domain::PhaseName(*filter.phase) : "";
  Run r(s.db, s.path, stmt, "listing payments");
  if (filter.phase) {
    r.Text(1, phase);
  } else {
    r.Null(1);
  }
  if (filter.updated_before) {
    r.Int(2, ToMillis(*filter.updated_before));
  } else {
    r.Null(2);
  }
  r.Int(3, filter.in_doubt ? 1 : 0).Int(4, static_cast<int64_t>(filter.limit));
  if (filter.updated_since) {
    r.Int(5, ToMillis(*filter.updated_since));
  } else {
    r.Null(5);
  }
  return ReadRows(r, [](const Run& row) {
    PaymentSummary p;
    p.order_id = row.ColText(0);
    p.phase = row.ColText(1);
    p.payment_id = row.ColText(2);
    p.balance = domain::Balance{row.ColInt(3), row.ColInt(4), row.ColInt(5), row.ColInt(6)};
    p.due_at = row.ColOptTime(7);
    p.doubt_since = row.ColOptTime(8);
    if (!row.IsNull(9)) p.in_flight_call = row.ColInt(9);
    p.updated_at = row.ColTime(10);
    return p;
  });
}

}  // namespace payorch::store
