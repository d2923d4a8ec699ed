// dlq list/show/replay/purge/replays. Every command that reads the dead-letter
// queue takes messages on a holding channel (basic.get without ack): a message
// held is invisible to other readers and returns to its place when the channel
// closes, so reading is non-destructive and a message is in one replay at a time.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "codec/codec.hpp"
#include "ctl/context.hpp"
#include "ctl/dead_letters.hpp"

namespace payorch::ctl {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// Filters common to list, replay and purge. `reason_is_filter`: in list and purge
// --reason is the same as --error; in replay it is the operator's why.
Filter FilterFrom(const Args& args, bool reason_is_filter) {
  Filter f;
  f.ids = args.positional;
  f.all = args.Has("--all");
  if (auto v = args.Get("--error")) f.reason = *v;
  if (reason_is_filter)
    if (auto v = args.Get("--reason")) f.reason = *v;
  if (auto v = args.Get("--routing-key")) f.routing_key = *v;
  if (auto v = args.Get("--order")) f.order_id = *v;
  if (auto v = args.Get("--since")) f.since = ParseDurationArg("--since", *v);
  return f;
}

// For replay and purge, which act: the operator must say which messages.
void RequireSelection(const Filter& f, const std::string& verb) {
  if (f.all && (!f.ids.empty() || f.reason || f.routing_key || f.order_id || f.since))
    throw UsageError("--all " + verb + "s every message: give it alone, or IDs or filters instead");
  if (!f.SelectsSomething())
    throw UsageError("say which messages to " + verb +
                     ": IDs, --all, or filters (--error, --routing-key, --order, --since); "
                     "'payorchctl dlq list' shows them");
}

std::string Plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string DuplicateCopies(size_t n) {
  return std::to_string(n) + (n == 1 ? " duplicate copy" : " duplicate copies");
}

json::object LetterJson(const DeadLetter& d, domain::Time now) {
  json::object o;
  o["id"] = d.id;
  o["reason"] = d.reason;
  o["detail"] = MaskDigits(d.detail);
  o["exchange"] = d.original_exchange;
  o["routing_key"] = d.routing_key;
  o["order_id"] = d.order_id;
  o["event_id"] = d.event_id;
  o["dead_lettered_at"] = JsonTime(d.dead_lettered_at);
  auto age = d.Age(now);
  o["age_seconds"] = age ? json::value(age->count() / 1000) : json::value(nullptr);
  o["size"] = d.Size();
  o["content_type"] = d.message.properties.content_type.value_or("");
  o["replayed_by"] =
      bus::HeaderString(d.message.properties.headers, kReplayedByHeader).value_or("");
  return o;
}

// The decoded event as the contract's JSON, MSISDNs masked.
std::string MaskedEventJson(domain::OrderEvent e, bool pretty) {
  if (auto* p = std::get_if<domain::PurchaseRequested>(&e.kind))
    if (!p->msisdn.empty()) p->msisdn = domain::MaskMsisdn(p->msisdn);
  if (auto* m = std::get_if<domain::PayerMsisdnProvided>(&e.kind))
    if (!m->msisdn.empty()) m->msisdn = domain::MaskMsisdn(m->msisdn);
  return codec::EncodeOrderEventJson(e, pretty);
}

json::object PropertiesJson(const bus::Properties& p) {
  json::object o;
  auto put = [&](const char* name, const std::optional<std::string>& v) {
    if (v) o[name] = *v;
  };
  put("content_type", p.content_type);
  put("content_encoding", p.content_encoding);
  if (p.delivery_mode) o["delivery_mode"] = *p.delivery_mode;
  if (p.priority) o["priority"] = *p.priority;
  put("correlation_id", p.correlation_id);
  put("reply_to", p.reply_to);
  put("expiration", p.expiration);
  put("message_id", p.message_id);
  if (p.timestamp) o["timestamp"] = *p.timestamp;
  put("type", p.type);
  put("user_id", p.user_id);
  put("app_id", p.app_id);
  return o;
}

bus::Table MaskedHeaders(bus::Table headers) {
  // The decoder's detail may quote the body.
  auto it = headers.find("x-payorch-detail");
  if (it != headers.end() && it->second.IsString()) it->second.s = MaskDigits(it->second.s);
  return headers;
}

// Progress of a long replay on stderr: a bar redrawn in place on a terminal, a
// plain line every io.progress_interval otherwise (logs of a script or a job).
class Progress {
 public:
  Progress(Context& ctx, uint32_t depth)
      : ctx_(ctx), depth_(depth), start_(Clock::now()), last_(start_) {}

