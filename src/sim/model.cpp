// The simulator's PayEx. Where the reference leaves a behaviour open (api §16) the
// choice is a knob of SimConfig; where it documents one, the model follows it:
// amounts in minor units as int64, uniform 200 answers, problems as
// application/problem+json with https://api.payex.com/psp/errordetail/... types,
// operations offered only when their precondition holds (§13.3), remaining amounts
// computed from the Completed transactions after every change.
#include "sim/model.hpp"

#include <algorithm>
#include <ctime>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include <boost/json.hpp>

namespace payorch::sim {
namespace json = boost::json;

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

std::string MaskNumber(std::string_view msisdn) {
  if (msisdn.size() < 4) return "****";
  std::string out;
  if (msisdn.rfind("+47", 0) == 0) out = "+47";
  out += "****";
  out += msisdn.substr(msisdn.size() - 4);
  return out;
}

namespace {

constexpr const char* kErrorBase = "https://api.payex.com/psp/errordetail/";
constexpr const char* kPaymentsPath = "/psp/vipps/payments";

enum class TxKind { kAuthorization, kCapture, kCancellation, kReversal };

struct KindNames {
  const char* type;    // "Authorization"
  const char* path;    // "authorizations"
  const char* single;  // "authorization"
  const char* list;    // "authorizationList"
};
constexpr KindNames kKinds[] = {
    {"Authorization", "authorizations", "authorization", "authorizationList"},
    {"Capture", "captures", "capture", "captureList"},
    {"Cancellation", "cancellations", "cancellation", "cancellationList"},
    {"Reversal", "reversals", "reversal", "reversalList"},
};
const KindNames& Names(TxKind k) {
  return kKinds[static_cast<int>(k)];
}

struct Problem {
  int status = 400;
  std::string type;  // full URI
  std::string title;
  std::string detail;
  std::vector<std::pair<std::string, std::string>> problems;
};

struct Tx {
  std::string guid;
  TxKind kind = TxKind::kAuthorization;
  std::string state;  // Initialized | AwaitingActivity | Completed | Failed
  int64_t number = 0;
  int64_t amount = 0;
  int64_t vat = 0;
  std::string description;
  std::string payee_reference;
  int64_t created = 0;
  int64_t updated = 0;
  std::optional<Problem> problem;
  std::string msisdn;
  std::string vipps_id;
  uint64_t epoch = 0;  // bumps when forced: stale payer decisions are ignored
};

struct Payment {
  std::string guid;
  int64_t number = 0;
  int64_t created = 0;
  int64_t updated = 0;
  std::string final_state;  // "" | "Aborted" | "Failed"
  std::string currency;
  int64_t price_amount = 0;
  int64_t price_vat = 0;
  std::string price_type = "Vipps";
  std::string description;
  std::string payer_reference;
  std::string user_agent;
  std::string language;
  std::string initiating_ua;
  json::object urls;
  json::object payee;
  json::object metadata;
  std::string payee_reference;
  std::string callback_url;
  std::string abort_reason;
  std::string page_token;
  std::vector<Tx> txs;
  int failed_auths = 0;
  int failed_captures_in_row = 0;
  int failed_reversals_in_row = 0;

  std::string Id() const { return std::string(kPaymentsPath) + "/" + guid; }
  Tx* FindTx(std::string_view g) {
    for (auto& t : txs)
      if (t.guid == g) return &t;
    return nullptr;
  }
};

struct RefUse {
  std::string payment;
  std::string tx;  // empty: the payment's creation
  std::optional<TxKind> kind;
};

struct Event {
  enum Kind { kPayer, kCallbackAttempt } kind = kPayer;
  std::string payment;
  std::string tx;
  uint64_t epoch = 0;
  std::string outcome;  // payer: Completed | Failed
  std::string problem;  // payer failure type suffix
  std::string detail;
  uint64_t callback = 0;
};

struct Attempt {
  int64_t at = 0;
  int status = 0;
  std::string error;
};

struct Callback {
  uint64_t id = 0;
  std::string payment;
  std::string tx;
  std::string url;
  std::string body;
  int64_t created = 0;  // the retry offsets count from here
  std::vector<Attempt> attempts;
  bool delivered = false;
  bool lost = false;
  bool duplicate = false;
  bool delayed = false;
  bool reordered = false;
  bool in_flight = false;
  bool gave_up = false;
};

struct RequestLog {
  int64_t at = 0;
  std::string method, target, session_id, user_agent, accept, content_type, endpoint;
  bool authorization_ok = false;
  int status = 0;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string IsoTime(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%07lldZ", buf, static_cast<long long>((ms % 1000) * 10000));
  return out;
}

int Utf8Length(std::string_view s) {
  int n = 0;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return -1;
    i += len;
    ++n;
  }
  return n;
}

bool IsJsonType(std::string_view ct) {
  std::string l = Lower(ct.substr(0, ct.find(';')));
  while (!l.empty() && l.back() == ' ') l.pop_back();
  return l == "application/json" || l == "application/problem+json";
}

// Strict integer: an int64 (or uint64 within range) JSON number, not a double.
std::optional<int64_t> IntOf(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(v->get_uint64());
  return std::nullopt;
}

const json::string* StrOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_string() : nullptr;
}

std::string StrOr(const json::object& o, std::string_view key) {
  const json::string* s = StrOf(o, key);
  return s ? std::string(*s) : std::string();
}

const json::object* ObjectOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

bool IsHttpsUrl(std::string_view s) {
  return Lower(s).rfind("https://", 0) == 0 && s.size() > 8;
}
bool IsHttpUrl(std::string_view s) {
  return (Lower(s).rfind("http://", 0) == 0 && s.size() > 7) || IsHttpsUrl(s);
}

bool ValidMsisdn(std::string_view m) {
  if (m.size() != 11 || m.substr(0, 3) != "+47") return false;
  for (char c : m.substr(3))
    if (c < '0' || c > '9') return false;
  return true;
}

int AcquirerStatus(std::string_view t) {
  std::string k = Lower(t);
  k.erase(std::remove(k.begin(), k.end(), '_'), k.end());
  if (k == "cardblacklisted" || k == "vippsdeclined") return 400;
  if (k == "badrequest" || k == "internalservererror" || k == "unknownerror") return 500;
  if (k == "acquirergatewayerror" || k == "badgateway") return 502;
  if (k == "acquirergatewaytimeout") return 504;
  return 403;
}

const char* MagicMessage(int last2) {
  switch (last2) {
    case 91: return "Vipps internal error";
    case 92: return "Request validation error on a particular request parameter";
    case 93: return "Transaction Id already exists in Vipps";
    case 94: return "PSPID not enrolled in Vipps";
    case 95: return "Invalid payment model type";
    case 96: return "User's Vipps app version not supported";
    case 97: return "User not registered with Vipps";
    case 98: return "Merchant not available or active";
  }
  return "Vipps error";
}

// The non-empty '/'-separated segments of `path`.
std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> segments;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t end = path.find('/', pos);
    segments.emplace_back(
        path.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    if (end == std::string_view::npos) break;
    pos = end;
  }
  return segments;
}

struct Route {
  std::string endpoint;               // fault endpoint name, "" for admin/unknown
  std::vector<std::string> segments;  // path segments after /psp/vipps/payments
  bool psp = false;
  bool admin = false;
  std::string path;
  std::string query;
};

Route Parse(const HttpRequest& r) {
  Route out;
  size_t q = r.target.find('?');
  out.path = r.target.substr(0, q);
  if (q != std::string::npos) out.query = r.target.substr(q + 1);
  while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  std::string lp = Lower(out.path);
  if (lp.rfind("/admin", 0) == 0) {
    out.admin = true;
    return out;
  }
  if (lp.rfind(kPaymentsPath, 0) != 0 ||
      (lp.size() > std::strlen(kPaymentsPath) && lp[std::strlen(kPaymentsPath)] != '/'))
    return out;
  out.psp = true;
  out.segments = SplitPath(std::string_view(out.path).substr(std::strlen(kPaymentsPath)));
  const auto& s = out.segments;
  if (r.method == "POST" && s.empty()) {
    out.endpoint = "create";
  } else if (r.method == "GET") {
    out.endpoint = "get";
  } else if (r.method == "PATCH" && s.size() == 1) {
    out.endpoint = "abort";
  } else if (r.method == "POST" && s.size() == 2) {
    std::string sub = Lower(s[1]);
    out.endpoint = sub == "authorizations"  ? "authorize"
                   : sub == "captures"      ? "capture"
                   : sub == "cancellations" ? "cancel"
                   : sub == "reversals"     ? "reverse"
                                            : "";
  }
  return out;
}

