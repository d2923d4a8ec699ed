// payment show/list read the store (one more WAL reader next to payorchd);
// payment resolve/republish ask the running payorchd through its admin endpoint,
// since every change of a payment passes domain::Decide inside the daemon.
#include <algorithm>
#include <cstdio>
#include <iterator>
#include <tuple>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "ctl/admin_client.hpp"
#include "ctl/context.hpp"
#include "domain/decide.hpp"

namespace payorch::ctl {
namespace {

// "0.4 ms", "12.0 ms", "1503 ms": a PayEx call's latency from microseconds.
std::string Millis(int64_t us) {
  char buf[32];
  if (us < 1'000'000)
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(us) / 1000);
  else
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(us / 1000));
  return buf;
}

namespace json = boost::json;

std::string OrDash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::optional<domain::Time> Opt(domain::Time t) {
  if (t == domain::Time{}) return std::nullopt;
  return t;
}

// "in 12s" / "3m ago" relative to now.
std::string Relative(domain::Time t, domain::Time now) {
  if (t == domain::Time{}) return "";
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - now);
  if (d.count() >= 0) return "in " + FormatAge(d);
  return FormatAge(-d) + " ago";
}

// What the next wake-up (due_at) is for, as far as the payment says.
std::string NextAction(const domain::Payment& p) {
  if (p.due_at == domain::Time{}) return "nothing scheduled";
  if (p.in_flight.call_id != 0)
    return "watchdog of PayEx call #" + std::to_string(p.in_flight.call_id);
  if (p.deadline != domain::Time{} && p.due_at == p.deadline)
    return p.phase == domain::Phase::kAwaitingMsisdn ? "MSISDN deadline" : "confirmation deadline";
  if (p.next_poll_at != domain::Time{} && p.due_at == p.next_poll_at) return "poll PayEx";
  for (const auto& op : p.ops)
    if (op.not_before == p.due_at && op.status != domain::OpStatus::kDone &&
        op.status != domain::OpStatus::kFailed)
      return std::string("retry ") + domain::OpKindName(op.kind) + " (backoff)";
  if (p.doubt_since != domain::Time{}) return "read PayEx to resolve a doubt";
  return "timer";
}

std::string Msisdn(const domain::Payment& p) {
  const std::string& m = !p.msisdn.empty() ? p.msisdn : p.purchase.msisdn;
  return m.empty() ? "" : domain::MaskMsisdn(m);
}

json::object BalanceJson(const domain::Balance& b) {
  json::object o;
  o["authorized"] = b.authorized;
  o["captured"] = b.captured;
  o["cancelled"] = b.cancelled;
  o["reversed"] = b.reversed;
  return o;
}

int64_t RemainingToCapture(const domain::Balance& b) {
  return b.authorized - b.captured - b.cancelled;
}
int64_t RemainingToReverse(const domain::Balance& b) {
  return b.captured - b.reversed;
}

AdminClient Client(Context& ctx) {
  const config::AdminConfig& a = ctx.Config().admin;
  return AdminClient(a.listen_address, a.port);
}

json::value ParseBody(const HttpResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return nullptr;
  return v;
}

std::string ErrorCode(const json::value& v) {
  if (v.is_object()) {
    if (const json::value* e = v.as_object().if_contains("error"); e && e->is_string())
      return std::string(e->as_string());
  }
  return "";
}

std::string OneOrder(const Args& args) {
  if (args.positional.size() != 1 || args.positional[0].empty())
    throw UsageError("give one order id");
  return args.positional[0];
}

[[noreturn]] void Unexpected(const std::string& order, const HttpResponse& r) {
  std::string body = r.body.substr(0, 300);
  throw Failure("payorchd answered HTTP " + std::to_string(r.status) + " for order " + order +
                (body.empty() ? "" : ": " + body) + " (see payorchd's log)");
}

}  // namespace

// --- payment show -----------------------------------------------------------------