  void Update(size_t replayed, size_t examined) {
    const auto now = Clock::now();
    if (ctx_.io().stderr_is_tty) {
      if (now - last_ < std::chrono::milliseconds(100)) return;
      last_ = now;
      Draw(replayed, examined);
    } else {
      if (now - last_ < ctx_.io().progress_interval) return;
      last_ = now;
      ctx_.err() << "replay: " << replayed << " replayed, " << examined << " of ~" << depth_
                 << " examined, " << Rate(replayed, now) << "/s\n"
                 << std::flush;
    }
  }

  void Finish(size_t replayed, size_t examined) {
    if (ctx_.io().stderr_is_tty) {
      Draw(replayed, examined);
      ctx_.err() << "\n" << std::flush;
    }
  }

 private:
  void Draw(size_t replayed, size_t examined) {
    constexpr size_t kWidth = 30;
    const size_t of = std::max<size_t>(depth_, examined);
    const size_t filled = of == 0 ? kWidth : std::min(kWidth, examined * kWidth / of);
    ctx_.err() << "\rreplay [" << std::string(filled, '#') << std::string(kWidth - filled, '.')
               << "] " << examined << "/" << of << " examined, " << replayed << " replayed, "
               << Rate(replayed, Clock::now()) << "/s " << std::flush;
  }

  std::string Rate(size_t n, Clock::time_point now) const {
    const double secs = std::chrono::duration<double>(now - start_).count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", secs > 0 ? static_cast<double>(n) / secs : 0.0);
    return buf;
  }

  Context& ctx_;
  uint32_t depth_;
  Clock::time_point start_, last_;
};

// Scans the queue on `hold`: every message is taken and stays held until the hold
// closes, so each is seen once. `visit` returns false to stop.
template <typename Visit>
size_t Scan(bus::HoldChannel& hold, const std::string& queue, const bus::Topology& topology,
            Visit visit) {
  size_t examined = 0;
  while (auto m = hold.Get(queue)) {
    ++examined;
    if (!visit(Describe(std::move(*m), topology))) break;
  }
  return examined;
}

void PrintLetterTable(Context& ctx, const std::vector<DeadLetter>& letters, domain::Time now) {
  Table t({"ID", "REASON", "ROUTING KEY", "ORDER", "EVENT", "AGE", "SIZE"});
  for (const auto& d : letters)
    t.Add({ShowText(d.id), d.reason, ShowText(d.routing_key),
           d.order_id.empty() ? "-" : ShowText(d.order_id),
           d.event_id.empty() ? "-" : ShowText(d.event_id), FormatAge(d.Age(now)),
           std::to_string(d.Size())});
  t.Print(ctx.out());
}

std::string MissingIds(const Filter& f, const std::set<std::string>& found) {
  std::string missing;
  for (const auto& id : f.ids)
    if (!found.count(id)) missing += (missing.empty() ? "" : ", ") + id;
  return missing;
}

}  // namespace

// --- dlq list -----------------------------------------------------------------------

int DlqList(Context& ctx, const Args& args) {
  Filter filter = FilterFrom(args, true);
  if (!filter.SelectsSomething()) filter.all = true;
  const size_t limit = args.Get("--limit") ? ParseCount("--limit", *args.Get("--limit")) : 100;
  const auto& topology = ctx.Config().bus.topology;
  bus::Admin admin = ctx.ConnectBus("dlq list");
  const uint32_t depth = ctx.DeadLetterDepth(admin);
  const domain::Time now = ctx.Now();

  std::vector<DeadLetter> shown;
  bool more = false;
  {
    bus::HoldChannel hold = admin.OpenHold();
    Scan(hold, topology.dead_letter_queue, topology, [&](DeadLetter d) {
      if (!filter.Matches(d, now)) return true;
      if (shown.size() == limit) {
        more = true;
        return false;
      }
      shown.push_back(std::move(d));
      return true;
    });
    hold.Close();
  }

  if (ctx.Json()) {
    json::array messages;
    for (const auto& d : shown) messages.push_back(LetterJson(d, now));
    json::object o;
    o["queue"] = topology.dead_letter_queue;
    o["depth"] = depth;
    o["filter"] = filter.Describe();
    o["truncated"] = more;
    o["messages"] = std::move(messages);
    PrintJson(ctx.out(), o);
    return kExitOk;
  }
  if (!shown.empty()) PrintLetterTable(ctx, shown, now);
  if (filter.all && !more && shown.size() == depth) {
    ctx.out() << Plural(depth, "message") << " in " << topology.dead_letter_queue << "\n";
  } else {
    ctx.out() << Plural(shown.size(), "message") << (more ? " shown (--limit; more match)" : "")
              << (filter.all ? "" : " matching " + filter.Describe()) << ", "
              << Plural(depth, "message") << " in " << topology.dead_letter_queue << "\n";
  }
  return kExitOk;
}

