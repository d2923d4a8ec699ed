// Liberal parsing (api §2.5): unknown fields are ignored, names of states, types
// and rels compare case-insensitively, numbers may arrive as integers, doubles or
// strings, list items may be flat or wrapped in {id, transaction}, and the MSISDN
// may be spelled msisdn or mobileNumber. Missing amounts read as 0.
#include "payex/mapping.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <mutex>
#include <random>

#include <boost/json.hpp>
#include "domain/safe_text.hpp"

namespace payorch::payex {
namespace json = boost::json;
using domain::PaymentState;
using domain::Problem;
using domain::Transaction;
using domain::TxState;
using domain::TxType;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool EqualNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Case-insensitive member lookup for names the sources spell differently
// (payeeInfo / payeeinfo).
const json::value* FindNoCase(const json::object& o, std::string_view key) {
  if (const json::value* v = o.if_contains(key)) return v;
  for (const auto& kv : o)
    if (EqualNoCase(kv.key(), key)) return &kv.value();
  return nullptr;
}

const json::object* FindObject(const json::object& o, std::string_view key) {
  const json::value* v = FindNoCase(o, key);
  return v ? v->if_object() : nullptr;
}

std::string GetString(const json::object& o, std::string_view key) {
  const json::value* v = FindNoCase(o, key);
  if (!v) return {};
  if (const json::string* s = v->if_string()) return std::string(*s);
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  return {};
}

// int64 from an integer, an integral double or a decimal string; nullopt otherwise.
std::optional<int64_t> AsInt64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return std::nullopt;
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    double d = v.get_double();
    if (d != d || d < -9.2e18 || d > 9.2e18 || d != static_cast<double>(static_cast<int64_t>(d)))
      return std::nullopt;
    return static_cast<int64_t>(d);
  }
  if (const json::string* s = v.if_string()) {
    int64_t out = 0;
    auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
    if (ec == std::errc() && ptr == s->data() + s->size()) return out;
  }
  return std::nullopt;
}

int64_t GetInt64(const json::object& o, std::string_view key) {
  const json::value* v = FindNoCase(o, key);
  if (!v) return 0;
  return AsInt64(*v).value_or(0);
}

// Room for a parsed PayEx answer (a few KiB) and the parser's own stack without a
// heap allocation per value: the mapping reads what it needs and drops the whole,
// so a monotonic arena on the caller's stack serves (it takes the heap only beyond).
struct JsonArena {
  unsigned char values[8192];
  unsigned char parser[2048];
  json::monotonic_resource resource{values, sizeof values};
};

std::optional<json::value> ParseJson(std::string_view body, std::string& error,
                                     JsonArena& arena) {
  boost::system::error_code ec;
  json::parser p(json::storage_ptr(), json::parse_options(), arena.parser, sizeof arena.parser);
  p.reset(json::storage_ptr(&arena.resource));
  p.write(body.data(), body.size(), ec);
  if (ec) {
    error = "invalid JSON: " + ec.message();
    return std::nullopt;
  }
  return p.release();
}

// What PayEx says of a failure reaches logs, events and the store: masked and
// bounded (domain::SafeDetail), and at most kMaxProblems entries of `problems`
// (far more than PayEx sends: the state machine looks through them for the field
// a refusal names).
constexpr size_t kMaxProblems = 100;
constexpr size_t kMaxProblemName = 100;
constexpr size_t kMaxProblemType = 500;

Problem ProblemFromObject(const json::object& o) {
  Problem p;
  p.type = domain::SafeDetail(GetString(o, "type"), kMaxProblemType);
  p.title = domain::SafeDetail(GetString(o, "title"));
  p.detail = domain::SafeDetail(GetString(o, "detail"));
  const int64_t status = GetInt64(o, "status");
  p.status = status >= 100 && status <= 599 ? static_cast<int>(status) : 0;
  if (const json::value* list = FindNoCase(o, "problems"))
    if (const json::array* a = list->if_array())
      for (const json::value& item : *a)
        if (const json::object* io = item.if_object(); io && p.problems.size() < kMaxProblems)
          p.problems.emplace_back(domain::SafeDetail(GetString(*io, "name"), kMaxProblemName),
                                  domain::SafeDetail(GetString(*io, "description")));
  return p;
}