int PaymentShow(Context& ctx, const Args& args) {
  const std::string order = OneOrder(args);
  // Partitioned, the order lives in its partition's store.
  const uint32_t partition = ctx.PartitionOf(order);
  store::Store store = ctx.OpenStore(/*write=*/false, partition);
  auto payment = store.LoadPayment(order);
  if (!payment)
    throw Failure("no payment for order " + order + " in " + store.path() +
                  " (payorchd has seen no accepted event of it; 'payorchctl payment list' lists "
                  "payments)");
  const domain::Payment& p = *payment;
  const domain::Time now = ctx.Now();
  const auto history = store.History(order);
  const auto operations = store.Operations(order);
  const auto outbox = store.OutboxFor(order);

  if (ctx.Json()) {
    json::object o;
    o["order_id"] = p.order_id;
    if (ctx.Partitions() > 1) o["partition"] = partition;
    o["phase"] = domain::PhaseName(p.phase);
    o["payment_id"] = p.payment_id;
    o["msisdn"] = Msisdn(p);
    o["balance"] = BalanceJson(p.balance);
    json::object remaining;
    remaining["to_capture"] = RemainingToCapture(p.balance);
    remaining["to_reverse"] = RemainingToReverse(p.balance);
    o["remaining"] = std::move(remaining);
    o["purchase"] = json::object{{"event_id", p.purchase_event_id},
                                 {"amount", p.purchase.amount},
                                 {"vat_amount", p.purchase.vat_amount},
                                 {"currency", p.purchase.currency},
                                 {"description", p.purchase.description}};
    o["cancel_requested"] = p.cancel_requested;
    o["created_at"] = JsonTime(Opt(p.created_at));
    o["updated_at"] = JsonTime(Opt(p.updated_at));
    o["deadline"] = JsonTime(Opt(p.deadline));
    o["next_poll_at"] = JsonTime(Opt(p.next_poll_at));
    o["doubt_since"] = JsonTime(Opt(p.doubt_since));
    o["due_at"] = JsonTime(Opt(p.due_at));
    o["next_action"] = NextAction(p);
    if (p.in_flight.call_id != 0)
      o["in_flight"] = json::object{{"call_id", p.in_flight.call_id},
                                    {"op_id", p.in_flight.op_id},
                                    {"sent_at", JsonTime(Opt(p.in_flight.sent_at))}};
    else
      o["in_flight"] = nullptr;
    json::array ops;
    for (const auto& op : p.ops)
      ops.push_back(json::object{{"id", op.id},
                                 {"kind", domain::OpKindName(op.kind)},
                                 {"status", domain::OpStatusName(op.status)},
                                 {"amount", op.amount},
                                 {"ref_id", op.ref_id},
                                 {"payee_reference", op.payee_reference},
                                 {"attempt", op.attempt},
                                 {"transaction_id", op.transaction_id},
                                 {"failure_code", op.failure_code},
                                 {"caused_by", op.caused_by}});
    o["ops"] = std::move(ops);
    json::array calls;
    for (const auto& c : operations)
      calls.push_back(json::object{
          {"call_id", c.call_id},
          {"op_id", c.op_id},
          {"kind", c.kind},
          {"payee_reference", c.payee_reference},
          {"amount", c.amount},
          {"status", c.status},
          {"sent_at", JsonTime(c.sent_at)},
          {"finished_at", JsonTime(c.finished_at)},
          {"result", c.result},
          {"latency_ms", c.latency_us ? json::value(static_cast<double>(*c.latency_us) / 1000)
                                      : json::value(nullptr)}});
    o["operations"] = std::move(calls);
    json::array timeline;
    for (const auto& h : history)
      timeline.push_back(json::object{{"at", JsonTime(h.at)},
                                      {"input", h.input},
                                      {"phase_before", h.phase_before},
                                      {"phase_after", h.phase_after},
                                      {"note", h.note}});
    o["history"] = std::move(timeline);
    json::array events;
    for (const auto& e : outbox) {
      json::object ev{{"sequence", e.event.sequence},
                      {"event_id", e.event.event_id},
                      {"kind", domain::EventKindName(e.event.kind)},
                      {"caused_by_event_id", e.event.caused_by_event_id},
                      {"amount", e.event.amount},
                      {"created_at", JsonTime(e.created_at)},
                      {"sent_at", JsonTime(e.sent_at)},
                      {"published", e.sent_at.has_value()}};
      if (!e.event.failure.code.empty()) ev["failure_code"] = e.event.failure.code;
      events.push_back(std::move(ev));
    }
    o["outbox"] = std::move(events);
    PrintJson(ctx.out(), o);
    return kExitOk;
  }

  std::ostream& o = ctx.out();
  const domain::Balance& b = p.balance;
  o << "order:          " << p.order_id << "\n"
    << "phase:          " << domain::PhaseName(p.phase)
    << (p.cancel_requested ? " (cancellation requested)" : "") << "\n"
    << "payex payment:  " << OrDash(p.payment_id) << "\n"
    << "msisdn:         " << OrDash(Msisdn(p)) << "\n"
    << "purchase:       " << p.purchase.amount << " " << p.purchase.currency << " (vat "
    << p.purchase.vat_amount << ") \"" << p.purchase.description << "\", event "
    << OrDash(p.purchase_event_id) << "\n"
    << "amounts:        authorized " << b.authorized << ", captured " << b.captured
    << ", cancelled " << b.cancelled << ", reversed " << b.reversed << "\n"
    << "remaining:      " << RemainingToCapture(b) << " to capture or cancel, "
    << RemainingToReverse(b) << " to reverse\n"
    << "created:        " << FormatTime(p.created_at) << "\n"
    << "updated:        " << FormatTime(p.updated_at) << " (" << Relative(p.updated_at, now)
    << ")\n";
  if (p.deadline != domain::Time{})
    o << "deadline:       " << FormatTime(p.deadline) << " (" << Relative(p.deadline, now) << ")\n";
  if (p.doubt_since != domain::Time{})
    o << "in doubt since: " << FormatTime(p.doubt_since) << " (" << Relative(p.doubt_since, now)
      << "): an outcome at PayEx is not known yet\n";
  if (p.in_flight.call_id != 0)
    o << "in flight:      call #" << p.in_flight.call_id << " sent "
      << FormatTime(p.in_flight.sent_at) << "\n";
  o << "next action:    " << NextAction(p);
  if (p.due_at != domain::Time{})
    o << ", due " << FormatTime(p.due_at) << " (" << Relative(p.due_at, now) << ")";
  o << "\n";

  o << "\noperations:\n";
  if (p.ops.empty()) {
    o << "  (none)\n";
  } else {
    Table t({"  #", "KIND", "STATUS", "AMOUNT", "REF", "ATTEMPT", "PAYEE REFERENCE", "TRANSACTION",
             "FAILURE"});
    for (const auto& op : p.ops)
      t.Add({"  " + std::to_string(op.id), domain::OpKindName(op.kind),
             domain::OpStatusName(op.status), std::to_string(op.amount), OrDash(op.ref_id),
             std::to_string(op.attempt), OrDash(op.payee_reference), OrDash(op.transaction_id),
             OrDash(op.failure_code)});
    t.Print(o);
  }

  o << "\nPayEx calls:\n";
  if (operations.empty()) {
    o << "  (none)\n";
  } else {
    Table t({"  CALL", "OP", "KIND", "AMOUNT", "STATUS", "SENT", "RESULT", "LATENCY"});
    for (const auto& c : operations)
      t.Add({"  #" + std::to_string(c.call_id), std::to_string(c.op_id), c.kind,
             std::to_string(c.amount), c.status, FormatTime(c.sent_at), OrDash(c.result),
             c.latency_us ? Millis(*c.latency_us) : "-"});
    t.Print(o);
  }

  o << "\ntimeline:\n";
  if (history.empty()) {
    o << "  (none)\n";
  } else {
    Table t({"  AT", "INPUT", "PHASE", "NOTE"});
    for (const auto& h : history)
      t.Add({"  " + FormatTime(h.at), h.input,
             (h.phase_before.empty() ? std::string("-") : h.phase_before) + " -> " + h.phase_after,
             h.note});
    t.Print(o);
  }

  o << "\npayment events (outbox):\n";
  if (outbox.empty()) {
    o << "  (none)\n";
  } else {
    Table t({"  SEQ", "EVENT", "KIND", "CAUSED BY", "CREATED", "PUBLISHED"});
    for (const auto& e : outbox) {
      std::string kind = domain::EventKindName(e.event.kind);
      if (!e.event.failure.code.empty()) kind += " (" + e.event.failure.code + ")";
      t.Add({"  " + std::to_string(e.event.sequence), e.event.event_id, kind,
             OrDash(e.event.caused_by_event_id), FormatTime(e.created_at),
             e.sent_at ? "confirmed " + FormatTime(*e.sent_at) : "not yet"});
    }
    t.Print(o);
  }
  return kExitOk;
}