// --- dlq show -----------------------------------------------------------------------

int DlqShow(Context& ctx, const Args& args) {
  if (args.positional.size() != 1)
    throw UsageError("give one message ID (payorchctl dlq list shows them)");
  Filter filter;
  filter.ids = args.positional;
  const auto& topology = ctx.Config().bus.topology;
  bus::Admin admin = ctx.ConnectBus("dlq show");
  const uint32_t depth = ctx.DeadLetterDepth(admin);
  const domain::Time now = ctx.Now();

  std::vector<DeadLetter> found;
  {
    bus::HoldChannel hold = admin.OpenHold();
    Scan(hold, topology.dead_letter_queue, topology, [&](DeadLetter d) {
      if (filter.Matches(d, now)) found.push_back(std::move(d));
      return true;
    });
    hold.Close();
  }
  if (found.empty())
    throw Failure("no message with ID " + filter.ids[0] + " in " + topology.dead_letter_queue +
                  " (" + Plural(depth, "message") +
                  "; one held by a running replay is not seen): 'payorchctl dlq list' shows "
                  "the IDs");

  if (ctx.Json()) {
    json::array out;
    for (const auto& d : found) {
      json::object o = LetterJson(d, now);
      o["queue"] = topology.dead_letter_queue;
      o["properties"] = PropertiesJson(d.message.properties);
      o["headers"] = ToJson(MaskedHeaders(d.message.properties.headers));
      if (d.event) {
        o["body"] = json::parse(MaskedEventJson(*d.event, false));
        o["body_error"] = nullptr;
      } else {
        o["body"] = nullptr;
        json::object e;
        e["code"] = d.decode_error->code;
        e["detail"] = MaskDigits(d.decode_error->detail);
        o["body_error"] = std::move(e);
        o["body_raw"] = ShowBytes(d.message.body);
      }
      out.push_back(std::move(o));
    }
    // One document: the message, or all copies when several share the ID.
    if (out.size() == 1) {
      PrintJson(ctx.out(), out[0]);
    } else {
      PrintJson(ctx.out(), out);
    }
    return kExitOk;
  }

  std::ostream& o = ctx.out();
  for (size_t i = 0; i < found.size(); ++i) {
    const DeadLetter& d = found[i];
    if (i > 0) o << "\n";
    if (found.size() > 1) o << "(copy " << i + 1 << " of " << found.size() << ")\n";
    o << "id:             " << ShowText(d.id) << "\n"
      << "queue:          " << topology.dead_letter_queue << "\n"
      << "reason:         " << d.reason << "\n"
      << "detail:         " << MaskDigits(d.detail) << "\n"
      << "came from:      exchange '" << ShowText(d.original_exchange) << "', routing key '"
      << ShowText(d.routing_key) << "'\n"
      << "order:          " << (d.order_id.empty() ? "-" : ShowText(d.order_id)) << "\n"
      << "event:          " << (d.event_id.empty() ? "-" : ShowText(d.event_id)) << "\n"
      << "dead-lettered:  " << FormatTime(d.dead_lettered_at) << " (" << FormatAge(d.Age(now))
      << " ago)\n"
      << "size:           " << d.Size() << " bytes\n";
    if (!d.replay_id.empty())
      o << "replayed:       by replay " << ShowText(d.replay_id) << " ("
        << ShowText(bus::HeaderString(d.message.properties.headers, kReplayedByHeader)
                        .value_or("?"))
        << ") and dead-lettered again\n";
    o << "properties:\n";
    for (const auto& [key, value] : PropertiesJson(d.message.properties))
      o << "  " << ShowText(key) << ": "
        << ShowText(value.is_string() ? std::string(value.as_string()) : json::serialize(value),
                    1000)
        << "\n";
    o << "headers:\n";
    for (const auto& [key, value] : MaskedHeaders(d.message.properties.headers)) {
      o << "  " << ShowText(key) << ": " << ShowText(value.ToText(), 1000);
      if (value.kind == 'T')
        o << " (" << FormatTime(domain::FromMillis(static_cast<int64_t>(value.u) * 1000)) << ")";
      o << "\n";
    }
    if (d.event) {
      o << "body (" << ShowText(d.message.properties.content_type.value_or("no content type"))
        << ", decodes; as the contract's JSON, MSISDNs masked):\n"
        << MaskedEventJson(*d.event, true);
      if (MaskedEventJson(*d.event, true).back() != '\n') o << "\n";
    } else {
      o << "body (" << ShowText(d.message.properties.content_type.value_or("no content type"))
        << ", does not decode: " << d.decode_error->code << ": "
        << MaskDigits(d.decode_error->detail) << "):\n"
        << ShowBytes(d.message.body) << "\n";
    }
  }
  return kExitOk;
}