Transaction TransactionFromObject(const json::object& item, TxType fallback) {
  // Wrapped items ({id, transaction:{...}}) and flat transactions alike (§6.5).
  const json::object* t = &item;
  if (const json::object* inner = FindObject(item, "transaction")) t = inner;
  Transaction tx;
  tx.id = GetString(*t, "id");
  if (tx.id.empty()) tx.id = GetString(item, "id");
  tx.type = ParseTxType(GetString(*t, "type"));
  if (tx.type == TxType::kOther) tx.type = fallback;
  tx.state = ParseTxState(GetString(*t, "state"));
  tx.number = GetInt64(*t, "number");
  tx.amount = GetInt64(*t, "amount");
  tx.vat_amount = GetInt64(*t, "vatAmount");
  tx.payee_reference = GetString(*t, "payeeReference");
  if (const json::object* pr = FindObject(*t, "problem")) {
    tx.problem = ProblemFromObject(*pr);
  } else if (tx.state == TxState::kFailed) {
    std::string reason = GetString(*t, "failedReason");
    if (!reason.empty()) tx.problem = Problem{"", domain::SafeDetail(reason), "", 0, {}};
  }
  return tx;
}

struct ListKind {
  const char* member;  // payment member / list resource name
  const char* list;    // the array inside it
  const char* single;  // single-item wrapper
  TxType type;
};
constexpr ListKind kLists[] = {
    {"authorizations", "authorizationList", "authorization", TxType::kAuthorization},
    {"captures", "captureList", "capture", TxType::kCapture},
    {"cancellations", "cancellationList", "cancellation", TxType::kCancellation},
    {"reversals", "reversalList", "reversal", TxType::kReversal},
    {"transactions", "transactionList", "transaction", TxType::kOther},
};

// Normalized sort key of an ISO 8601 timestamp with 0..7 fractional digits.
std::string TimeKey(std::string_view created) {
  std::string s(created);
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) s.pop_back();
  size_t dot = s.find('.');
  std::string frac;
  if (dot != std::string::npos) {
    frac = s.substr(dot + 1);
    s.resize(dot);
  }
  frac.resize(9, '0');
  return s + "." + frac;
}

// Collects the transactions of one list member (object with a list, or a bare array).
void CollectList(const json::value& member, const ListKind& kind,
                 std::vector<std::pair<std::string, Transaction>>& out) {
  const json::array* items = member.if_array();
  if (!items)
    if (const json::object* o = member.if_object())
      if (const json::value* l = FindNoCase(*o, kind.list)) items = l->if_array();
  if (!items) return;
  for (const json::value& item : *items) {
    const json::object* io = item.if_object();
    if (!io) continue;
    const json::object* t = io;
    if (const json::object* inner = FindObject(*io, "transaction")) t = inner;
    out.emplace_back(TimeKey(GetString(*t, "created")), TransactionFromObject(*io, kind.type));
  }
}

// Merges the typed lists and /transactions (dedupe by id, typed lists win),
// ordered oldest first so the last of a type is the latest (the state machine
// relies on it).
std::vector<Transaction> MergeTransactions(const json::object& holder) {
  std::vector<std::pair<std::string, Transaction>> all;
  for (const ListKind& kind : kLists)
    if (const json::value* member = FindNoCase(holder, kind.member))
      CollectList(*member, kind, all);
  std::vector<std::pair<std::string, Transaction>> unique;
  for (auto& entry : all) {
    auto same = std::find_if(unique.begin(), unique.end(), [&](const auto& u) {
      return !entry.second.id.empty() && u.second.id == entry.second.id;
    });
    if (same == unique.end()) {
      unique.push_back(std::move(entry));
    } else if (same->second.type == TxType::kOther) {
      same->second.type = entry.second.type;
    }
  }
  const std::string no_time = "." + std::string(9, '0');
  bool all_timed = true, all_numbered = true;
  for (const auto& u : unique) {
    if (u.first == no_time) all_timed = false;
    if (u.second.number == 0) all_numbered = false;
  }
  if (all_timed) {
    std::stable_sort(unique.begin(), unique.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.number < b.second.number;
    });
  } else if (all_numbered) {
    std::stable_sort(unique.begin(), unique.end(), [](const auto& a, const auto& b) {
      return a.second.number < b.second.number;
    });
  }
  std::vector<Transaction> out;
  out.reserve(unique.size());
  for (auto& u : unique) out.push_back(std::move(u.second));
  return out;
}