std::set<std::string> ExpandOf(std::string_view query) {
  std::set<std::string> out;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string_view part =
        query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = part.find('=');
    std::string key = Lower(part.substr(0, eq));
    if (eq != std::string::npos && (key == "$expand" || key == "%24expand")) {
      std::string v(part.substr(eq + 1));
      for (size_t i = 0; (i = v.find("%2C", i)) != std::string::npos;) v.replace(i, 3, ",");
      for (size_t i = 0; (i = v.find("%2c", i)) != std::string::npos;) v.replace(i, 3, ",");
      size_t p = 0;
      while (p <= v.size()) {
        size_t c = v.find(',', p);
        std::string name = Lower(v.substr(p, c == std::string::npos ? std::string::npos : c - p));
        name.erase(std::remove(name.begin(), name.end(), ' '), name.end());
        if (!name.empty()) out.insert(name);
        if (c == std::string::npos) break;
        p = c + 1;
      }
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

}  // namespace

struct Model::State {
  SimConfig config;
  SimConfig start_config;
  std::string api_base;
  std::string ecom_base;
  std::mt19937_64 rng;
  int64_t next_number = 72100000000;
  std::map<std::string, Payment> payments;  // by guid
  std::vector<std::string> order;           // creation order
  std::unordered_map<std::string, std::vector<RefUse>> refs;
  std::multimap<int64_t, Event> events;
  std::map<uint64_t, Callback> callbacks;
  uint64_t next_callback = 1;
  std::map<std::string, uint64_t> held;  // payment -> reordered callback waiting
  std::deque<RequestLog> requests;
  std::map<std::string, uint64_t> counts;
  int64_t now = 0;

  // ---- small helpers ------------------------------------------------------------

  double Roll() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

  std::string NewGuid() {
    uint64_t a = rng(), b = rng();
    a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x4000ull;
    b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                  static_cast<unsigned>(b >> 48),
                  static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFull));
    return buf;
  }

  std::string PaymentUrl(const Payment& p) const { return api_base + p.Id(); }

  static HttpResponse JsonResponse(int status, const json::value& v) {
    HttpResponse r;
    r.status = status;
    r.body = json::serialize(v);
    return r;
  }

  HttpResponse ProblemResponse(const Problem& p) {
    json::object o;
    o["type"] = p.type;
    o["title"] = p.title;
    o["status"] = p.status;
    o["detail"] = p.detail;
    o["instance"] = NewGuid();
    if (p.type.find("inputerror") != std::string::npos) o["action"] = "RetryNewData";
    json::array list;
    for (const auto& [n, d] : p.problems)
      list.push_back(json::object{{"name", n}, {"description", d}});
    o["problems"] = std::move(list);
    HttpResponse r;
    r.status = p.status;
    r.content_type = "application/problem+json";
    r.body = json::serialize(o);
    return r;
  }

  static Problem MakeProblem(int status, std::string suffix, std::string title, std::string detail,
                             std::vector<std::pair<std::string, std::string>> problems = {}) {
    return Problem{status, kErrorBase + suffix, std::move(title), std::move(detail),
                   std::move(problems)};
  }
  static Problem InputError(std::vector<std::pair<std::string, std::string>> problems) {
    return MakeProblem(400, "inputerror", "There was an input error",
                       "Please correct the errors and retry the request", std::move(problems));
  }
  static Problem Forbidden(std::string detail) {
    return MakeProblem(403, "forbidden", "Operation not allowed", std::move(detail));
  }
  static Problem NotFound(std::string detail) {
    return MakeProblem(404, "notfound", "Not found", std::move(detail));
  }
  static Problem VippsProblem(std::string_view type, std::string detail) {
    std::string t = Lower(type);
    int status = AcquirerStatus(t);
    return MakeProblem(status, "vipps/" + t,
                       t == "vipps_declined" ? "Declined" : "Operation failed", std::move(detail),
                       {{"ExternalResponse", std::string(type)}});
  }

  Payment* FindPayment(std::string_view id) {
    std::string g(id);
    size_t slash = g.find_last_of('/');
    if (slash != std::string::npos) g = g.substr(slash + 1);
    g = Lower(g);
    auto it = payments.find(g);
    return it == payments.end() ? nullptr : &it->second;
  }

  // ---- derived payment figures -----------------------------------------------------

  static int64_t Sum(const Payment& p, TxKind k) {
    int64_t s = 0;
    for (const Tx& t : p.txs)
      if (t.kind == k && t.state == "Completed") s += t.amount;
    return s;
  }
  static const Tx* CompletedAuth(const Payment& p) {
    for (const Tx& t : p.txs)
      if (t.kind == TxKind::kAuthorization && t.state == "Completed") return &t;
    return nullptr;
  }
  static Tx* AwaitingAuth(Payment& p) {
    for (Tx& t : p.txs)
      if (t.kind == TxKind::kAuthorization && t.state == "AwaitingActivity") return &t;
    return nullptr;
  }
  static bool AnyInitialized(const Payment& p) {
    for (const Tx& t : p.txs)
      if (t.state == "Initialized") return true;
    return false;
  }
  static bool AnyCompleted(const Payment& p) {
    for (const Tx& t : p.txs)
      if (t.state == "Completed") return true;
    return false;
  }
  std::string StateOf(Payment& p) const {
    if (!p.final_state.empty()) return p.final_state;
    if (AnyInitialized(p)) return "Pending";
    if (config.awaiting_state_pending && AwaitingAuth(p)) return "Pending";
    return "Ready";
  }
  static int64_t Authorized(const Payment& p) {
    const Tx* a = CompletedAuth(p);
    return a ? a->amount : 0;
  }
  static int64_t RemainingCapture(const Payment& p) {
    if (!CompletedAuth(p)) return 0;
    return std::max<int64_t>(
        0, Authorized(p) - Sum(p, TxKind::kCapture) - Sum(p, TxKind::kCancellation));
  }
  static int64_t RemainingReversal(const Payment& p) {
    return Sum(p, TxKind::kCapture) - Sum(p, TxKind::kReversal);
  }
  bool CaptureLocked(const Payment& p) const {
    return config.lock_captures && config.lock_after_failures > 0 &&
           p.failed_captures_in_row >= config.lock_after_failures;
  }
  bool ReversalLocked(const Payment& p) const {
    return config.lock_after_failures > 0 &&
           p.failed_reversals_in_row >= config.lock_after_failures;
  }
  bool AttemptsLeft(const Payment& p) const {
    return p.failed_auths < config.max_authorization_attempts;
  }
  bool AuthorizationOffered(Payment& p) const {
    if (!p.final_state.empty() || AnyInitialized(p) || CompletedAuth(p) || AwaitingAuth(p))
      return false;
    return AttemptsLeft(p);
  }

  // ---- rendering ----------------------------------------------------------------------

  json::object Op(std::string rel, std::string method, std::string href, std::string ct) const {
    return json::object{{"method", std::move(method)},
                        {"href", std::move(href)},
                        {"rel", std::move(rel)},
                        {"contentType", std::move(ct)}};
  }

  json::array Operations(Payment& p) const {
    json::array ops;
    std::string state = StateOf(p);
    std::string url = PaymentUrl(p);
    if (state == "Aborted") return ops;
    if (state == "Failed") {
      ops.push_back(Op("failed-payment", "GET", url + "/failed", "application/problem+json"));
      return ops;
    }
    if (AnyInitialized(p)) return ops;  // Pending: nothing until it resolves
    if (!CompletedAuth(p)) {
      if (AuthorizationOffered(p)) {
        if (config.direct_authorization)
          ops.push_back(
              Op(config.authorization_rel, "POST", url + "/authorizations", "application/json"));
        ops.push_back(Op("redirect-authorization", "GET",
                         ecom_base + "/vipps/payments/authorize/" + p.page_token, "text/html"));
        if (p.urls.if_contains("hostUrls"))
          ops.push_back(Op("view-payment", "GET",
                           ecom_base + "/vipps/core/scripts/client/px.vipps.client.js?token=" +
                               p.page_token + "&culture=" + p.language,
                           "application/javascript"));
        ops.push_back(Op("update-payment-abort", "PATCH", url, "application/json"));
      } else if (AwaitingAuth(p) && config.abort_during_awaiting) {
        ops.push_back(Op("update-payment-abort", "PATCH", url, "application/json"));
      }
      return ops;
    }
    if (RemainingCapture(p) > 0 && !CaptureLocked(p))
      ops.push_back(Op("create-capture", "POST", url + "/captures", "application/json"));
    if (RemainingCapture(p) > 0)
      ops.push_back(Op("create-cancellation", "POST", url + "/cancellations", "application/json"));
    if (RemainingReversal(p) > 0 && !ReversalLocked(p))
      ops.push_back(Op("create-reversal", "POST", url + "/reversals", "application/json"));
    ops.push_back(Op("paid-payment", "GET", url + "/paid", "application/json"));
    return ops;
  }

  json::object FlatTx(const Payment& p, const Tx& t) const {
    json::object o;
    o["id"] = p.Id() + "/transactions/" + t.guid;
    o["created"] = IsoTime(t.created);
    o["updated"] = IsoTime(t.updated);
    o["type"] = Names(t.kind).type;
    o["state"] = t.state;
    o["number"] = t.number;
    o["amount"] = t.amount;
    o["vatAmount"] = t.vat;
    o["description"] = t.description;
    o["payeeReference"] = t.payee_reference;
    o["failedReason"] = t.problem ? t.problem->detail : "";
    o["isOperational"] = t.state == "Initialized" || t.state == "AwaitingActivity";
    o["operations"] = json::array{};
    if (t.problem) {
      json::array list;
      for (const auto& [n, d] : t.problem->problems)
        list.push_back(json::object{{"name", n}, {"description", d}});
      o["problem"] = json::object{{"type", t.problem->type},
                                  {"title", t.problem->title},
                                  {"status", t.problem->status},
                                  {"detail", t.problem->detail},
                                  {"problems", std::move(list)}};
    }
    return o;
  }

  void AddMsisdn(json::object& o, const Tx& t) const {
    if (t.kind != TxKind::kAuthorization) return;
    o["vippsTransactionId"] = t.vipps_id;
    if (config.msisdn_field != MsisdnSpelling::kMobileNumber) o["msisdn"] = t.msisdn;
    if (config.msisdn_field != MsisdnSpelling::kMsisdn) o["mobileNumber"] = t.msisdn;
  }

  json::object Item(const Payment& p, const Tx& t, ListShape shape) const {
    if (shape == ListShape::kFlat) {
      json::object o = FlatTx(p, t);
      AddMsisdn(o, t);
      return o;
    }
    json::object o;
    AddMsisdn(o, t);
    o["id"] = p.Id() + "/" + Names(t.kind).path + "/" + t.guid;
    o["transaction"] = FlatTx(p, t);
    return o;
  }

  json::object List(const Payment& p, std::optional<TxKind> kind) const {
    json::object o;
    json::array items;
    if (kind) {
      o["id"] = p.Id() + "/" + Names(*kind).path;
      for (const Tx& t : p.txs)
        if (t.kind == *kind) items.push_back(Item(p, t, config.list_items));
      o[Names(*kind).list] = std::move(items);
    } else {
      o["id"] = p.Id() + "/transactions";
      for (const Tx& t : p.txs) items.push_back(Item(p, t, config.transaction_list_items));
      o["transactionList"] = std::move(items);
    }
    return o;
  }

  json::object SubResource(const Payment& p, const std::string& name) const {
    std::string id = p.Id() + "/" + name;
    if (name == "prices") {
      return json::object{{"id", id},
                          {"priceList", json::array{json::object{{"type", p.price_type},
                                                                 {"amount", p.price_amount},
                                                                 {"vatAmount", p.price_vat}}}}};
    }
    if (name == "payeeInfo" || name == "payeeinfo") {
      json::object o = p.payee;
      o["id"] = p.Id() + "/payeeInfo";
      return o;
    }
    if (name == "urls") {
      json::object o = p.urls;
      o["id"] = id;
      return o;
    }
    if (name == "metadata") {
      json::object o = p.metadata;
      o["id"] = id;
      return o;
    }
    return json::object{{"id", id}};
  }

  json::object PaymentObject(Payment& p, const std::set<std::string>& expand) const {
    json::object o;
    o["id"] = p.Id();
    o["number"] = p.number;
    o["created"] = IsoTime(p.created);
    o["updated"] = IsoTime(p.updated);
    o["instrument"] = "Vipps";
    o["operation"] = "Purchase";
    o["intent"] = "Authorization";
    o["state"] = StateOf(p);
    o["currency"] = p.currency;
    o["amount"] = Authorized(p);
    bool authorized = CompletedAuth(p) != nullptr;
    if (authorized || config.remaining_before_authorization != RemainingBeforeAuth::kOmit) {
      int64_t before =
          config.remaining_before_authorization == RemainingBeforeAuth::kFull ? p.price_amount : 0;
      o["remainingCaptureAmount"] = authorized ? RemainingCapture(p) : before;
      o["remainingCancellationAmount"] = authorized ? RemainingCapture(p) : before;
      o["remainingReversalAmount"] = authorized ? RemainingReversal(p) : 0;
    }
    o["description"] = p.description;
    if (!p.payer_reference.empty()) o["payerReference"] = p.payer_reference;
    o["initiatingSystemUserAgent"] = p.initiating_ua;
    o["userAgent"] = p.user_agent;
    o["language"] = p.language;
    auto link = [&](const char* name) {
      std::string key = Lower(name);
      if (expand.count(key) || (key == "payeeinfo" && expand.count("payeeinfo"))) {
        o[name] = SubResource(p, name);
      } else {
        o[name] = json::object{{"id", p.Id() + "/" + name}};
      }
    };
    link("prices");
    if (expand.count("transactions")) {
      o["transactions"] = List(p, std::nullopt);
    } else {
      o["transactions"] = json::object{{"id", p.Id() + "/transactions"}};
    }
    for (TxKind k :
         {TxKind::kAuthorization, TxKind::kCapture, TxKind::kReversal, TxKind::kCancellation}) {
      const char* name = Names(k).path;
      if (expand.count(name)) {
        o[name] = List(p, k);
      } else {
        o[name] = json::object{{"id", p.Id() + "/" + name}};
      }
    }
    link("urls");
    link("payeeInfo");
    link("payers");
    link("metadata");
    link("settings");
    return o;
  }

  HttpResponse PaymentResponse(Payment& p, const std::set<std::string>& expand) {
    return JsonResponse(
        200, json::object{{"payment", PaymentObject(p, expand)}, {"operations", Operations(p)}});
  }

  HttpResponse TxResponse(Payment& p, const Tx& t) {
    json::object item = Item(p, t, ListShape::kWrapped);
    return JsonResponse(200,
                        json::object{{"payment", p.Id()}, {Names(t.kind).single, std::move(item)}});
  }

  // ---- callbacks --------------------------------------------------------------------------

  void ScheduleCallbackAttempt(uint64_t id, int64_t due) {
    Event e;
    e.kind = Event::kCallbackAttempt;
    e.callback = id;
    events.emplace(due, std::move(e));
  }

  uint64_t NewCallback(const Payment& p, const Tx& t, int64_t due) {
    Callback cb;
    cb.id = next_callback++;
    cb.payment = p.guid;
    cb.tx = t.guid;
    cb.url = p.callback_url;
    cb.created = due;
    cb.body = json::serialize(json::object{
        {"payment", json::object{{"id", p.Id()}, {"number", p.number}}},
        {"transaction", json::object{{"id", p.Id() + "/" + Names(t.kind).path + "/" + t.guid},
                                     {"number", t.number}}}});
    uint64_t id = cb.id;
    callbacks.emplace(id, std::move(cb));
    return id;
  }

  void Notify(const Payment& p, const Tx& t) {
    if (!config.callbacks || p.callback_url.empty()) return;
    int64_t due = now;
    bool lost = config.callback_lost_rate > 0 && Roll() < config.callback_lost_rate;
    bool delayed = config.callback_delay_rate > 0 && Roll() < config.callback_delay_rate;
    bool reorder = config.callback_reorder_rate > 0 && Roll() < config.callback_reorder_rate;
    bool duplicate = config.callback_duplicate_rate > 0 && Roll() < config.callback_duplicate_rate;
    if (delayed) due += config.callback_delay_ms;
    uint64_t id = NewCallback(p, t, due);
    Callback& cb = callbacks[id];
    cb.delayed = delayed;
    if (lost) {
      cb.lost = true;  // PayEx never sends it
    } else if (reorder) {
      cb.reordered = true;  // waits for the payment's next callback (or the delay)
      if (auto h = held.find(p.guid); h != held.end()) ReleaseHeld(h->second, due + 1);
      held[p.guid] = id;
      ScheduleCallbackAttempt(id, due + std::max<int64_t>(config.callback_delay_ms, 1));
    } else {
      ScheduleCallbackAttempt(id, due);
      if (auto h = held.find(p.guid); h != held.end()) {
        ReleaseHeld(h->second, due + 1);  // overtaken: goes right after this one
        held.erase(h);
      }
    }
    if (duplicate && !lost) {
      uint64_t copy = NewCallback(p, t, due + 1);
      callbacks[copy].duplicate = true;
      ScheduleCallbackAttempt(copy, due + 1);
    }
  }

  void ReleaseHeld(uint64_t id, int64_t due) {
    // Move its first attempt earlier; the stale later event finds it already tried.
    Callback& cb = callbacks[id];
    if (!cb.attempts.empty() || cb.in_flight) return;
    for (auto it = events.begin(); it != events.end(); ++it)
      if (it->second.kind == Event::kCallbackAttempt && it->second.callback == id) {
        events.erase(it);
        break;
      }
    cb.created = due;
    ScheduleCallbackAttempt(id, due);
  }

  // ---- the payer ------------------------------------------------------------------------------

  void SchedulePayer(Payment& p, Tx& t, int64_t delay, std::string outcome, std::string problem,
                     std::string detail) {
    Event e;
    e.kind = Event::kPayer;
    e.payment = p.guid;
    e.tx = t.guid;
    e.epoch = t.epoch;
    e.outcome = std::move(outcome);
    e.problem = std::move(problem);
    e.detail = std::move(detail);
    events.emplace(now + std::max<int64_t>(delay, 0), std::move(e));
  }

  // Moves a transaction to a final (or forced) state and applies what follows.
  void Settle(Payment& p, Tx& t, const std::string& state, std::optional<Problem> problem) {
    t.state = state;
    t.updated = now;
    p.updated = now;
    t.problem = state == "Failed" ? std::move(problem) : std::nullopt;
    if (t.kind == TxKind::kAuthorization && state == "Failed") {
      ++p.failed_auths;
      if (!AttemptsLeft(p) && p.final_state.empty() && !CompletedAuth(p)) p.final_state = "Failed";
    }
    if (t.kind == TxKind::kCapture && (state == "Completed" || state == "Failed"))
      p.failed_captures_in_row = state == "Failed" ? p.failed_captures_in_row + 1 : 0;
    if (t.kind == TxKind::kReversal && (state == "Completed" || state == "Failed"))
      p.failed_reversals_in_row = state == "Failed" ? p.failed_reversals_in_row + 1 : 0;
    if (state == "Completed" || state == "Failed") Notify(p, t);
  }

  void RunPayer(const Event& e) {
    Payment* p = FindPayment(e.payment);
    if (!p) return;
    Tx* t = p->FindTx(e.tx);
    if (!t || t->epoch != e.epoch || t->state != "AwaitingActivity") return;
    if (e.outcome == "Completed") {
      Settle(*p, *t, "Completed", std::nullopt);
    } else {
      Settle(*p, *t, "Failed", VippsProblem(e.problem, e.detail));
    }
    if (Logs(1))
      Log(1, "event=sim.payer payment=" + p->guid + " outcome=" + t->state +
                 " msisdn=" + MaskNumber(t->msisdn));
  }

  // ---- logging ------------------------------------------------------------------------------

  std::vector<std::string> log_lines;  // drained by the server (keeps the model IO-free)
  bool Logs(int level) const { return config.log_level >= level; }
  void Log(int level, std::string line) {
    if (Logs(level)) log_lines.push_back(std::move(line));
  }

  // ---- request handling ------------------------------------------------------------------------

  HttpResponse Dispatch(const HttpRequest& req, const Route& route, const FaultPlan& plan) {
    if (route.admin) return Admin(req, route);
    if (!route.psp) return ProblemResponse(NotFound("No resource at " + route.path));
    std::string auth = req.Header("authorization");
    if (auth != "Bearer " + config.token) {
      return ProblemResponse(MakeProblem(
          401, "unauthorized", "Unauthorized",
          auth.empty() ? "The Authorization header is missing" : "The access token is not valid"));
    }
    if (req.method == "POST" || req.method == "PATCH") {
      std::string ct = req.Header("content-type");
      if (!IsJsonType(ct))
        return ProblemResponse(MakeProblem(415, "inputerror", "There was an input error",
                                           "Content-Type must be application/json",
                                           {{"Content-Type", "must be application/json"}}));
    }
    const auto& s = route.segments;
    std::set<std::string> expand = ExpandOf(route.query);
    if (s.empty()) {
      if (req.method == "POST") return Create(req, expand);
      return MethodNotAllowed(req.method);
    }
    Payment* p = FindPayment(s[0]);
    if (!p) return ProblemResponse(NotFound("Payment " + s[0] + " was not found"));
    if (s.size() == 1) {
      if (req.method == "GET") return PaymentResponse(*p, expand);
      if (req.method == "PATCH") return Abort(*p, req, expand);
      return MethodNotAllowed(req.method);
    }
    std::string sub = Lower(s[1]);
    std::optional<TxKind> kind;
    for (int i = 0; i < 4; ++i)
      if (sub == kKinds[i].path) kind = static_cast<TxKind>(i);
    if (req.method == "POST" && s.size() == 2 && kind) {
      switch (*kind) {
        case TxKind::kAuthorization: return Authorize(*p, req, plan);
        case TxKind::kCapture: return Money(*p, req, plan, TxKind::kCapture);
        case TxKind::kCancellation: return Money(*p, req, plan, TxKind::kCancellation);
        case TxKind::kReversal: return Money(*p, req, plan, TxKind::kReversal);
      }
    }
    if (req.method != "GET") return MethodNotAllowed(req.method);
    if (s.size() == 2) {
      if (kind)
        return JsonResponse(
            200, json::object{{"payment", p->Id()}, {Names(*kind).path, List(*p, kind)}});
      if (sub == "transactions")
        return JsonResponse(
            200, json::object{{"payment", p->Id()}, {"transactions", List(*p, std::nullopt)}});
      if (sub == "prices" || sub == "payeeinfo" || sub == "urls" || sub == "metadata" ||
          sub == "payers" || sub == "settings") {
        std::string name = sub == "payeeinfo" ? "payeeInfo" : sub;
        return JsonResponse(200, json::object{{"payment", p->Id()}, {name, SubResource(*p, name)}});
      }
      if (sub == "paid") return Paid(*p);
      if (sub == "failed") return FailedResource(*p);
      if (sub == "aborted") {
        if (p->final_state != "Aborted")
          return ProblemResponse(Forbidden("The payment is not aborted"));
        return JsonResponse(
            200, json::object{{"payment", p->Id()},
                              {"aborted", json::object{{"abortReason", p->abort_reason}}}});
      }
    }
    if (s.size() == 3 && (kind || sub == "transactions")) {
      Tx* t = p->FindTx(Lower(s[2]));
      if (!t || (kind && t->kind != *kind))
        return ProblemResponse(NotFound("Transaction " + s[2] + " was not found"));
      if (kind) {
        return JsonResponse(200,
                            json::object{{"payment", p->Id()},
                                         {Names(*kind).single, Item(*p, *t, ListShape::kWrapped)}});
      }
      return JsonResponse(200, json::object{{"payment", p->Id()}, {"transaction", FlatTx(*p, *t)}});
    }
    return ProblemResponse(NotFound("No resource at " + route.path));
  }

  HttpResponse MethodNotAllowed(const std::string& method) {
    return ProblemResponse(MakeProblem(405, "methodnotallowed", "Method not allowed",
                                       "Method " + method + " is not allowed on this resource"));
  }

  std::optional<json::object> BodyObject(const HttpRequest& req, Problem& problem) {
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec || !v.is_object()) {
      problem = InputError({{"Body", ec ? "The request body is not valid JSON"
                                        : "The request body must be a JSON object"}});
      return std::nullopt;
    }
    return std::move(v.as_object());
  }

  // The body's "transaction" object; sets `problem` when the body or the object is missing.
  std::optional<json::object> TransactionObject(const HttpRequest& req, Problem& problem) {
    auto body = BodyObject(req, problem);
    if (!body) return std::nullopt;
    if (const json::object* tx = ObjectOf(*body, "transaction")) return *tx;
    problem = InputError({{"Transaction", "The transaction object is required"}});
    return std::nullopt;
  }

  bool ValidReference(std::string_view ref) const {
    if (config.settlement == 'B') {
      if (ref.empty() || ref.size() > 12) return false;
      return std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; });
    }
    if (ref.empty() || ref.size() > 30) return false;
    return std::all_of(ref.begin(), ref.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    });
  }

  std::string ReferenceRule() const {
    return config.settlement == 'B' ? "digits only, at most 12" : "[A-Za-z0-9], 1 to 30 characters";
  }

  // ---- create -----------------------------------------------------------------------------

  HttpResponse Create(const HttpRequest& req, const std::set<std::string>& expand) {
    Problem problem;
    auto body = BodyObject(req, problem);
    if (!body) return ProblemResponse(problem);
    const json::object* pay = ObjectOf(*body, "payment");
    if (!pay) return ProblemResponse(InputError({{"Payment", "The payment object is required"}}));
    std::vector<std::pair<std::string, std::string>> errs;
    auto need = [&](bool ok, const char* name, const char* why) {
      if (!ok) errs.emplace_back(name, why);
    };
    need(Lower(StrOr(*pay, "operation")) == "purchase", "Payment.Operation", "must be Purchase");
    need(Lower(StrOr(*pay, "intent")) == "authorization", "Payment.Intent",
         "must be Authorization (the only intent for Vipps)");
    need(StrOr(*pay, "currency") == "NOK", "Payment.Currency", "must be NOK");
    int64_t amount = 0, vat = 0;
    std::string price_type = "Vipps";
    const json::array* prices = nullptr;
    if (auto* v = pay->if_contains("prices")) prices = v->if_array();
    if (!prices || prices->size() != 1 || !(*prices)[0].is_object()) {
      errs.emplace_back("Payment.Prices", "exactly one price of type Vipps is required");
    } else {
      const json::object& pr = (*prices)[0].as_object();
      price_type = StrOr(pr, "type");
      need(Lower(price_type) == "vipps", "Payment.Prices.Type", "must be Vipps");
      auto a = IntOf(pr.if_contains("amount"));
      auto va = IntOf(pr.if_contains("vatAmount"));
      need(a && *a > 0, "Payment.Prices.Amount", "must be a positive integer (minor units)");
      need(va && *va >= 0 && a && *va <= *a, "Payment.Prices.VatAmount",
           "must be an integer between 0 and the amount");
      amount = a.value_or(0);
      vat = va.value_or(0);
    }
    std::string description = StrOr(*pay, "description");
    int dlen = Utf8Length(description);
    need(StrOf(*pay, "description") && dlen >= 1 && dlen <= 40, "Payment.Description",
         "1 to 40 characters required");
    need(!StrOr(*pay, "userAgent").empty(), "Payment.UserAgent", "is required");
    std::string language = StrOr(*pay, "language");
    need(language == "nb-NO" || language == "sv-SE" || language == "en-US", "Payment.Language",
         "must be nb-NO, sv-SE or en-US");
    const json::object* urls = ObjectOf(*pay, "urls");
    std::string callback;
    if (!urls) {
      errs.emplace_back("Payment.Urls", "is required");
    } else {
      need(!StrOr(*urls, "completeUrl").empty(), "Payment.Urls.CompleteUrl", "is required");
      if (urls->if_contains("logoUrl"))
        need(IsHttpsUrl(StrOr(*urls, "logoUrl")), "Payment.Urls.LogoUrl", "must use https");
      if (urls->if_contains("termsOfServiceUrl"))
        need(IsHttpsUrl(StrOr(*urls, "termsOfServiceUrl")), "Payment.Urls.TermsOfServiceUrl",
             "must use https");
      if (urls->if_contains("callbackUrl")) {
        callback = StrOr(*urls, "callbackUrl");
        need(IsHttpUrl(callback), "Payment.Urls.CallbackUrl", "must be an absolute http(s) URL");
      }
      if (auto* h = urls->if_contains("hostUrls"))
        need(h->is_array(), "Payment.Urls.HostUrls", "must be an array of URLs");
    }
    const json::object* payee = ObjectOf(*pay, "payeeInfo");
    std::string reference;
    if (!payee) {
      errs.emplace_back("Payment.PayeeInfo", "is required");
    } else {
      need(Lower(StrOr(*payee, "payeeId")) == Lower(config.payee_id), "Payment.PayeeInfo.PayeeId",
           "does not match the merchant of the access token");
      reference = StrOr(*payee, "payeeReference");
      if (!ValidReference(reference))
        errs.emplace_back("Payment.PayeeInfo.PayeeReference", "must be " + ReferenceRule());
      if (payee->if_contains("orderReference"))
        need(StrOr(*payee, "orderReference").size() <= 50, "Payment.PayeeInfo.OrderReference",
             "at most 50 characters");
      if (payee->if_contains("productCategory"))
        need(StrOr(*payee, "productCategory").size() <= 50, "Payment.PayeeInfo.ProductCategory",
             "at most 50 characters");
      if (payee->if_contains("subsite")) {
        std::string sub = StrOr(*payee, "subsite");
        need(sub.size() <= 40 &&
                 std::all_of(sub.begin(), sub.end(),
                             [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }),
             "Payment.PayeeInfo.Subsite", "A-Za-z0-9, at most 40 characters");
      }
    }
    std::string payer_reference = StrOr(*pay, "payerReference");
    if (auto* v = pay->if_contains("payer"))
      if (auto* po = v->if_object()) {
        std::string nested = StrOr(*po, "payerReference");
        if (!nested.empty()) payer_reference = nested;
      }
    if (auto* m = pay->if_contains("metadata")) {
      if (!m->is_object()) {
        errs.emplace_back("Payment.Metadata", "must be an object");
      } else {
        for (const auto& kv : m->as_object())
          need(kv.value().is_string() || kv.value().is_bool() || kv.value().is_number(),
               "Payment.Metadata", "values must be strings, booleans or numbers");
      }
    }
    if (!errs.empty()) return ProblemResponse(InputError(std::move(errs)));

    if (auto it = refs.find(reference); it != refs.end() && !it->second.empty()) {
      if (config.duplicate_payee_reference == DuplicateMode::kReplay) {
        for (const RefUse& u : it->second)
          if (u.tx.empty())
            if (Payment* orig = FindPayment(u.payment)) return PaymentResponse(*orig, expand);
      }
      if (config.duplicate_payee_reference != DuplicateMode::kAllow)
        return ProblemResponse(
            InputError({{"Payment.PayeeInfo.PayeeReference",
                         "The payeeReference " + reference + " is already in use (duplicate)"}}));
    }

    Payment p;
    p.guid = NewGuid();
    p.number = next_number++;
    p.created = p.updated = now;
    p.currency = "NOK";
    p.price_amount = amount;
    p.price_vat = vat;
    p.price_type = price_type;
    p.description = description;
    p.payer_reference = payer_reference;
    p.user_agent = StrOr(*pay, "userAgent");
    p.language = language;
    p.initiating_ua = req.Header("user-agent");
    p.urls = *urls;
    p.payee = *payee;
    if (auto* m = pay->if_contains("metadata")) p.metadata = m->as_object();
    p.payee_reference = reference;
    p.callback_url = callback;
    p.page_token = NewGuid();
    std::string guid = p.guid;
    refs[reference].push_back(RefUse{guid, "", std::nullopt});
    order.push_back(guid);
    Payment& stored = payments.emplace(guid, std::move(p)).first->second;
    if (Logs(1))
      Log(1, "event=sim.created payment=" + guid + " amount=" + std::to_string(amount) +
                 " payee_reference=" + reference);
    return PaymentResponse(stored, expand);
  }

  // ---- authorization ------------------------------------------------------------------------

  HttpResponse Authorize(Payment& p, const HttpRequest& req, const FaultPlan& plan) {
    if (!p.final_state.empty())
      return ProblemResponse(
          Forbidden("The payment is " + p.final_state + "; no authorization is possible"));
    if (AnyInitialized(p))
      return ProblemResponse(Forbidden("The payment is Pending; no new transactions are possible"));
    if (CompletedAuth(p)) return ProblemResponse(Forbidden("The payment is already authorized"));
    if (AwaitingAuth(p))
      return ProblemResponse(Forbidden("An authorization is already awaiting the payer"));
    if (!config.direct_authorization)
      return ProblemResponse(Forbidden("Direct authorization is not enabled for this merchant"));
    Problem problem;
    auto tx = TransactionObject(req, problem);
    if (!tx) return ProblemResponse(problem);
    std::string msisdn;
    bool allow_msisdn = config.msisdn_request_field != MsisdnSpelling::kMobileNumber;
    bool allow_mobile = config.msisdn_request_field != MsisdnSpelling::kMsisdn;
    if (allow_msisdn && tx->if_contains("msisdn")) msisdn = StrOr(*tx, "msisdn");
    if (msisdn.empty() && allow_mobile && tx->if_contains("mobileNumber"))
      msisdn = StrOr(*tx, "mobileNumber");
    if (msisdn.empty()) {
      const char* name = allow_msisdn ? "Transaction.Msisdn" : "Transaction.MobileNumber";
      return ProblemResponse(InputError({{name, "The MSISDN is required"}}));
    }
    if (!ValidMsisdn(msisdn))
      return ProblemResponse(InputError({{"Transaction.Msisdn", "Msisdn is invalid."}}));
    int magic = -1;
    if (config.magic_numbers && msisdn.substr(3, 6) == "999999")
      magic = std::stoi(msisdn.substr(9));
    if (magic >= 91 && magic <= 98)
      return ProblemResponse(VippsProblem("vipps_error", MagicMessage(magic)));

    Tx t;
    t.guid = NewGuid();
    t.kind = TxKind::kAuthorization;
    t.state = "AwaitingActivity";
    t.number = next_number++;
    t.amount = p.price_amount;
    t.vat = p.price_vat;
    t.description = p.description;
    t.payee_reference = p.payee_reference;  // inherited (api §11.1)
    t.created = t.updated = now;
    t.msisdn = msisdn;
    t.vipps_id = std::to_string(5000000000ll + static_cast<int64_t>(rng() % 1000000000ull));
    p.updated = now;
    p.txs.push_back(t);
    Tx& stored = p.txs.back();
    if (Logs(1))
      Log(1, "event=sim.authorization payment=" + p.guid + " msisdn=" + MaskNumber(msisdn));
    if (plan.transaction && plan.transaction->kind == FaultKind::kInitialized) {
      stored.state = "Initialized";
    } else if (plan.transaction && plan.transaction->kind == FaultKind::kTxFailed) {
      Settle(p, stored, "Failed",
             VippsProblem(plan.transaction->problem, "Rejected by the acquirer"));
    } else if (magic == 90) {
      SchedulePayer(p, stored, config.ignore_timeout_ms, "Failed", "vipps_declined",
                    "The payer did not confirm in time");
    } else if (magic == 89) {
      SchedulePayer(p, stored, config.decline_delay_ms, "Failed", "vipps_declined",
                    "The payer cancelled in the Vipps app");
    } else if (magic == 88) {
      stored.state = "Initialized";
    } else if (magic == 87) {
      SchedulePayer(p, stored, config.approve_delay_ms, "Failed", "acquirer_insufficient_funds",
                    "REJECTED_BY_ACQUIRER-insufficient funds, response-code: 51");
    } else if (magic == 86) {
      Settle(p, stored, "Completed", std::nullopt);
    } else if (magic == 85) {
      // never decides until forced
    } else {
      SchedulePayer(p, stored, config.approve_delay_ms, "Completed", "", "");
    }
    return TxResponse(p, stored);
  }

  // ---- capture, cancellation, reversal --------------------------------------------------------

  HttpResponse Money(Payment& p, const HttpRequest& req, const FaultPlan& plan, TxKind kind) {
    Problem problem;
    auto tx = TransactionObject(req, problem);
    if (!tx) return ProblemResponse(problem);
    std::vector<std::pair<std::string, std::string>> errs;
    int64_t amount = 0, vat = 0;
    if (kind != TxKind::kCancellation) {
      auto a = IntOf(tx->if_contains("amount"));
      auto va = IntOf(tx->if_contains("vatAmount"));
      if (!a || *a <= 0)
        errs.emplace_back("Transaction.Amount", "must be a positive integer (minor units)");
      if (!va || *va < 0 || (a && *va > *a))
        errs.emplace_back("Transaction.VatAmount", "must be an integer between 0 and the amount");
      amount = a.value_or(0);
      vat = va.value_or(0);
    }
    std::string description = StrOr(*tx, "description");
    int dlen = Utf8Length(description);
    if (!StrOf(*tx, "description") || dlen < 1 || dlen > 40)
      errs.emplace_back("Transaction.Description", "1 to 40 characters required");
    std::string reference = StrOr(*tx, "payeeReference");
    if (!ValidReference(reference))
      errs.emplace_back("Transaction.PayeeReference", "must be " + ReferenceRule());
    if (!errs.empty()) return ProblemResponse(InputError(std::move(errs)));

    if (auto it = refs.find(reference); it != refs.end() && !it->second.empty()) {
      if (config.duplicate_payee_reference == DuplicateMode::kReplay) {
        for (const RefUse& u : it->second)
          if (u.payment == p.guid && u.kind == kind)
            if (Tx* orig = p.FindTx(u.tx)) return TxResponse(p, *orig);
      }
      if (config.duplicate_payee_reference != DuplicateMode::kAllow)
        return ProblemResponse(
            InputError({{"Transaction.PayeeReference",
                         "The payeeReference " + reference + " is already in use (duplicate)"}}));
    }

    const char* what = Names(kind).type;
    if (!p.final_state.empty())
      return ProblemResponse(Forbidden("The payment is " + p.final_state));
    if (AnyInitialized(p))
      return ProblemResponse(Forbidden("The payment is Pending; no new transactions are possible"));
    if (!CompletedAuth(p))
      return ProblemResponse(
          Forbidden(std::string(what) + " is only possible on an authorized payment"));
    int64_t rca = RemainingCapture(p), rra = RemainingReversal(p);
    switch (kind) {
      case TxKind::kCapture:
        if (CaptureLocked(p))
          return ProblemResponse(Forbidden("The payment is locked after repeated failed captures"));
        if (rca <= 0) return ProblemResponse(Forbidden("Nothing remains to capture"));
        if (amount > rca)
          return ProblemResponse(InputError(
              {{"Transaction.Amount",
                "The amount exceeds the remaining capture amount " + std::to_string(rca)}}));
        break;
      case TxKind::kCancellation:
        if (rca <= 0) return ProblemResponse(Forbidden("Nothing remains to cancel"));
        amount = rca;
        vat = 0;
        break;
      case TxKind::kReversal:
        if (ReversalLocked(p))
          return ProblemResponse(
              Forbidden("The payment is locked after repeated failed reversals"));
        if (rra <= 0) return ProblemResponse(Forbidden("Nothing captured remains to reverse"));
        if (amount > rra)
          return ProblemResponse(InputError(
              {{"Transaction.Amount",
                "The amount exceeds the remaining reversal amount " + std::to_string(rra)}}));
        break;
      case TxKind::kAuthorization: break;
    }
    Tx t;
    t.guid = NewGuid();
    t.kind = kind;
    t.state = "Completed";
    t.number = next_number++;
    t.amount = amount;
    t.vat = vat;
    t.description = description;
    t.payee_reference = reference;
    t.created = t.updated = now;
    p.txs.push_back(t);
    Tx& stored = p.txs.back();
    refs[reference].push_back(RefUse{p.guid, stored.guid, kind});
    if (plan.transaction && plan.transaction->kind == FaultKind::kInitialized) {
      stored.state = "Initialized";
      p.updated = now;
    } else if (plan.transaction && plan.transaction->kind == FaultKind::kTxFailed) {
      Settle(p, stored, "Failed",
             VippsProblem(plan.transaction->problem,
                          "Unable to complete " + std::string(what) + " transaction"));
    } else {
      Settle(p, stored, "Completed", std::nullopt);
    }
    if (Logs(1))
      Log(1, std::string("event=sim.") + Lower(what) + " payment=" + p.guid +
                 " amount=" + std::to_string(amount) + " state=" + stored.state +
                 " payee_reference=" + reference);
    return TxResponse(p, stored);
  }

  // ---- abort, paid, failed ------------------------------------------------------------------

  HttpResponse Abort(Payment& p, const HttpRequest& req, const std::set<std::string>& expand) {
    Problem problem;
    auto body = BodyObject(req, problem);
    if (!body) return ProblemResponse(problem);
    const json::object* pay = ObjectOf(*body, "payment");
    if (!pay || StrOr(*pay, "operation") != "Abort")
      return ProblemResponse(InputError({{"Payment.Operation", "must be Abort"}}));
    if (!p.final_state.empty())
      return ProblemResponse(Forbidden("The payment is already " + p.final_state));
    if (AnyCompleted(p))
      return ProblemResponse(
          Forbidden("The payment has a successful transaction; use a cancellation"));
    if (AnyInitialized(p))
      return ProblemResponse(Forbidden("The payment is Pending; it cannot be aborted now"));
    Tx* awaiting = AwaitingAuth(p);
    if (awaiting && !config.abort_during_awaiting)
      return ProblemResponse(Forbidden("An authorization is awaiting the payer"));
    p.final_state = "Aborted";
    p.abort_reason = StrOr(*pay, "abortReason");
    p.updated = now;
    if (awaiting) {
      awaiting->state = "Failed";
      awaiting->updated = now;
      ++awaiting->epoch;
      awaiting->problem = VippsProblem("vipps_declined", "The payment was aborted by the merchant");
    }
    if (config.callback_on_abort && !p.txs.empty()) Notify(p, p.txs.back());
    if (Logs(1)) Log(1, "event=sim.aborted payment=" + p.guid);
    return PaymentResponse(p, expand);
  }

  HttpResponse Paid(Payment& p) {
    const Tx* a = CompletedAuth(p);
    if (!a) return ProblemResponse(Forbidden("The payment is not paid"));
    json::object paid{{"id", p.Id() + "/paid"},
                      {"number", p.number},
                      {"transaction", json::object{{"id", p.Id() + "/transactions/" + a->guid},
                                                   {"number", a->number}}},
                      {"payeeReference", p.payee_reference},
                      {"orderReference", StrOr(p.payee, "orderReference")},
                      {"amount", a->amount}};
    return JsonResponse(200, json::object{{"payment", p.Id()}, {"paid", std::move(paid)}});
  }

  HttpResponse FailedResource(Payment& p) {
    if (p.final_state != "Failed") return ProblemResponse(Forbidden("The payment has not failed"));
    const Tx* last = nullptr;
    for (const Tx& t : p.txs)
      if (t.kind == TxKind::kAuthorization && t.state == "Failed") last = &t;
    Problem pr =
        last && last->problem
            ? *last->problem
            : VippsProblem("acquirer_error", "Unable to complete Authorization transaction");
    json::array list;
    for (const auto& [n, d] : pr.problems)
      list.push_back(json::object{{"name", n}, {"description", d}});
    HttpResponse r =
        JsonResponse(200, json::object{{"problem", json::object{{"type", pr.type},
                                                                {"title", pr.title},
                                                                {"status", pr.status},
                                                                {"detail", pr.detail},
                                                                {"problems", std::move(list)}}}});
    r.content_type = "application/problem+json";
    return r;
  }

  // ---- admin ------------------------------------------------------------------------------

  json::object AdminView(Payment& p) {
    json::object o;
    o["id"] = p.Id();
    o["number"] = p.number;
    o["state"] = StateOf(p);
    o["payeeReference"] = p.payee_reference;
    o["priceAmount"] = p.price_amount;
    o["amount"] = Authorized(p);
    o["captured"] = Sum(p, TxKind::kCapture);
    o["cancelled"] = Sum(p, TxKind::kCancellation);
    o["reversed"] = Sum(p, TxKind::kReversal);
    o["remainingCaptureAmount"] = RemainingCapture(p);
    o["remainingReversalAmount"] = RemainingReversal(p);
    o["callbackUrl"] = p.callback_url;
    o["abortReason"] = p.abort_reason;
    o["failedAuthorizations"] = p.failed_auths;
    json::array rels;
    for (const auto& op : Operations(p)) rels.push_back(op.as_object().at("rel"));
    o["operations"] = std::move(rels);
    json::array txs;
    for (const Tx& t : p.txs) {
      json::object x = FlatTx(p, t);
      if (t.kind == TxKind::kAuthorization) x["msisdn"] = t.msisdn;
      txs.push_back(std::move(x));
    }
    o["transactions"] = std::move(txs);
    return o;
  }

  json::object Ledger() {
    json::array violations, duplicates;
    int64_t authorized = 0, captured = 0, cancelled = 0, reversed = 0;
    auto violation = [&](const Payment& p, const char* rule, std::string detail) {
      violations.push_back(
          json::object{{"payment", p.Id()}, {"rule", rule}, {"detail", std::move(detail)}});
    };
    for (const std::string& g : order) {
      Payment& p = payments.at(g);
      int completed_auths = 0, completed_cancels = 0;
      for (const Tx& t : p.txs) {
        if (t.state != "Completed") continue;
        if (t.kind == TxKind::kAuthorization) ++completed_auths;
        if (t.kind == TxKind::kCancellation) ++completed_cancels;
      }
      int64_t a = Authorized(p), c = Sum(p, TxKind::kCapture), x = Sum(p, TxKind::kCancellation),
              r = Sum(p, TxKind::kReversal);
      authorized += a;
      captured += c;
      cancelled += x;
      reversed += r;
      if (completed_auths > 1)
        violation(p, "one-authorization",
                  std::to_string(completed_auths) + " completed authorizations");
      if (a > p.price_amount)
        violation(p, "authorized<=price",
                  std::to_string(a) + " > " + std::to_string(p.price_amount));
      if (c > a)
        violation(p, "captured<=authorized", std::to_string(c) + " > " + std::to_string(a));
      if (x > a - c)
        violation(p, "cancelled<=authorized-captured",
                  std::to_string(x) + " > " + std::to_string(a) + "-" + std::to_string(c));
      if (r > c) violation(p, "reversed<=captured", std::to_string(r) + " > " + std::to_string(c));
      if (completed_cancels > 1)
        violation(p, "one-cancellation",
                  std::to_string(completed_cancels) + " completed cancellations");
      if ((c > 0 || x > 0) && completed_auths == 0)
        violation(p, "money-without-authorization",
                  "captures or cancellations without an authorization");
      if (p.final_state == "Aborted" && completed_auths > 0)
        violation(p, "aborted-after-authorization", "aborted although authorized");
    }
    for (const auto& [ref, uses] : refs) {
      std::vector<const RefUse*> effective;
      for (const RefUse& u : uses) {
        if (u.tx.empty()) {
          effective.push_back(&u);
          continue;
        }
        Payment* p = FindPayment(u.payment);
        Tx* t = p ? p->FindTx(u.tx) : nullptr;
        if (t && (t->state == "Completed" || t->state == "Initialized")) effective.push_back(&u);
      }
      int payments_created = 0, money = 0;
      for (const RefUse* u : effective) (u->tx.empty() ? payments_created : money)++;
      if (payments_created > 1 || money > 1) {
        json::array where;
        for (const RefUse* u : effective) {
          Payment* p = FindPayment(u->payment);
          std::string id = p ? p->Id() : u->payment;
          where.push_back(u->tx.empty() ? json::value(id)
                                        : json::value(id + "/transactions/" + u->tx));
        }
        duplicates.push_back(json::object{{"payeeReference", ref},
                                          {"count", static_cast<int64_t>(effective.size())},
                                          {"resources", std::move(where)}});
      }
    }
    bool ok = violations.empty() && duplicates.empty();
    return json::object{{"ok", ok},
                        {"payments", static_cast<int64_t>(order.size())},
                        {"totals", json::object{{"authorized", authorized},
                                                {"captured", captured},
                                                {"cancelled", cancelled},
                                                {"reversed", reversed}}},
                        {"violations", std::move(violations)},
                        {"duplicateReferences", std::move(duplicates)}};
  }

  json::object ConfigView() const {
    json::object knobs;
    for (const Knob& k : Knobs())
      if (k.name != "merchant.token") knobs[k.name] = k.get(config);
    json::array faults;
    for (const FaultRule& f : config.faults) faults.push_back(json::string(FormatFault(f)));
    return json::object{{"knobs", std::move(knobs)}, {"faults", std::move(faults)}};
  }

  HttpResponse AdminError(int status, std::string detail) {
    return ProblemResponse(
        MakeProblem(status, "inputerror", "Admin request refused", std::move(detail)));
  }

  HttpResponse Admin(const HttpRequest& req, const Route& route) {
    std::vector<std::string> s = SplitPath(std::string_view(route.path).substr(6));  // after /admin
    const std::string& m = req.method;
    auto body_object = [&]() -> std::optional<json::object> {
      if (req.body.empty()) return json::object{};
      boost::system::error_code ec;
      json::value v = json::parse(req.body, ec);
      if (ec || !v.is_object()) return std::nullopt;
      return v.as_object();
    };
    if (s.empty()) return JsonResponse(200, json::object{{"admin", "payex-sim"}});
    if (s[0] == "payments") {
      if (s.size() == 1 && m == "GET") {
        json::array all;
        for (const std::string& g : order) all.push_back(AdminView(payments.at(g)));
        return JsonResponse(200, json::object{{"payments", std::move(all)}});
      }
      // The id may be a guid or a whole /psp/vipps/payments/{guid} id.
      std::string id = s.size() >= 2 ? s.back() : "";
      bool force = s.size() >= 2 && s.back() == "force" && m == "POST";
      if (force) id = s[s.size() - 2];
      Payment* p = FindPayment(id);
      if (!p) return AdminError(404, "no payment " + id);
      if (!force && m == "GET") return JsonResponse(200, AdminView(*p));
      if (force) {
        auto b = body_object();
        if (!b) return AdminError(400, "body must be a JSON object");
        std::string outcome = StrOr(*b, "outcome");
        std::string tx_id = Lower(StrOr(*b, "transaction"));
        if (size_t slash = tx_id.find_last_of('/'); slash != std::string::npos)
          tx_id = tx_id.substr(slash + 1);
        Tx* t = nullptr;
        if (!tx_id.empty()) {
          t = p->FindTx(tx_id);
        } else {
          for (Tx& x : p->txs)
            if (x.state == "Initialized" || x.state == "AwaitingActivity") t = &x;
          if (!t)
            for (Tx& x : p->txs)
              if (x.kind == TxKind::kAuthorization) t = &x;
        }
        if (!t) return AdminError(404, "no transaction to force");
        if (outcome != "Completed" && outcome != "Failed" && outcome != "Initialized" &&
            outcome != "AwaitingActivity")
          return AdminError(400,
                            "outcome must be Completed, Failed, Initialized or AwaitingActivity");
        ++t->epoch;
        if (outcome == "Completed" || outcome == "Failed") {
          std::string ptype = StrOr(*b, "problem");
          if (ptype.empty())
            ptype = t->kind == TxKind::kAuthorization ? "vipps_declined" : "acquirer_error";
          Settle(*p, *t, outcome,
                 outcome == "Failed" ? std::optional<Problem>(
                                           VippsProblem(ptype, "Forced by the simulator's admin"))
                                     : std::nullopt);
        } else {
          t->state = outcome;
          t->updated = now;
          t->problem.reset();
        }
        if (Logs(1)) Log(1, "event=sim.forced payment=" + p->guid + " outcome=" + outcome);
        return JsonResponse(200, AdminView(*p));
      }
      return AdminError(405, "use GET, or POST .../force");
    }
    if (s[0] == "ledger" && m == "GET") return JsonResponse(200, Ledger());
    if (s[0] == "callbacks" && m == "GET") {
      json::array all;
      for (const auto& [id, cb] : callbacks) {
        json::array attempts;
        for (const Attempt& a : cb.attempts)
          attempts.push_back(json::object{
              {"at", IsoTime(a.at)}, {"atMs", a.at}, {"status", a.status}, {"error", a.error}});
        Payment* p = FindPayment(cb.payment);
        all.push_back(json::object{{"id", cb.id},
                                   {"payment", p ? p->Id() : cb.payment},
                                   {"transaction", cb.tx},
                                   {"url", cb.url},
                                   {"body", cb.body},
                                   {"createdMs", cb.created},
                                   {"delivered", cb.delivered},
                                   {"gaveUp", cb.gave_up},
                                   {"lost", cb.lost},
                                   {"duplicate", cb.duplicate},
                                   {"delayed", cb.delayed},
                                   {"reordered", cb.reordered},
                                   {"attempts", std::move(attempts)}});
      }
      return JsonResponse(200, json::object{{"callbacks", std::move(all)}});
    }
    if (s[0] == "requests" && m == "GET") {
      json::array all;
      for (const RequestLog& r : requests)
        all.push_back(json::object{{"atMs", r.at},
                                   {"method", r.method},
                                   {"target", r.target},
                                   {"endpoint", r.endpoint},
                                   {"status", r.status},
                                   {"sessionId", r.session_id},
                                   {"userAgent", r.user_agent},
                                   {"accept", r.accept},
                                   {"contentType", r.content_type},
                                   {"authorized", r.authorization_ok}});
      json::object counts_o;
      for (const auto& [k, v] : counts) counts_o[k] = v;
      return JsonResponse(
          200, json::object{{"requests", std::move(all)}, {"counts", std::move(counts_o)}});
    }
    if (s[0] == "config") {
      if (m == "GET") return JsonResponse(200, ConfigView());
      if (m == "POST") {
        auto b = body_object();
        if (!b) return AdminError(400, "body must be a JSON object of knob: value");
        SimConfig next = config;
        try {
          for (const auto& kv : *b) {
            std::string v = kv.value().is_string() ? std::string(kv.value().as_string())
                                                   : json::serialize(kv.value());
            if (kv.key() == "server.listen" || kv.key() == "server.port")
              throw std::invalid_argument(std::string(kv.key()) + " cannot change at run time");
            SetKnob(next, kv.key(), v);
          }
        } catch (const std::invalid_argument& e) {
          return AdminError(400, e.what());
        }
        config = next;
        return JsonResponse(200, ConfigView());
      }
    }
    if (s[0] == "faults") {
      if (m == "GET") return JsonResponse(200, ConfigView());
      if (m == "POST") {
        auto b = body_object();
        if (!b) return AdminError(400, "body must be {\"faults\":[...]} or {\"add\":[...]}");
        try {
          std::vector<FaultRule> rules;
          bool add = b->if_contains("add") != nullptr;
          const json::value* list = add ? b->if_contains("add") : b->if_contains("faults");
          if (!list || !list->is_array())
            throw std::invalid_argument("expected an array of fault specs");
          for (const auto& v : list->as_array()) {
            if (!v.is_string()) throw std::invalid_argument("fault specs are strings");
            rules.push_back(ParseFault(v.as_string()));
          }
          if (!add) config.faults.clear();
          for (auto& r : rules) config.faults.push_back(std::move(r));
        } catch (const std::invalid_argument& e) {
          return AdminError(400, e.what());
        }
        return JsonResponse(200, ConfigView());
      }
    }
    if (s[0] == "reset" && m == "POST") {
      auto b = body_object();
      if (b && b->if_contains("config") && b->at("config").is_bool() && b->at("config").as_bool())
        config = start_config;
      payments.clear();
      order.clear();
      refs.clear();
      events.clear();
      callbacks.clear();
      held.clear();
      requests.clear();
      counts.clear();
      return JsonResponse(200, json::object{{"reset", true}});
    }
    return AdminError(404, "no admin resource " + route.path);
  }
};