// --- dlq replay -----------------------------------------------------------------------

namespace {

struct ReplayState {
  int64_t replay_id = 0;
  std::string replay_tag;  // the x-payorch-replay-id value
  size_t replayed = 0;
  size_t examined = 0;
  std::vector<store::ReplayedMessage> recorded;  // for the output (bounded)
  std::vector<store::ReplayedMessage> batch;     // confirmed, not yet recorded
  std::vector<uint64_t> batch_tags;              // their delivery tags, acked after recording
  Clock::time_point batch_started{};
  std::string failure;  // why it stopped early
};

constexpr size_t kBatch = 100;
constexpr size_t kRecordedShown = 1000;

// Records the confirmed batch, then acks it: a message leaves the dead-letter
// queue only once the broker has its copy and the replay record has it.
void Flush(store::Store& store, bus::HoldChannel& hold, ReplayState& s) {
  if (s.batch.empty()) return;
  store::WriteResult w = store.AddReplayedMessages(s.replay_id, s.batch);
  if (!w)
    throw Failure("recording the replay in the store: " + w.message + ". " +
                  Plural(s.batch.size(), "message") +
                  " were published but stay in the dead-letter queue (replaying them again is "
                  "harmless: payorchd ignores events it has processed)");
  for (uint64_t tag : s.batch_tags) hold.Ack(tag);
  s.replayed += s.batch.size();
  for (auto& m : s.batch)
    if (s.recorded.size() < kRecordedShown) s.recorded.push_back(std::move(m));
  s.batch.clear();
  s.batch_tags.clear();
}

// Publishes one message and waits for its confirm; false (and s.failure) when the
// broker did not take it, which stops the replay.
bool PublishOne(Context& ctx, bus::HoldChannel& hold, const DeadLetter& d, const std::string& who,
                ReplayState& s) {
  bus::PublishResult r = hold.Publish(ReplayMessage(d, who, s.replay_tag));
  if (r.status == bus::PublishStatus::kConfirmed) {
    if (s.batch.empty()) s.batch_started = Clock::now();
    s.batch.push_back(
        store::ReplayedMessage{d.id, d.event_id, d.order_id, d.routing_key, ctx.Now()});
    s.batch_tags.push_back(d.message.delivery_tag);
    return true;
  }
  if (r.status == bus::PublishStatus::kReturned)
    s.failure = "message " + d.id + " came back from the broker (" + r.detail +
                "): no queue is bound to exchange '" + d.original_exchange + "' for routing key '" +
                d.routing_key +
                "'. It stays in the dead-letter queue; is payorchd's queue declared (start "
                "payorchd), or was the message published with a routing key nobody routes?";
  else
    s.failure = "the broker refused message " + d.id + " (" + bus::PublishStatusName(r.status) +
                ": " + r.detail + "); it stays in the dead-letter queue";
  return false;
}

void PrintDryRun(Context& ctx, const std::vector<std::pair<DeadLetter, DryRun>>& results,
                 const std::string& queue) {
  std::map<Verdict, size_t> counts;
  for (const auto& [d, r] : results) ++counts[r.verdict];
  if (ctx.Json()) {
    json::array messages;
    for (const auto& [d, r] : results) {
      json::object o;
      o["id"] = d.id;
      o["event_id"] = d.event_id;
      o["order_id"] = d.order_id;
      o["routing_key"] = d.routing_key;
      o["verdict"] = VerdictName(r.verdict);
      o["what"] = r.what;
      messages.push_back(std::move(o));
    }
    json::object o;
    o["dry_run"] = true;
    o["queue"] = queue;
    o["messages"] = std::move(messages);
    PrintJson(ctx.out(), o);
    return;
  }
  Table t({"ID", "EVENT", "ORDER", "VERDICT", "WHAT REPLAYING WOULD DO"});
  for (const auto& [d, r] : results)
    t.Add({d.id, d.event_id.empty() ? "-" : d.event_id, d.order_id.empty() ? "-" : d.order_id,
           VerdictName(r.verdict), r.what});
  if (!results.empty()) t.Print(ctx.out());
  const size_t copies = counts[Verdict::kDuplicate];
  ctx.out() << "dry run: nothing was published, acked or recorded; " << results.size() - copies
            << " would be replayed: " << counts[Verdict::kValid] << " valid, "
            << counts[Verdict::kProcessed] << " already processed, " << counts[Verdict::kRejected]
            << " would be rejected, " << counts[Verdict::kMalformed] << " still malformed";
  if (copies > 0) ctx.out() << "; " << DuplicateCopies(copies) << " acked with them";
  ctx.out() << "\n";
}

}  // namespace

