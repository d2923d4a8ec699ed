// payorchctl reconcile and payment export (issue 14): the money, compared with
// PayEx and listed for finance. reconcile asks payorchd, which holds the PayEx
// credentials, to read each payment at PayEx and compare it with its record
// (GET /admin/payments/<order>/reconcile); export reads the stores only.
#include <unistd.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <cstdio>

#include "ctl/admin_client.hpp"
#include "ctl/context.hpp"
#include "domain/types.hpp"

namespace payorch::ctl {
namespace {

namespace json = boost::json;

// RFC 4180: quoted when it holds a comma, quote or line break.
std::string Csv(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void CsvRow(std::ostream& out, const std::vector<std::string>& cells) {
  for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << Csv(cells[i]);
  out << "\r\n";
}

// "reconcile: 12/40 payments read from PayEx": redrawn in place on a terminal,
// else a line at each tenth, so that a log shows where a long run stands.
class Progress {
 public:
  Progress(std::ostream& err, size_t total) : err_(err), total_(total), tty_(isatty(2) == 1) {}
  void Step(size_t done) {
    const size_t tenth = total_ >= 10 ? total_ / 10 : 1;
    if (tty_) {
      err_ << "\rreconcile: " << done << "/" << total_ << " payments read from PayEx" << std::flush;
      if (done == total_) err_ << "\n";
    } else if (done == total_ || done % tenth == 0) {
      err_ << "reconcile: " << done << "/" << total_ << " payments read from PayEx\n";
    }
  }

 private:
  std::ostream& err_;
  size_t total_;
  bool tty_;
};

// The orders whose payments changed since `since` (every partition's store), the
// least recently changed first; a partition it cannot read is named in `unread`.
std::vector<std::string> OrdersSince(Context& ctx, domain::Time since,
                                     std::vector<std::string>& unread) {
  store::PaymentFilter filter;
  filter.updated_since = since;
  filter.limit = 10'000'000;
  MergedPayments all = ListAllPayments(ctx, filter);
  for (const auto& [part, error] : all.unread)
    unread.push_back("partition " + std::to_string(part) + ": " + error);
  std::vector<std::string> orders;
  for (const auto& p : all.payments) orders.push_back(p.order_id);
  return orders;
}

struct Row {
  std::string order, what, payorch, payex;
};

}  // namespace

int Reconcile(Context& ctx, const Args& args) {
  if (!args.positional.empty())
    throw UsageError("unexpected argument '" + args.positional[0] + "'");
  const auto since = args.Get("--since");
  const auto order = args.Get("--order");
  if (since.has_value() == order.has_value())
    throw UsageError("give --since DURATION (payments changed in that window) or --order ID");
  std::vector<std::string> unread;
  std::vector<std::string> orders =
      order ? std::vector<std::string>{*order}
            : OrdersSince(ctx, ctx.Now() - ParseDurationArg("--since", *since), unread);
  for (const auto& u : unread) ctx.err() << "payorchctl reconcile: not read: " << u << "\n";

  const config::AdminConfig& a = ctx.Config().admin;
  AdminClient client(a.listen_address, a.port, std::chrono::seconds(30));
  std::vector<Row> mismatches;
  std::vector<std::pair<std::string, std::string>> unsettled, errors;
  size_t compared = 0, mismatched = 0;
  Progress progress(ctx.err(), orders.size());
  for (size_t i = 0; i < orders.size(); ++i) {
    const std::string& o = orders[i];
    HttpResponse r;
    try {
      r = client.Request("GET", "/admin/payments/" + PathSegment(o) + "/reconcile");
    } catch (const AdminUnreachable& e) {
      throw Failure(std::string(e.what()) + " (reconcile reads PayEx through payorchd; " +
                    std::to_string(i) + " of " + std::to_string(orders.size()) +
                    " payments were read)");
    } catch (const AdminError& e) {
      errors.emplace_back(o, e.what());
      progress.Step(i + 1);
      continue;
    }
    boost::system::error_code ec;
    const json::value body = json::parse(r.body, ec);
    if (ec || !body.is_object()) {
      errors.emplace_back(o, "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200));
    } else if (r.status != 200) {
      const json::object& b = body.as_object();
      std::string why = b.contains("error") ? std::string(b.at("error").as_string()) : "?";
      if (why == "partition_elsewhere")
        why += " (partition " + std::to_string(ctx.PartitionOf(o)) +
               " is served by another payorchd: point admin.port at it)";
      if (b.contains("detail")) why += ": " + std::string(b.at("detail").as_string());
      errors.emplace_back(o, why);
    } else {
      const json::object& b = body.as_object();
      if (b.at("status") == "not_created") {
        ++compared;
      } else if (b.at("unsettled").as_bool()) {
        unsettled.emplace_back(o, std::string(b.at("unsettled_why").as_string()));
      } else {
        ++compared;
        const json::array& ms = b.at("mismatches").as_array();
        if (!ms.empty()) ++mismatched;
        for (const auto& m : ms)
          mismatches.push_back({o, std::string(m.at("what").as_string()),
                                std::string(m.at("payorch").as_string()),
                                std::string(m.at("payex").as_string())});
      }
    }
    progress.Step(i + 1);
  }

  const bool bad = !mismatches.empty() || !errors.empty() || !unread.empty();
  if (ctx.Csv()) {
    CsvRow(ctx.out(), {"order_id", "what", "payorch", "payex"});
    for (const Row& m : mismatches) CsvRow(ctx.out(), {m.order, m.what, m.payorch, m.payex});
    for (const auto& [o, why] : unsettled) CsvRow(ctx.out(), {o, "unsettled", why, ""});
    for (const auto& [o, why] : errors) CsvRow(ctx.out(), {o, "not read", "", why});
    return bad ? kExitFailure : kExitOk;
  }
  if (ctx.Json()) {
    json::array ms, us, es;
    for (const Row& m : mismatches)
      ms.push_back(json::object{
          {"order_id", m.order}, {"what", m.what}, {"payorch", m.payorch}, {"payex", m.payex}});
    for (const auto& [o, why] : unsettled)
      us.push_back(json::object{{"order_id", o}, {"why", why}});
    for (const auto& [o, why] : errors) es.push_back(json::object{{"order_id", o}, {"error", why}});
    json::array ur;
    for (const auto& u : unread) ur.push_back(json::value(u));
    PrintJson(ctx.out(), json::object{{"payments", orders.size()},
                                      {"compared", compared},
                                      {"mismatched", mismatched},
                                      {"mismatches", std::move(ms)},
                                      {"unsettled", std::move(us)},
                                      {"errors", std::move(es)},
                                      {"unread_partitions", std::move(ur)}});
    return bad ? kExitFailure : kExitOk;
  }
  if (!mismatches.empty()) {
    Table t({"ORDER", "WHAT", "PAYORCH", "PAYEX"});
    for (const Row& m : mismatches) t.Add({m.order, m.what, m.payorch, m.payex});
    t.Print(ctx.out());
  }
  for (const auto& [o, why] : unsettled)
    ctx.out() << "unsettled " << o << ": " << why << " (run reconcile again later)\n";
  for (const auto& [o, why] : errors) ctx.out() << "not read " << o << ": " << why << "\n";
  ctx.out() << orders.size() << (orders.size() == 1 ? " payment: " : " payments: ") << compared
            << " compared, " << mismatched << " with mismatches, " << unsettled.size()
            << " unsettled, " << errors.size() << " not read\n";
  return bad ? kExitFailure : kExitOk;
}

int PaymentExport(Context& ctx, const Args& args) {
  if (!args.positional.empty())
    throw UsageError("unexpected argument '" + args.positional[0] + "'");
  const auto since = args.Get("--since");
  if (!since) throw UsageError("give --since DURATION (payments changed in that window)");
  const domain::Time from = ctx.Now() - ParseDurationArg("--since", *since);
  store::PaymentFilter filter;
  filter.updated_since = from;
  filter.limit = 10'000'000;
  std::vector<std::vector<std::string>> rows;
  for (uint32_t part = 0; part < ctx.Partitions(); ++part) {
    store::Store store = ctx.OpenStore(/*write=*/false, part);
    for (const store::PaymentSummary& s : store.ListPayments(filter)) {
      const auto payment = store.LoadPayment(s.order_id);
      if (!payment) continue;
      // When each operation's last call finished (the operations rows).
      std::map<uint32_t, domain::Time> finished;
      for (const store::OperationRow& op : store.Operations(s.order_id))
        if (op.finished_at) finished[op.op_id] = *op.finished_at;
      for (const domain::Op& op : payment->ops) {
        if (op.kind != domain::OpKind::kCapture && op.kind != domain::OpKind::kCancel &&
            op.kind != domain::OpKind::kReverse && op.kind != domain::OpKind::kAuthorize)
          continue;
        const int64_t amount =
            op.kind == domain::OpKind::kAuthorize ? payment->balance.authorized : op.amount;
        auto at = finished.find(op.id);
        rows.push_back(
            {payment->order_id, payment->payment_id, domain::OpKindName(op.kind), op.ref_id,
             domain::OpStatusName(op.status), std::to_string(amount), std::to_string(op.vat_amount),
             op.payee_reference,
             op.kind == domain::OpKind::kAuthorize ? payment->authorization_tx : op.transaction_id,
             at == finished.end() ? "" : FormatTime(at->second)});
      }
    }
  }
  const std::vector<std::string> header = {
      "order_id", "payment_id", "operation",       "ref",         "status",
      "amount",   "vat_amount", "payee_reference", "transaction", "finished_at"};
  if (ctx.Json()) {
    json::array a;
    for (const auto& r : rows) {
      json::object o;
      for (size_t i = 0; i < header.size(); ++i) o[header[i]] = r[i];
      a.push_back(std::move(o));
    }
    PrintJson(ctx.out(), json::object{{"operations", std::move(a)}});
  } else if (ctx.Csv()) {
    CsvRow(ctx.out(), header);
    for (const auto& r : rows) CsvRow(ctx.out(), r);
  } else {
    Table t({"ORDER", "PAYMENT", "OPERATION", "REF", "STATUS", "AMOUNT", "VAT", "PAYEE REFERENCE",
             "TRANSACTION", "FINISHED"});
    for (const auto& r : rows) t.Add(r);
    t.Print(ctx.out());
    ctx.out() << rows.size() << " money operations\n";
  }
  return kExitOk;
}

}  // namespace payorch::ctl