// --- payment list -------------------------------------------------------------------

int PaymentList(Context& ctx, const Args& args) {
  if (!args.positional.empty())
    throw UsageError("unexpected argument '" + args.positional[0] +
                     "' (payorchctl payment show ORDER_ID shows one payment)");
  store::PaymentFilter filter;
  if (auto s = args.Get("--state")) {
    filter.phase = domain::PhaseFromName(*s);
    if (!filter.phase)
      throw UsageError("--state " + *s +
                       ": expected new, creating, awaiting_msisdn, authorizing, awaiting_payer, "
                       "aborting, authorized, failed or aborted");
  }
  const domain::Time now = ctx.Now();
  if (auto d = args.Get("--older-than"))
    filter.updated_before = now - ParseDurationArg("--older-than", *d);
  filter.in_doubt = args.Has("--in-doubt");
  if (auto l = args.Get("--limit")) filter.limit = ParseCount("--limit", *l);

  // A partition whose store cannot be read is reported and the others listed; exit 1.
  auto [payments, truncated, unread] = ListAllPayments(ctx, filter);
  for (const auto& [part, error] : unread)
    ctx.err() << "payorchctl: partition " << part << " not listed: " << error << "\n";
  if (ctx.Json()) {
    json::array a;
    for (const auto& p : payments)
      a.push_back(json::object{
          {"order_id", p.order_id},
          {"phase", p.phase},
          {"payment_id", p.payment_id},
          {"balance", BalanceJson(p.balance)},
          {"due_at", JsonTime(p.due_at)},
          {"doubt_since", JsonTime(p.doubt_since)},
          {"in_flight_call", p.in_flight_call ? json::value(*p.in_flight_call) : nullptr},
          {"updated_at", JsonTime(p.updated_at)}});
    json::object o{{"payments", std::move(a)}, {"truncated", truncated}};
    if (!unread.empty()) {
      json::array u;
      for (const auto& [part, error] : unread)
        u.push_back(json::object{{"partition", part}, {"error", error}});
      o["unread_partitions"] = std::move(u);
    }
    PrintJson(ctx.out(), o);
    return unread.empty() ? kExitOk : kExitFailure;
  }
  if (payments.empty()) {
    ctx.out() << "no payments match" << (unread.empty() ? "" : " in the partitions read") << "\n";
    return unread.empty() ? kExitOk : kExitFailure;
  }
  Table t({"ORDER", "PHASE", "AUTHORIZED", "CAPTURED", "CANCELLED", "REVERSED", "IN DOUBT",
           "UNCHANGED", "NEXT DUE"});
  for (const auto& p : payments)
    t.Add({p.order_id, p.phase, std::to_string(p.balance.authorized),
           std::to_string(p.balance.captured), std::to_string(p.balance.cancelled),
           std::to_string(p.balance.reversed),
           p.doubt_since ? "since " + FormatAge(now - *p.doubt_since) : "-",
           FormatAge(now - p.updated_at), p.due_at ? Relative(*p.due_at, now) : "-"});
  t.Print(ctx.out());
  ctx.out() << payments.size() << (payments.size() == 1 ? " payment" : " payments")
            << (truncated ? " (--limit reached; more may match)" : "")
            << (unread.empty() ? ""
                               : "; " + std::to_string(unread.size()) + " of " +
                                     std::to_string(ctx.Partitions()) +
                                     " partitions could not be read")
            << "\n";
  return unread.empty() ? kExitOk : kExitFailure;
}