Model::Model(SimConfig config, int64_t now_ms) : s_(std::make_unique<State>()) {
  s_->config = config;
  s_->start_config = std::move(config);
  s_->rng.seed(s_->config.seed);
  s_->now = now_ms;
  s_->api_base = s_->config.api_base;
  s_->ecom_base = s_->config.ecom_base.empty() ? s_->api_base + "/ecom" : s_->config.ecom_base;
}

Model::~Model() = default;

HttpResponse TransportProblem(int status, std::string_view detail) {
  json::object o{
      {"type", std::string(kErrorBase) + "inputerror"},
      {"title", "There was an input error"},
      {"status", status},
      {"detail", detail},
      {"action", "RetryNewData"},
      {"problems", json::array{json::object{{"name", "Request"}, {"description", detail}}}}};
  HttpResponse r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = json::serialize(o);
  return r;
}

void Model::SetBases(std::string api_base, std::string ecom_base) {
  while (!api_base.empty() && api_base.back() == '/') api_base.pop_back();
  s_->api_base = std::move(api_base);
  s_->ecom_base = ecom_base.empty() ? s_->api_base + "/ecom" : std::move(ecom_base);
}

const SimConfig& Model::config() const {
  return s_->config;
}

std::vector<std::string> Model::TakeLog() {
  std::vector<std::string> out;
  out.swap(s_->log_lines);
  return out;
}