namespace {

// What replay and purge act on: the matching messages, held on `hold` (taken in one
// pass, before the operator is asked), so that only these, and none that arrives
// later, are published or acked. Copies of one message (same id and same body) are
// grouped: `unique` has the first copy of each in queue order, `copies` the delivery
// tags of every copy (the first included). Two bodies under one id are two
// messages: each is replayed (an operator must never lose one to the other).
struct Selection {
  std::vector<DeadLetter> unique;
  std::map<std::string, std::vector<uint64_t>> copies;  // CopyKey -> every copy's tag
  size_t held = 0;      // messages taken, matching or not
  size_t matching = 0;  // copies included

  size_t Duplicates() const { return matching - unique.size(); }
};

// What makes two dead letters copies of one message: the same id and the same
// message to publish (exchange, routing key, body, properties, headers). Anything
// that differs makes them two messages, each replayed.
std::string CopyKey(const DeadLetter& d) {
  const bus::Message m = ReplayMessage(d, "", "");
  std::string k;
  auto add = [&k](std::string_view v) {
    k += std::to_string(v.size());
    k += ':';
    k += v;
  };
  auto opt = [&add](const std::optional<std::string>& v) { add(v ? "+" + *v : "-"); };
  const bus::Properties& p = m.properties;
  add(d.id);
  add(m.exchange);
  add(m.routing_key);
  add(m.body);
  for (const auto* v : {&p.content_type, &p.content_encoding, &p.correlation_id, &p.reply_to,
                        &p.expiration, &p.type, &p.app_id})
    opt(*v);
  add(std::to_string(p.delivery_mode.value_or(0)) + "/" + std::to_string(p.priority.value_or(0)) +
      "/" + std::to_string(p.timestamp.value_or(0)));
  for (const auto& [key, value] : p.headers) {
    add(key);
    add(value.ToText());
  }
  return k;
}

// Takes the whole queue on `hold` and keeps what `filter` matches. Throws Failure
// (after closing `hold`) when an id given is not there: a typo acts on nothing.
Selection Select(bus::HoldChannel& hold, const std::string& queue, const bus::Topology& topology,
                 const Filter& filter, domain::Time now, const std::string& nothing_done) {
  Selection s;
  std::set<std::string> found;
  s.held = Scan(hold, queue, topology, [&](DeadLetter d) {
    if (!filter.Matches(d, now)) return true;  // stays held: the next Get moves on
    found.insert(d.id);
    ++s.matching;
    auto& tags = s.copies[CopyKey(d)];
    tags.push_back(d.message.delivery_tag);
    if (tags.size() == 1) s.unique.push_back(std::move(d));
    return true;
  });
  if (std::string missing = MissingIds(filter, found); !missing.empty()) {
    hold.Close();
    throw Failure("not in " + queue + ": " + missing + "; " + nothing_done +
                  " ('payorchctl dlq list' shows the IDs; a message held by a running replay "
                  "or listing is not seen)");
  }
  return s;
}

std::string CopiesNote(const Selection& s) {
  if (s.Duplicates() == 0) return "";
  return " (and " + DuplicateCopies(s.Duplicates()) + " of them)";
}

// Asks while the messages stay held, keeping the broker connection alive.
bool ConfirmHolding(Context& ctx, bus::HoldChannel& hold, const std::string& question,
                    const std::string& refusal) {
  return Confirm(ctx, question, refusal, [&hold](std::chrono::milliseconds d) {
    if (hold.IsOpen()) {
      hold.Pause(d);
    } else {
      std::this_thread::sleep_for(d);
    }
  });
}

}  // namespace