MergedPayments ListAllPayments(Context& ctx, const store::PaymentFilter& filter) {
  MergedPayments out;
  for (uint32_t part = 0; part < ctx.Partitions(); ++part) {
    std::vector<store::PaymentSummary> some;
    try {
      some = ctx.OpenStore(/*write=*/false, part).ListPayments(filter);
    } catch (const std::exception& e) {  // a Failure opening it, a StoreError reading it
      if (ctx.Partitions() == 1) throw;
      out.unread.emplace_back(part, e.what());
      continue;
    }
    out.truncated = out.truncated || some.size() == filter.limit;
    out.payments.insert(out.payments.end(), std::make_move_iterator(some.begin()),
                        std::make_move_iterator(some.end()));
  }
  std::sort(out.payments.begin(), out.payments.end(), [](const auto& a, const auto& b) {
    return std::tie(a.updated_at, a.order_id) < std::tie(b.updated_at, b.order_id);
  });
  if (out.payments.size() > filter.limit) {
    out.payments.resize(filter.limit);
    out.truncated = true;
  }
  return out;
}

// --- payment resolve / republish ----------------------------------------------------

// POSTs /admin/payments/<order>/<action> to payorchd; the answer's body, or a
// Failure that says what went wrong (not running, unknown order, anything else).
json::value AskDaemon(Context& ctx, const std::string& order, const std::string& action) {
  AdminClient client = Client(ctx);
  HttpResponse r;
  try {
    r = client.Request("POST", "/admin/payments/" + PathSegment(order) + "/" + action);
  } catch (const AdminError& e) {
    throw Failure(e.what());
  }
  json::value body = ParseBody(r);
  if (r.status == 404 && ErrorCode(body) == "unknown_order")
    throw Failure("payorchd has no payment for order " + order +
                  " (unknown_order): check the order id");
  if (r.status == 503 && ErrorCode(body) == "partition_elsewhere")
    throw Failure("order " + order + " is in partition " +
                  std::to_string(ctx.PartitionOf(order)) +
                  ", which another payorchd instance serves: point admin.port (or --set "
                  "admin.port=...) at that instance (its /admin/ping lists what it holds)");
  if (r.status != 202 && r.status != 200) Unexpected(order, r);
  return body;
}

