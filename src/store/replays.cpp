// Replay records of dead letters (payorchctl dlq replay), schema version 2.
#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/serialize.hpp"
#include "store/impl.hpp"

namespace payorch::store {

WriteResult Store::StartReplay(ReplayRecord& record) {
  Impl& s = *impl_;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt stmt(s.db, s.path,
                    "INSERT INTO replays (who, started_at, reason, filter, queue, outcome, detail)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, 'running', '')");
    Run(s.db, s.path, stmt, "recording a replay")
        .Text(1, record.who)
        .Int(2, ToMillis(record.started_at))
        .Text(3, record.reason)
        .Text(4, record.filter)
        .Text(5, record.queue)
        .Exec();
    const int64_t id = sqlite3_last_insert_rowid(s.db);
    tx.Commit();
    record.id = id;
    record.outcome = "running";
    record.message_count = 0;
    record.finished_at.reset();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, std::nullopt);
  }
}

WriteResult Store::AddReplayedMessages(int64_t replay_id,
                                       std::span<const ReplayedMessage> messages) {
  if (messages.empty()) return {};
  Impl& s = *impl_;
  std::optional<size_t> current;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt count(s.db, s.path, "SELECT message_count FROM replays WHERE id = ?1");
    int64_t n = 0;
    {
      Run r(s.db, s.path, count, "reading the replay record");
      r.Int(1, replay_id);
      if (!r.Step())
        Throw(s.path, ErrorCode::kConstraint, "no replay record " + std::to_string(replay_id));
      n = r.ColInt(0);
    }
    const Stmt insert(s.db, s.path,
                      "INSERT INTO replay_messages (replay_id, n, message_id, event_id, order_id,"
                      " routing_key, replayed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    for (size_t i = 0; i < messages.size(); ++i) {
      current = i;
      const ReplayedMessage& m = messages[i];
      Run(s.db, s.path, insert, "recording a replayed message")
          .Int(1, replay_id)
          .Int(2, ++n)
          .Text(3, m.message_id)
          .Text(4, m.event_id)
          .Text(5, m.order_id)
          .Text(6, m.routing_key)
          .Int(7, ToMillis(m.replayed_at))
          .Exec();
    }
    current.reset();
    const Stmt update(s.db, s.path, "UPDATE replays SET message_count = ?2 WHERE id = ?1");
    Run(s.db, s.path, update, "counting replayed messages").Int(1, replay_id).Int(2, n).Exec();
    tx.Commit();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, current);
  }
}

WriteResult Store::FinishReplay(int64_t replay_id, std::string_view outcome,
                                std::string_view detail, Time at) {
  Impl& s = *impl_;
  try {
    Transaction tx(s.db, s.path, *s.stmts[kBegin], *s.stmts[kCommit], *s.stmts[kRollback]);
    const Stmt stmt(s.db, s.path,
                    "UPDATE replays SET finished_at = ?2, outcome = ?3, detail = ?4 WHERE id = ?1");
    Run(s.db, s.path, stmt, "finishing the replay record")
        .Int(1, replay_id)
        .Int(2, ToMillis(at))
        .Text(3, outcome)
        .Text(4, detail)
        .Exec();
    if (sqlite3_changes(s.db) != 1)
      Throw(s.path, ErrorCode::kConstraint, "no replay record " + std::to_string(replay_id));
    tx.Commit();
    return {};
  } catch (const StoreError& e) {
    return Failed(e, std::nullopt);
  }
}

namespace {

#define PAYORCH_REPLAY_COLUMNS \
  "id, who, started_at, finished_at, reason, filter, queue, message_count, outcome, detail"

ReplayRecord ReadReplay(const Run& r) {
  ReplayRecord rec;
  rec.id = r.ColInt(0);
  rec.who = r.ColText(1);
  rec.started_at = r.ColTime(2);
  rec.finished_at = r.ColOptTime(3);
  rec.reason = r.ColText(4);
  rec.filter = r.ColText(5);
  rec.queue = r.ColText(6);
  rec.message_count = r.ColInt(7);
  rec.outcome = r.ColText(8);
  rec.detail = r.ColText(9);
  return rec;
}

}  // namespace

std::vector<ReplayRecord> Store::Replays(size_t limit) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT " PAYORCH_REPLAY_COLUMNS " FROM replays ORDER BY id DESC LIMIT ?1");
  Run r(s.db, s.path, stmt, "reading replay records");
  r.Int(1, static_cast<int64_t>(limit));
  return ReadRows(r, ReadReplay);
}

std::optional<ReplayRecord> Store::LoadReplay(int64_t replay_id) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path, "SELECT " PAYORCH_REPLAY_COLUMNS " FROM replays WHERE id = ?1");
  Run r(s.db, s.path, stmt, "reading a replay record");
  r.Int(1, replay_id);
  if (!r.Step()) return std::nullopt;
  return ReadReplay(r);
}

#undef PAYORCH_REPLAY_COLUMNS

std::vector<ReplayedMessage> Store::ReplayMessages(int64_t replay_id) {
  Impl& s = *impl_;
  const Stmt stmt(s.db, s.path,
                  "SELECT message_id, event_id, order_id, routing_key, replayed_at"
                  " FROM replay_messages WHERE replay_id = ?1 ORDER BY n");
  Run r(s.db, s.path, stmt, "reading replayed messages");
  r.Int(1, replay_id);
  return ReadRows(r, [](const Run& row) {
    ReplayedMessage m;
    m.message_id = row.ColText(0);
    m.event_id = row.ColText(1);
    m.order_id = row.ColText(2);
    m.routing_key = row.ColText(3);
    m.replayed_at = row.ColTime(4);
    return m;
  });
}

}  // namespace payorch::store