FaultPlan Model::PlanFaults(const HttpRequest& request) {
  FaultPlan plan;
  Route route = Parse(request);
  if (route.endpoint.empty()) return plan;
  for (FaultRule& rule : s_->config.faults) {
    if (rule.endpoint != "any" && rule.endpoint != route.endpoint) continue;
    if (rule.count == 0) continue;
    bool is_tx = rule.kind == FaultKind::kInitialized || rule.kind == FaultKind::kTxFailed;
    if (is_tx &&
        (route.endpoint == "create" || route.endpoint == "get" || route.endpoint == "abort"))
      continue;
    bool is_before = rule.kind == FaultKind::kError || rule.kind == FaultKind::kDropBefore;
    bool is_after = !is_tx && !is_before && rule.kind != FaultKind::kLatency;
    if ((is_before && plan.before) || (is_after && plan.after) || (is_tx && plan.transaction))
      continue;
    if (rule.rate < 1.0 && s_->Roll() >= rule.rate) continue;
    if (rule.count > 0) --rule.count;
    if (rule.kind == FaultKind::kLatency) {
      plan.latency_ms += rule.latency_ms;
    } else if (is_before) {
      plan.before = rule;
    } else if (is_after) {
      plan.after = rule;
    } else {
      plan.transaction = rule;
    }
  }
  return plan;
}