int PaymentResolve(Context& ctx, const Args& args) {
  const std::string order = OneOrder(args);
  json::value body = AskDaemon(ctx, order, "resolve");
  if (ctx.Json()) {
    PrintJson(ctx.out(), body.is_null()
                             ? json::value(json::object{{"order_id", order}, {"accepted", true}})
                             : body);
  } else {
    ctx.out() << "payorchd accepted: it resolves order " << order
              << " now (reads the payment at PayEx and decides on it); follow it with "
                 "'payorchctl payment show "
              << order << "'\n";
  }
  return kExitOk;
}

// --- payment parked ------------------------------------------------------------------

int PaymentParked(Context& ctx, const Args& args) {
  if (!args.positional.empty()) throw UsageError("payment parked takes no arguments");
  AdminClient client = Client(ctx);
  HttpResponse r;
  try {
    r = client.Request("GET", "/admin/outbox/parked");
  } catch (const AdminError& e) {
    throw Failure(e.what());
  }
  json::value body = ParseBody(r);
  const json::value* list = body.is_object() ? body.as_object().if_contains("parked") : nullptr;
  if (r.status != 200 || !list || !list->is_array())
    throw Failure("payorchd answered HTTP " + std::to_string(r.status) +
                  " for its parked events: " + MaskDigits(r.body.substr(0, 300)) +
                  " (an older payorchd?)");
  if (ctx.Json()) {
    PrintJson(ctx.out(), body);
    return kExitOk;
  }
  const json::array& parked = list->as_array();
  if (parked.empty()) {
    ctx.out() << "no parked payment events: every order's events go out\n";
    return kExitOk;
  }
  auto str = [](const json::object& o, const char* k) {
    const json::value* v = o.if_contains(k);
    if (!v) return std::string();
    return v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
  };
  Table table({"ORDER", "EVENT", "SEQ", "KIND", "WAITING", "SINCE", "REASON"});
  for (const json::value& v : parked) {
    if (!v.is_object()) continue;
    const json::object& o = v.as_object();
    std::string since = "-";
    if (const json::value* ms = o.if_contains("since_ms"); ms && ms->is_int64())
      since = FormatTime(domain::FromMillis(ms->as_int64()));
    table.Add({str(o, "order_id"), str(o, "event_id"), str(o, "sequence"), str(o, "kind"),
               str(o, "waiting_behind"), since, MaskDigits(str(o, "reason"))});
  }
  table.Print(ctx.out());
  ctx.out() << parked.size() << (parked.size() == 1 ? " order" : " orders")
            << " held back: fix the cause (see REASON), then 'payorchctl payment republish "
               "ORDER' publishes the order's events from the parked one on\n";
  return kExitOk;
}

int PaymentRepublish(Context& ctx, const Args& args) {
  const std::string order = OneOrder(args);
  json::value body = AskDaemon(ctx, order, "republish");
  int64_t events = -1;
  if (body.is_object())
    if (const json::value* n = body.as_object().if_contains("events"); n && n->is_int64())
      events = n->as_int64();
  if (ctx.Json()) {
    PrintJson(ctx.out(), body.is_null() ? json::value(json::object{{"order_id", order}}) : body);
  } else if (events >= 0) {
    ctx.out() << "payorchd republishes " << events << (events == 1 ? " event" : " events")
              << " of order " << order << " (same event ids; consumers deduplicate)\n";
  } else {
    ctx.out() << "payorchd republishes the events of order " << order << "\n";
  }
  return kExitOk;
}

}  // namespace payorch::ctl