int DlqReplay(Context& ctx, const Args& args) {
  Filter filter = FilterFrom(args, false);
  RequireSelection(filter, "replay");
  const bool dry_run = args.Has("--dry-run");
  const std::string reason = args.Get("--reason").value_or("");
  if (!dry_run && reason.empty())
    throw UsageError(
        "--reason TEXT is required: say why you replay (it is kept in the replay "
        "record); or try --dry-run first");
  // list and purge take --reason CODE as a filter: the same words here would
  // silently replay more than the operator meant.
  if (!reason.empty() && IsKnownErrorCode(reason))
    throw UsageError("--reason is why you replay (free text); to select by error code use --error " +
                     reason);
  std::optional<double> rate;
  if (auto r = args.Get("--rate")) rate = ParseRate(*r);
  std::string who = args.Get("--who").value_or("");
  if (who.empty()) who = ctx.Env("USER").value_or(ctx.Env("LOGNAME").value_or(""));
  if (who.empty()) who = "unknown";

  const config::Config& config = ctx.Config();
  const auto& topology = config.bus.topology;
  const std::string& queue = topology.dead_letter_queue;
  // Only a real replay records, in the store of partition 0 when partitioned. Each
  // message is judged against the store of its order's partition.
  store::Store store = ctx.OpenStore(/*write=*/!dry_run);
  std::map<uint32_t, store::Store> others;
  auto store_of = [&](const DeadLetter& d) -> store::Store& {
    const uint32_t p = d.event ? ctx.PartitionOf(d.event->order_id) : 0;
    if (p == 0) return store;
    auto it = others.find(p);
    if (it == others.end()) it = others.emplace(p, ctx.OpenStore(/*write=*/false, p)).first;
    return it->second;
  };
  bus::Admin admin = ctx.ConnectBus(dry_run ? "dlq replay --dry-run" : "dlq replay");
  const uint32_t depth = ctx.DeadLetterDepth(admin);
  (void)depth;
  const domain::Time started = ctx.Now();

  // Everything that matches is taken and held first: the prompt counts exactly
  // these, and the replay publishes and acks exactly these, on this channel.
  bus::HoldChannel hold = admin.OpenHold();
  Selection sel =
      Select(hold, queue, topology, filter, started, dry_run ? "nothing to show" : "nothing was replayed");

  if (dry_run) {
    // In queue order, as the replay would publish them and payorchd take them.
    std::vector<std::pair<DeadLetter, DryRun>> results;
    Simulation simulation;
    std::map<std::string, size_t> copy_seen;
    for (const auto& d : sel.unique) {
      results.emplace_back(d, Classify(d, store_of(d), config.payments, started, &simulation));
      const size_t n = sel.copies[CopyKey(d)].size();
      for (size_t k = 2; k <= n; ++k)
        results.emplace_back(
            d, DryRun{Verdict::kDuplicate, "copy " + std::to_string(k) + " of " +
                                               std::to_string(n) + " of " + d.id +
                                               ": not published again; acked with the first"});
    }
    hold.Close();  // everything goes back, in its order
    PrintDryRun(ctx, results, queue);
    return kExitOk;
  }

  if (!args.Has("--yes")) {
    if (!ConfirmHolding(ctx, hold,
                        "Replay " + Plural(sel.unique.size(), "message") + CopiesNote(sel) +
                            " (" + filter.Describe() + ") of " + queue +
                            " to their original exchanges, recorded as " + who + "?",
                        "refusing to replay without confirmation: stdin is not a terminal; add "
                        "--yes (try --dry-run first)")) {
      hold.Close();
      ctx.err() << "nothing replayed\n";
      return kExitFailure;
    }
  }

  ReplayState s;
  s.examined = 0;
  store::ReplayRecord record;
  record.who = who;
  record.started_at = started;
  record.reason = reason;
  record.filter = filter.Describe();
  record.queue = queue;
  if (store::WriteResult w = store.StartReplay(record); !w)
    throw Failure("cannot record the replay, so nothing was replayed: " + w.message);
  s.replay_id = record.id;
  s.replay_tag = std::to_string(record.id);

  Progress progress(ctx, static_cast<uint32_t>(sel.unique.size()));
  const auto rate_start = Clock::now();
  size_t published = 0;
  size_t copies_acked = 0;
  auto replay_one = [&](const DeadLetter& d) -> bool {
    if (rate) {
      const auto due = rate_start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(published / *rate));
      if (due > Clock::now())
        hold.Pause(std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now()));
    }
    if (!PublishOne(ctx, hold, d, who, s)) return false;
    ++published;
    // One publish stands for every copy: all are acked with it.
    const auto& tags = sel.copies[CopyKey(d)];
    for (size_t k = 1; k < tags.size(); ++k) s.batch_tags.push_back(tags[k]);
    copies_acked += tags.size() - 1;
    if (s.batch.size() >= kBatch || Clock::now() - s.batch_started > std::chrono::seconds(1))
      Flush(store, hold, s);
    progress.Update(s.replayed + s.batch.size(), s.examined);
    return true;
  };

  std::string error;
  size_t copies_unacked = 0;
  try {
    for (const auto& d : sel.unique) {
      ++s.examined;
      // A copy that an earlier run of this replay sent back (cannot happen: the
      // selection was taken before this replay started), kept as a safeguard.
      if (d.replay_id == s.replay_tag) continue;
      if (!replay_one(d)) break;
    }
    Flush(store, hold, s);
    const size_t returning = hold.Held();  // taken, not replayed: back on close
    hold.Close();
    admin.WaitReady(queue, returning);
  } catch (const std::exception& e) {
    error = e.what();
    copies_unacked = s.batch_tags.size() - s.batch.size();
    // Published and confirmed, so replayed, though not acked: the record says so.
    if (!s.batch.empty()) (void)store.AddReplayedMessages(s.replay_id, s.batch);
  }
  if (copies_unacked > copies_acked) copies_unacked = copies_acked;
  copies_acked -= copies_unacked;
  progress.Finish(s.replayed, s.examined);

  std::optional<uint32_t> remaining;
  try {
    remaining = admin.QueueDepth(queue);
  } catch (const std::exception&) {
  }
  std::string outcome = "completed";
  std::string detail;
  if (!error.empty()) {
    outcome = "failed";
    detail = error;
    if (!s.batch.empty())
      detail += "; " + Plural(s.batch.size(), "message") +
                " were published but not acked: they are back in the dead-letter queue "
                "(replaying them again is harmless)";
  } else if (!s.failure.empty()) {
    outcome = "failed";
    detail = s.failure;
  }
  if (remaining && *remaining > 0)
    detail += std::string(detail.empty() ? "" : "; ") + Plural(*remaining, "message") +
              " left in " + queue;
  if (store::WriteResult w = store.FinishReplay(s.replay_id, outcome, detail, ctx.Now()); !w)
    ctx.err() << "warning: could not record the end of replay " << s.replay_id << ": " << w.message
              << "\n";

  if (ctx.Json()) {
    json::array messages;
    for (const auto& m : s.recorded) {
      json::object o;
      o["id"] = m.message_id;
      o["event_id"] = m.event_id;
      o["order_id"] = m.order_id;
      o["routing_key"] = m.routing_key;
      messages.push_back(std::move(o));
    }
    json::object o;
    o["replay_id"] = s.replay_id;
    o["queue"] = queue;
    o["who"] = who;
    o["reason"] = reason;
    o["filter"] = filter.Describe();
    o["replayed"] = s.replayed;
    o["duplicate_copies_acked"] = copies_acked;
    o["outcome"] = outcome;
    o["detail"] = detail;
    o["remaining"] = remaining ? json::value(*remaining) : json::value(nullptr);
    o["messages"] = std::move(messages);
    PrintJson(ctx.out(), o);
  } else {
    ctx.out() << "replay " << s.replay_id << ": " << Plural(s.replayed, "message")
              << " replayed from " << queue << " (" << filter.Describe() << ") by " << who << ", "
              << outcome << "\n";
    if (copies_acked > 0)
      ctx.out() << DuplicateCopies(copies_acked) << " (same id as one replayed) "
                << (copies_acked == 1 ? "was" : "were") << " acked, not published again\n";
    if (!detail.empty()) ctx.out() << detail << "\n";
    ctx.out() << "the record: payorchctl dlq replays " << s.replay_id << "\n";
  }
  if (outcome != "completed") {
    ctx.err() << "payorchctl dlq replay: " << detail << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

// --- dlq purge ----------------------------------------------------------------------

int DlqPurge(Context& ctx, const Args& args) {
  Filter filter = FilterFrom(args, true);
  RequireSelection(filter, "purge");
  const auto& topology = ctx.Config().bus.topology;
  const std::string& queue = topology.dead_letter_queue;
  bus::Admin admin = ctx.ConnectBus("dlq purge");
  const domain::Time now = ctx.Now();

  // Taken and held first (--all too, never queue.purge): the prompt counts exactly
  // these, and exactly these are acked, on this channel; what arrives meanwhile stays.
  bus::HoldChannel hold = admin.OpenHold();
  Selection sel = Select(hold, queue, topology, filter, now, "nothing was purged");
  if (!args.Has("--yes")) {
    if (!ConfirmHolding(ctx, hold,
                        "Delete " + Plural(sel.matching, "message") + " (" + filter.Describe() +
                            ") from " + queue + " for good?",
                        "refusing to purge without confirmation: stdin is not a terminal; add "
                        "--yes")) {
      hold.Close();
      ctx.err() << "nothing purged\n";
      return kExitFailure;
    }
  }
  size_t purged = 0;
  std::vector<std::string> ids;
  for (const auto& d : sel.unique) {
    for (uint64_t tag : sel.copies[CopyKey(d)]) {
      hold.Ack(tag);
      ++purged;
      ids.push_back(d.id);
    }
  }
  // close-ok comes after the broker handled every ack before it.
  hold.Close();

  if (ctx.Json()) {
    json::object o;
    o["queue"] = queue;
    o["filter"] = filter.Describe();
    o["purged"] = purged;
    json::array a;
    for (const auto& id : ids) a.push_back(json::value(id));
    o["ids"] = std::move(a);
    PrintJson(ctx.out(), o);
  } else {
    ctx.out() << "purged " << Plural(purged, "message") << " from " << queue << " ("
              << filter.Describe() << ")\n";
  }
  return kExitOk;
}

// --- dlq replays --------------------------------------------------------------------

namespace {

json::object ReplayJson(const store::ReplayRecord& r) {
  json::object o;
  o["id"] = r.id;
  o["who"] = r.who;
  o["started_at"] = JsonTime(r.started_at);
  o["finished_at"] = JsonTime(r.finished_at);
  o["reason"] = r.reason;
  o["filter"] = r.filter;
  o["queue"] = r.queue;
  o["messages"] = r.message_count;
  o["outcome"] = r.outcome;
  o["detail"] = r.detail;
  return o;
}

}  // namespace

int DlqReplays(Context& ctx, const Args& args) {
  if (args.positional.size() > 1) throw UsageError("give at most one replay ID");
  std::optional<int64_t> id;
  if (!args.positional.empty())
    id = static_cast<int64_t>(ParseCount("replay ID", args.positional[0]));
  const size_t limit = args.Get("--limit") ? ParseCount("--limit", *args.Get("--limit")) : 50;
  store::Store store = ctx.OpenStore();

  if (!id) {
    auto replays = store.Replays(limit);
    if (ctx.Json()) {
      json::array a;
      for (const auto& r : replays) a.push_back(ReplayJson(r));
      json::object o;
      o["replays"] = std::move(a);
      PrintJson(ctx.out(), o);
      return kExitOk;
    }
    if (replays.empty()) {
      ctx.out() << "no replays recorded in " << store.path() << "\n";
      return kExitOk;
    }
    Table t({"ID", "WHO", "STARTED", "FINISHED", "MESSAGES", "OUTCOME", "FILTER", "REASON"});
    for (const auto& r : replays)
      t.Add({std::to_string(r.id), r.who, FormatTime(r.started_at), FormatTime(r.finished_at),
             std::to_string(r.message_count), r.outcome, r.filter, r.reason});
    t.Print(ctx.out());
    return kExitOk;
  }

  auto record = store.LoadReplay(*id);
  if (!record)
    throw Failure("no replay " + std::to_string(*id) + " in " + store.path() +
                  ": 'payorchctl dlq replays' lists them");
  auto messages = store.ReplayMessages(*id);
  if (ctx.Json()) {
    json::object o = ReplayJson(*record);
    json::array a;
    for (const auto& m : messages) {
      json::object e;
      e["id"] = m.message_id;
      e["event_id"] = m.event_id;
      e["order_id"] = m.order_id;
      e["routing_key"] = m.routing_key;
      e["replayed_at"] = JsonTime(m.replayed_at);
      a.push_back(std::move(e));
    }
    o["message_list"] = std::move(a);
    PrintJson(ctx.out(), o);
    return kExitOk;
  }
  std::ostream& o = ctx.out();
  o << "replay:    " << record->id << "\n"
    << "who:       " << record->who << "\n"
    << "started:   " << FormatTime(record->started_at) << "\n"
    << "finished:  " << FormatTime(record->finished_at)
    << (record->finished_at ? "" : " (running, or the replayer died)") << "\n"
    << "reason:    " << record->reason << "\n"
    << "filter:    " << record->filter << "\n"
    << "queue:     " << record->queue << "\n"
    << "outcome:   " << record->outcome << (record->detail.empty() ? "" : ": " + record->detail)
    << "\n"
    << "messages:  " << record->message_count << "\n";
  if (!messages.empty()) {
    Table t({"ID", "EVENT", "ORDER", "ROUTING KEY", "REPLAYED AT"});
    for (const auto& m : messages)
      t.Add({m.message_id, m.event_id.empty() ? "-" : m.event_id,
             m.order_id.empty() ? "-" : m.order_id, m.routing_key, FormatTime(m.replayed_at)});
    t.Print(o);
  }
  return kExitOk;
}

}  // namespace payorch::ctl