HttpResponse Model::Handle(const HttpRequest& request, const FaultPlan& plan, int64_t now_ms) {
  State& s = *s_;
  s.now = std::max(s.now, now_ms);
  Route route = Parse(request);
  HttpResponse r;
  try {
    if (plan.before) {
      if (plan.before->kind == FaultKind::kDropBefore) {
        r.disposition = Disposition::kDrop;
      } else {
        int st = plan.before->status;
        r = s.ProblemResponse(
            State::MakeProblem(st,
                               st == 429   ? "toomanyrequests"
                               : st >= 500 ? "systemerror"
                                           : "forbidden",
                               st == 429 ? "Too many requests" : "A system error occurred",
                               "Injected by payex-sim (before any effect)"));
      }
    } else {
      r = s.Dispatch(request, route, plan);
      if (plan.after) {
        switch (plan.after->kind) {
          case FaultKind::kDropAfter: r.disposition = Disposition::kDrop; break;
          case FaultKind::kErrorAfter:
            r = s.ProblemResponse(State::MakeProblem(plan.after->status, "systemerror",
                                                     "A system error occurred",
                                                     "Injected by payex-sim (after the effect)"));
            break;
          case FaultKind::kHang:
            r.disposition = Disposition::kHang;
            r.hang_ms = plan.after->latency_ms;
            break;
          case FaultKind::kBadJson:
            r.status = 200;
            r.content_type = "application/json";
            r.body = r.body.substr(0, r.body.size() / 2) + "{\"oops\":";
            break;
          case FaultKind::kWrongContentType:
            r.status = 200;
            r.content_type = "text/html";
            r.body = "<html><body>Service temporarily unavailable</body></html>";
            break;
          case FaultKind::kTruncated: r.disposition = Disposition::kTruncate; break;
          default: break;
        }
      }
    }
  } catch (const std::exception& e) {
    r = s.ProblemResponse(
        State::MakeProblem(500, "systemerror", "A system error occurred", e.what()));
  }
  if (!route.admin) {
    RequestLog log;
    log.at = s.now;
    log.method = request.method;
    log.target = request.target;
    log.session_id = request.Header("session-id");
    log.user_agent = request.Header("user-agent");
    log.accept = request.Header("accept");
    log.content_type = request.Header("content-type");
    log.endpoint = route.endpoint;
    log.authorization_ok = request.Header("authorization") == "Bearer " + s.config.token;
    log.status = r.disposition == Disposition::kNormal ? r.status : 0;
    s.requests.push_back(std::move(log));
    if (s.requests.size() > 1000) s.requests.pop_front();
    ++s.counts[route.endpoint.empty() ? "other" : route.endpoint];
    if (s.Logs(2))
      s.Log(2, "event=sim.request method=" + request.method + " target=" + request.target +
                   " status=" + std::to_string(r.status) +
                   (r.disposition != Disposition::kNormal ? " fault=connection" : ""));
  }
  return r;
}

