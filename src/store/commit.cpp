// Writes: a batch of decisions in one transaction (CommitBatch), outbox rows
// marked sent, checkpoints.
#include <sqlite3.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "domain/serialize.hpp"
#include "store/impl.hpp"

namespace payorch::store {

namespace {
constexpr size_t kPhases = static_cast<size_t>(domain::Phase::kAborted) + 1;
}  // namespace

void Store::Impl::Apply(const Commit& c) {
  const domain::Payment& p = c.after;
  const std::string& order = p.order_id;
  if (order.empty()) Throw(path, ErrorCode::kConstraint, "a commit without order_id");
  for (const auto& e : c.events) {
    if (e.order_id != order)
      Throw(path, ErrorCode::kConstraint,
            "order " + order + ": event " + e.event_id + " belongs to order " + e.order_id);
  }
  for (const auto& call : c.calls) {
    if (call.order_id != order)
      Throw(path, ErrorCode::kConstraint,
            "order " + order + ": call " + std::to_string(call.call_id) + " belongs to order " +
                call.order_id);
  }
  const int64_t at = ToMillis(c.at);

  body = domain::EncodePayment(p);
  {
    Run r = Use(kUpsertPayment, "writing the payments row");
    r.Text(1, order).Text(2, domain::PhaseName(p.phase)).Text(3, p.payment_id);
    r.Int(4, p.balance.authorized).Int(5, p.balance.captured).Int(6, p.balance.cancelled);
    r.Int(7, p.balance.reversed).TimeOrNull(8, p.due_at).TimeOrNull(9, p.doubt_since);
    if (p.in_flight.call_id != 0) {
      r.Int(10, static_cast<int64_t>(p.in_flight.call_id));
    } else {
      r.Null(10);
    }
    r.Int(11, at).Blob(12, body).Exec();
  }
  if (!c.inbox_event_id.empty()) {
    Run r = Use(kInsertInbox, "writing the inbox row");
    r.Text(1, c.inbox_event_id).Text(2, order).Int(3, at);
    try {
      r.Exec();
    } catch (const StoreError& e) {
      Rethrow(e, "order " + order + ": inbox event " + c.inbox_event_id);
    }
  }
  if (c.finished) {
    // A result for a call that is unknown or already finished (stale) changes nothing.
    Run r = Use(kFinishCall, "finishing the operations row");
    r.Text(1, order).Int(2, static_cast<int64_t>(c.finished->call_id)).Int(3, at);
    r.Text(4, c.finished->result).Int(5, c.finished->latency_us).Exec();
  }
  for (const auto& call : c.calls) {
    Run r = Use(kInsertOperation, "writing the operations row");
    r.Text(1, order).Int(2, static_cast<int64_t>(call.call_id)).Int(3, call.op_id);
    r.Text(4, domain::OpKindName(call.kind)).Text(5, call.payee_reference).Int(6, call.amount);
    r.Int(7, at);
    try {
      r.Exec();
    } catch (const StoreError& e) {
      Rethrow(e, "order " + order + ": call " + std::to_string(call.call_id));
    }
  }
  for (const auto& e : c.events) {
    const std::string event_body = domain::EncodePaymentEvent(e);
    Run r = Use(kInsertOutbox, "writing the outbox row");
    r.Text(1, e.event_id).Text(2, order).Int(3, static_cast<int64_t>(e.sequence));
    r.Text(4, domain::EventKindName(e.kind)).Blob(5, event_body).Int(6, at);
    try {
      r.Exec();
    } catch (const StoreError& err) {
      Rethrow(err, "order " + order + ": outbox event " + e.event_id + " (sequence " +
                       std::to_string(e.sequence) + ")");
    }
  }
  {
    Run r = Use(kInsertHistory, "writing the history row");
    r.Text(1, order).Int(2, at).Text(3, c.input_name);
    if (c.phase_before) {
      r.Text(4, domain::PhaseName(*c.phase_before));
    } else {
      r.Null(4);
    }
    r.Text(5, domain::PhaseName(p.phase)).Text(6, c.note).Exec();
  }
}

WriteResult Store::CommitBatch(std::span<const Commit> batch, std::span<const int64_t> sent,
                               Time sent_at) {
  if (batch.empty() && sent.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    // Payments by phase: what this batch moves, one row per phase touched.
    std::array<int64_t, kPhases> moved{};
    for (size_t i = 0; i < batch.size(); ++i) {
      current = i;
      s.Apply(batch[i]);
      if (batch[i].phase_before) --moved[static_cast<size_t>(*batch[i].phase_before)];
      ++moved[static_cast<size_t>(batch[i].after.phase)];
    }
    current.reset();
    for (size_t phase = 0; phase < kPhases; ++phase) {
      if (moved[phase] == 0) continue;
      Run r = s.Use(kAddPhaseCount, "counting payments by phase");
      r.Text(1, domain::PhaseName(static_cast<domain::Phase>(phase))).Int(2, moved[phase]).Exec();
    }
    // Confirms ride along with the decisions: one transaction, one fsync for both.
    int64_t marked = 0;
    for (int64_t seq : sent) {
      s.Use(kMarkSent, "marking outbox rows sent").Int(1, seq).Int(2, ToMillis(sent_at)).Exec();
      marked += sqlite3_changes(s.db);
    }
    tx.Commit();
    WriteResult r;
    r.rows = marked;
    return r;
  } catch (const StoreError& e) {
    return Failed(e, current);
  } catch (const std::bad_alloc&) {
    return Failed(StoreError(ErrorCode::kIo, "store " + s.path + ": out of memory"), current);
  }
}

WriteResult Store::MarkSent(std::span<const int64_t> seqs, Time at) {
  if (seqs.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  int64_t rows = 0;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    for (size_t i = 0; i < seqs.size(); ++i) {
      current = i;
      s.Use(kMarkSent, "marking outbox rows sent").Int(1, seqs[i]).Int(2, ToMillis(at)).Exec();
      rows += sqlite3_changes(s.db);
    }
    current.reset();
    tx.Commit();
  } catch (const StoreError& e) {
    return Failed(e, current);
  }
  WriteResult r;
  r.rows = rows;
  return r;
}

WriteResult Store::Checkpoint() {
  int wal_frames = 0;
  int copied = 0;
  const int rc = sqlite3_wal_checkpoint_v2(impl_->db, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &wal_frames, &copied);
  if (rc != SQLITE_OK) {
    const ErrorCode code = CodeOf(rc);
    return Failed(StoreError(code, Describe(impl_->path,
                                            std::string("checkpoint: ") +
                                                SqliteWords(sqlite3_errmsg(impl_->db), rc),
                                            code)),
                  std::nullopt);
  }
  WriteResult r;
  r.rows = copied;
  return r;
}

}  // namespace payorch::store