std::vector<Operation> OperationsFrom(const json::value* v) {
  std::vector<Operation> ops;
  if (!v) return ops;
  const json::array* a = v->if_array();
  if (!a) return ops;
  for (const json::value& item : *a) {
    const json::object* o = item.if_object();
    if (!o) continue;
    Operation op;
    op.rel = GetString(*o, "rel");
    op.method = GetString(*o, "method");
    op.href = GetString(*o, "href");
    op.content_type = GetString(*o, "contentType");
    if (!op.rel.empty()) ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace

// ---- parsing ---------------------------------------------------------------------

PaymentState ParsePaymentState(std::string_view s) {
  std::string l = Lower(s);
  if (l == "ready") return PaymentState::kReady;
  if (l == "pending") return PaymentState::kPending;
  if (l == "failed") return PaymentState::kFailed;
  if (l == "aborted") return PaymentState::kAborted;
  return PaymentState::kUnknown;
}

TxState ParseTxState(std::string_view s) {
  std::string l = Lower(s);
  if (l == "initialized" || l == "initialised") return TxState::kInitialized;
  if (l == "awaitingactivity") return TxState::kAwaitingActivity;
  if (l == "completed") return TxState::kCompleted;
  if (l == "failed") return TxState::kFailed;
  return TxState::kUnknown;
}

TxType ParseTxType(std::string_view s) {
  std::string l = Lower(s);
  if (l == "authorization") return TxType::kAuthorization;
  if (l == "capture") return TxType::kCapture;
  if (l == "cancellation") return TxType::kCancellation;
  if (l == "reversal") return TxType::kReversal;
  return TxType::kOther;
}

Parsed<PaymentResource> ParsePaymentResource(std::string_view body) {
  Parsed<PaymentResource> r;
  JsonArena arena;
  auto v = ParseJson(body, r.error, arena);
  if (!v) return r;
  const json::object* root = v->if_object();
  if (!root) {
    r.error = "payment resource is not a JSON object";
    return r;
  }
  const json::object* payment = FindObject(*root, "payment");
  if (!payment) {
    r.error = "no payment object in the answer";
    return r;
  }
  PaymentResource res;
  domain::PaymentSnapshot& s = res.snapshot;
  s.payment_id = GetString(*payment, "id");
  if (s.payment_id.empty()) {
    r.error = "payment.id missing";
    return r;
  }
  s.state = ParsePaymentState(GetString(*payment, "state"));
  s.amount = GetInt64(*payment, "amount");
  s.remaining_capture = GetInt64(*payment, "remainingCaptureAmount");
  s.remaining_cancellation = GetInt64(*payment, "remainingCancellationAmount");
  s.remaining_reversal = GetInt64(*payment, "remainingReversalAmount");
  res.number = GetInt64(*payment, "number");
  s.transactions = MergeTransactions(*payment);
  res.operations = OperationsFrom(FindNoCase(*root, "operations"));
  if (res.operations.empty()) res.operations = OperationsFrom(FindNoCase(*payment, "operations"));
  s.can_authorize = FindOperation(res.operations, {kAuthorizationRels[0], kAuthorizationRels[1]});
  s.can_abort = FindOperation(res.operations, {"update-payment-abort"});
  r.value = std::move(res);
  return r;
}

Parsed<Transaction> ParseTransactionResource(std::string_view body) {
  Parsed<Transaction> r;
  JsonArena arena;
  auto v = ParseJson(body, r.error, arena);
  if (!v) return r;
  const json::object* root = v->if_object();
  if (!root) {
    r.error = "transaction resource is not a JSON object";
    return r;
  }
  for (const ListKind& kind : kLists) {
    const json::object* o = FindObject(*root, kind.single);
    if (!o) continue;
    Transaction tx = TransactionFromObject(*o, kind.type);
    if (tx.id.empty()) {
      r.error = std::string(kind.single) + " without id";
      return r;
    }
    r.value = std::move(tx);
    return r;
  }
  r.error = "no transaction in the answer";
  return r;
}

Parsed<std::vector<Transaction>> ParseTransactionList(std::string_view body) {
  Parsed<std::vector<Transaction>> r;
  JsonArena arena;
  auto v = ParseJson(body, r.error, arena);
  if (!v) return r;
  const json::object* root = v->if_object();
  if (!root) {
    r.error = "list resource is not a JSON object";
    return r;
  }
  bool any = false;
  for (const ListKind& kind : kLists)
    if (FindNoCase(*root, kind.member)) any = true;
  if (!any) {
    r.error = "no transaction list in the answer";
    return r;
  }
  r.value = MergeTransactions(*root);
  return r;
}

Parsed<Problem> ParseProblem(std::string_view body) {
  Parsed<Problem> r;
  JsonArena arena;
  auto v = ParseJson(body, r.error, arena);
  if (!v) return r;
  const json::object* root = v->if_object();
  if (!root) {
    r.error = "problem is not a JSON object";
    return r;
  }
  if (const json::object* inner = FindObject(*root, "problem")) root = inner;
  Problem p = ProblemFromObject(*root);
  if (p.type.empty() && p.title.empty() && p.detail.empty()) {
    r.error = "no problem fields";
    return r;
  }
  r.value = std::move(p);
  return r;
}

const Operation* FindOperation(const std::vector<Operation>& ops,
                               const std::vector<std::string_view>& rels) {
  for (std::string_view rel : rels)
    for (const Operation& op : ops)
      if (EqualNoCase(op.rel, rel)) return &op;
  return nullptr;
}

std::string OperationRels(const std::vector<Operation>& ops) {
  std::string out;
  for (const Operation& op : ops) {
    if (!out.empty()) out += ",";
    out += op.rel;
  }
  return out.empty() ? "none" : out;
}

// ---- request bodies ----------------------------------------------------------------

std::string CallbackUrlFor(const ClientOptions& options, const std::string& order_id) {
  if (options.callback_url) return options.callback_url(order_id);
  if (options.callback_url_base.empty()) return {};
  std::string url = options.callback_url_base;
  if (url.empty() || url.back() != '/') url += '/';
  url += boost::urls::encode(order_id, boost::urls::unreserved_chars);
  if (options.callback_token) url += "?token=" + boost::urls::encode(options.callback_token(order_id),
                                                             boost::urls::unreserved_chars);
  return url;
}

std::string BuildCreateBody(const domain::PayexCall& call, const ClientOptions& options,
                            const std::string& callback_url) {
  domain::PurchaseRequested purchase = call.purchase.value_or(domain::PurchaseRequested{});
  json::object payment;
  payment["operation"] = "Purchase";
  payment["intent"] = "Authorization";
  payment["currency"] = purchase.currency.empty() ? "NOK" : purchase.currency;
  json::object price;
  price["type"] = "Vipps";
  price["amount"] = call.purchase ? purchase.amount : call.amount;
  price["vatAmount"] = call.purchase ? purchase.vat_amount : call.vat_amount;
  payment["prices"] = json::array{std::move(price)};
  payment["description"] = !purchase.description.empty() ? purchase.description : call.description;
  if (!purchase.payer_reference.empty()) {
    if (options.payer_reference_in_payer) {
      payment["payer"] = json::object{{"payerReference", purchase.payer_reference}};
    } else {
      payment["payerReference"] = purchase.payer_reference;
    }
  }
  payment["userAgent"] =
      purchase.user_agent.empty() ? options.default_payer_user_agent : purchase.user_agent;
  payment["language"] = purchase.language.empty() ? options.default_language : purchase.language;
  json::object urls;
  if (!options.host_urls.empty()) {
    json::array hosts;
    for (const auto& h : options.host_urls) hosts.emplace_back(h);
    urls["hostUrls"] = std::move(hosts);
  }
  urls["completeUrl"] = options.complete_url;
  if (!options.cancel_url.empty()) urls["cancelUrl"] = options.cancel_url;
  if (!callback_url.empty()) urls["callbackUrl"] = callback_url;
  payment["urls"] = std::move(urls);
  json::object payee;
  payee["payeeId"] = options.payee_id;
  payee["payeeReference"] = call.payee_reference;
  if (!options.payee_name.empty()) payee["payeeName"] = options.payee_name;
  if (!options.product_category.empty()) payee["productCategory"] = options.product_category;
  if (!call.order_id.empty() && call.order_id.size() <= 50) payee["orderReference"] = call.order_id;
  if (!options.subsite.empty()) payee["subsite"] = options.subsite;
  payment["payeeInfo"] = std::move(payee);
  if (!purchase.metadata.empty()) {
    json::object meta;
    for (const auto& [k, val] : purchase.metadata) meta[k] = val;
    payment["metadata"] = std::move(meta);
  }
  return json::serialize(json::object{{"payment", std::move(payment)}});
}

std::string BuildAuthorizeBody(std::string_view msisdn, MsisdnField field) {
  json::object tx;
  if (field != MsisdnField::kMobileNumber) tx["msisdn"] = msisdn;
  if (field != MsisdnField::kMsisdn) tx["mobileNumber"] = msisdn;
  return json::serialize(json::object{{"transaction", std::move(tx)}});
}

std::string BuildCaptureBody(const domain::PayexCall& call) {
  json::object tx;
  tx["amount"] = call.amount;
  tx["vatAmount"] = call.vat_amount;
  tx["description"] = call.description;
  tx["payeeReference"] = call.payee_reference;
  return json::serialize(json::object{{"transaction", std::move(tx)}});
}

std::string BuildCancelBody(const domain::PayexCall& call) {
  json::object tx;
  tx["description"] = call.description;
  tx["payeeReference"] = call.payee_reference;
  return json::serialize(json::object{{"transaction", std::move(tx)}});
}

std::string BuildAbortBody(std::string_view abort_reason) {
  json::object p;
  p["operation"] = "Abort";
  p["abortReason"] = abort_reason.empty() ? std::string_view("CancelledByConsumer") : abort_reason;
  return json::serialize(json::object{{"payment", std::move(p)}});
}

// ---- classification -------------------------------------------------------------

bool IsJsonContentType(std::string_view ct) {
  std::string l = Lower(ct.substr(0, ct.find(';')));
  while (!l.empty() && (l.back() == ' ' || l.back() == '\t')) l.pop_back();
  while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.erase(l.begin());
  return l == "application/json" || l == "application/problem+json" || l == "text/json" ||
         (l.size() > 5 && l.compare(l.size() - 5, 5, "+json") == 0);
}

namespace {

Problem Local(const char* type, std::string title, std::string detail, int status = 0) {
  return Problem{type, std::move(title), domain::SafeDetail(detail), status, {}};
}

// The problem PayEx sent, or one that names the status when the body is no problem.
Problem ProblemOf(const Exchange& e) {
  if (IsJsonContentType(e.content_type) || e.content_type.empty()) {
    auto p = ParseProblem(e.body);
    if (p) {
      if (p.value->status == 0) p.value->status = e.status;
      return *p.value;
    }
  }
  return Local(problem_type::kHttpStatus, "HTTP " + std::to_string(e.status),
               "PayEx answered " + std::to_string(e.status) + " without a problem document",
               e.status);
}

}  // namespace

Classified Classify(const Exchange& e) {
  using domain::ResultClass;
  const ResultClass doubt = e.effectful ? ResultClass::kInDoubt : ResultClass::kTransient;
  switch (e.transport) {
    case Transport::kNotSent:
      return {ResultClass::kTransient, Local(problem_type::kConnect, "PayEx not reached", e.error)};
    case Transport::kTimeoutAfterSend:
      return {doubt, Local(problem_type::kTimeout, "no answer from PayEx in time", e.error)};
    case Transport::kLostAfterSend:
      return {doubt,
              Local(problem_type::kConnectionLost, "connection lost after sending", e.error)};
    case Transport::kBadResponse:
      return {doubt, Local(problem_type::kBadResponse, "unreadable answer from PayEx", e.error)};
    case Transport::kAnswered: break;
  }
  if (e.status >= 200 && e.status < 300) return {ResultClass::kSuccess, std::nullopt};
  Problem p = ProblemOf(e);
  if (e.status == 429 || e.status == 408) return {ResultClass::kTransient, std::move(p)};
  if (e.status >= 500) return {doubt, std::move(p)};
  // notfound "may be available in the future" (api §10.2): a read retries.
  if (e.status == 404 && !e.effectful) return {ResultClass::kTransient, std::move(p)};
  return {ResultClass::kDefiniteFailure, std::move(p)};
}

Classified ClassifyUnusableBody(const Exchange& e, const std::string& why) {
  return {e.effectful ? domain::ResultClass::kInDoubt : domain::ResultClass::kTransient,
          Local(problem_type::kBadResponse, "unusable answer from PayEx", why, e.status)};
}

std::string NewSessionId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> lock(mu);
    a = rng();
    b = rng();
  }
  a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    uint64_t word = i < 8 ? a : b;
    int shift = 56 - 8 * (i % 8);
    unsigned byte = static_cast<unsigned>((word >> shift) & 0xFF);
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 15]);
  }
  return out;
}

}  // namespace payorch::payex