std::vector<CallbackJob> Model::Advance(int64_t now_ms) {
  State& s = *s_;
  s.now = std::max(s.now, now_ms);
  std::vector<CallbackJob> jobs;
  while (!s.events.empty() && s.events.begin()->first <= s.now) {
    Event e = std::move(s.events.begin()->second);
    s.events.erase(s.events.begin());
    if (e.kind == Event::kPayer) {
      s.RunPayer(e);
      continue;
    }
    auto it = s.callbacks.find(e.callback);
    if (it == s.callbacks.end()) continue;
    Callback& cb = it->second;
    if (cb.delivered || cb.in_flight || cb.lost || cb.gave_up) continue;
    if (auto h = s.held.find(cb.payment); h != s.held.end() && h->second == cb.id) s.held.erase(h);
    cb.in_flight = true;
    cb.attempts.push_back(Attempt{s.now, 0, ""});
    jobs.push_back(CallbackJob{cb.id, cb.url, cb.body});
  }
  return jobs;
}

void Model::CallbackDone(uint64_t id, int status, std::string error, int64_t now_ms) {
  State& s = *s_;
  s.now = std::max(s.now, now_ms);
  auto it = s.callbacks.find(id);
  if (it == s.callbacks.end()) return;
  Callback& cb = it->second;
  if (!cb.in_flight) return;
  cb.in_flight = false;
  if (!cb.attempts.empty()) {
    cb.attempts.back().status = status;
    cb.attempts.back().error = std::move(error);
  }
  if (status >= 200 && status < 300) {
    cb.delivered = true;
    return;
  }
  size_t made = cb.attempts.size();
  const auto& schedule = s.config.callback_schedule_s;
  if (static_cast<int>(made) >= s.config.callback_max_attempts || made - 1 >= schedule.size()) {
    cb.gave_up = true;
    if (s.Logs(1))
      s.Log(1, "event=sim.callback_gave_up payment=" + cb.payment +
                   " attempts=" + std::to_string(made));
    return;
  }
  // Offsets count from the first attempt (api §9.3: cumulative, not intervals).
  int64_t due = std::max(s.now, cb.created + schedule[made - 1] * 1000);
  s.ScheduleCallbackAttempt(cb.id, due);
}

std::optional<int64_t> Model::NextDue() const {
  if (s_->events.empty()) return std::nullopt;
  return s_->events.begin()->first;
}

}  // namespace payorch::sim
