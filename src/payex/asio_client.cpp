// The asynchronous PayEx client: a bounded keep-alive pool of plain or TLS
// connections, one HTTP/1.1 exchange per request with an absolute deadline, and the
// mapping of each domain::PayexCall onto the hypermedia API (operation hrefs come
// from the latest payment resource, never built; api §2.5).
//
// Why "sent" matters: an exchange that fails before the request left (pool,
// resolve, connect, TLS) cannot have changed PayEx and is transient; once the
// request went out, a POST or PATCH may have taken effect, so timeouts, resets and
// truncated answers are in doubt and resolved by reading (design.md §4).
#include "payex/asio_client.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <deque>
#include <list>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include "domain/decide.hpp"
#include "domain/safe_text.hpp"
#include "payex/mapping.hpp"

namespace payorch::payex {
namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using domain::PayexResult;
using domain::Problem;
using domain::ResultClass;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// A PayEx answer ($expand included, a few KiB) in one read rather than 512 bytes at a time.
constexpr std::size_t kReadBufferBytes = 16 * 1024;

struct Origin {
  bool tls = false;
  std::string host;
  std::string port;
  bool operator==(const Origin& o) const {
    return tls == o.tls && host == o.host && port == o.port;
  }
  std::string ToString() const { return (tls ? "https://" : "http://") + host + ":" + port; }
};

struct Target {
  Origin origin;
  std::string target;  // path and query
};

// Splits an absolute http(s) URL; nullopt for anything else.
std::optional<Target> SplitUrl(std::string_view url) {
  auto r = boost::urls::parse_uri(url);
  if (!r) return std::nullopt;
  Target t;
  std::string scheme(r->scheme());
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "https") {
    t.origin.tls = true;
  } else if (scheme != "http") {
    return std::nullopt;
  }
  t.origin.host = std::string(r->host_address());
  if (t.origin.host.empty()) return std::nullopt;
  for (char& c : t.origin.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  t.origin.port = r->has_port() ? std::string(r->port()) : (t.origin.tls ? "443" : "80");
  if (t.origin.port.empty() || t.origin.port.size() > 5 ||
      t.origin.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(t.origin.port) == 0 || std::stoi(t.origin.port) > 65535)
    return std::nullopt;
  t.target = std::string(r->encoded_target());
  if (t.target.empty()) t.target = "/";
  return t;
}

struct Connection {
  Origin origin;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  Clock::time_point idle_since{};
  bool connected = false;
  uint64_t uses = 0;

  beast::tcp_stream& Lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void Close() {
    boost::system::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().socket().close(ec);
  }
};

// Whether an idle keep-alive connection may be reused: the peer must not have
// closed it meanwhile. A plain connection with unread bytes is broken as well;
// on TLS those may be a session ticket, so only EOF counts there.
bool LooksAlive(Connection& c) {
  if (!c.Lowest().socket().is_open()) return false;
  char byte;
  ssize_t n = ::recv(c.Lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  if (n > 0) return static_cast<bool>(c.tls);
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

const char* KindName(domain::OpKind k) {
  return domain::OpKindName(k);
}

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  ClientCore(asio::any_io_executor ex, ClientOptions options)
      : ex_(std::move(ex)), opts_(std::move(options)), ssl_ctx_(ssl::context::tls_client) {
    auto base = SplitUrl(opts_.base_url);
    if (!base) throw std::invalid_argument("payex: base_url is not an http(s) URL");
    if (!base->origin.tls && !opts_.allow_plain_http)
      throw std::invalid_argument(
          "payex: base_url uses plain http; set allow_plain_http (simulator only)");
    if (opts_.max_connections == 0) throw std::invalid_argument("payex: max_connections is 0");
    if (opts_.request_timeout.count() <= 0)
      throw std::invalid_argument("payex: request_timeout must be positive");
    if (opts_.token.find_first_of("\r\n") != std::string::npos)
      throw std::invalid_argument("payex: token contains a line break");
    base_ = base->origin;
    base_path_ = base->target == "/" ? "" : base->target;
    while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
    ssl_ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1);
    ssl_ctx_.set_default_verify_paths();
    if (!opts_.ca_file.empty()) {
      boost::system::error_code ec;
      ssl_ctx_.load_verify_file(opts_.ca_file, ec);
      if (ec) throw std::invalid_argument("payex: cannot load ca_file " + opts_.ca_file);
    }
    ssl_ctx_.set_verify_mode(ssl::verify_peer);
    authorization_ = "Bearer " + opts_.token;
  }

  ~ClientCore() { CloseIdle(); }

  void Close() {
    closed_ = true;
    CloseIdle();
    WakeAll();
  }

  PoolStats Stats() const {
    PoolStats s = stats_;
    s.open = open_;
    s.idle = idle_.size();
    s.waiting = waiters_.size();
    return s;
  }

  // ---- the calls of the state machine -----------------------------------------

  asio::awaitable<PayexResult> Execute(domain::PayexCall call) {
    auto self = shared_from_this();
    const auto start = Clock::now();
    PayexResult r;
    r.call_id = call.call_id;
    try {
      r = co_await Dispatch(call);
    } catch (const std::exception& e) {
      // Never expected; a call that threw may have been sent.
      bool effectful = call.kind != domain::OpKind::kRead;
      r = PayexResult{};
      r.result = effectful ? ResultClass::kInDoubt : ResultClass::kTransient;
      r.problem = Problem{problem_type::kBadResponse, "client error", e.what(), 0, {}};
    }
    r.call_id = call.call_id;
    r.latency_us = UsSince(start);
    Log(call, r);
    co_return r;
  }

  asio::awaitable<PaymentResult> GetPayment(std::string payment_id, std::string expand) {
    auto self = shared_from_this();
    const auto start = Clock::now();
    PaymentResult out;
    auto target = IdTarget(payment_id);
    if (!target) {
      out.result = ResultClass::kDefiniteFailure;
      out.problem = BadCall("payment id is not a PayEx payment id");
      co_return out;
    }
    if (!expand.empty()) target->target += "?$expand=" + expand;
    Classified c = co_await FetchPayment(*target, out.payment);
    Finish(out, std::move(c), start);
    co_return out;
  }

  asio::awaitable<ListResult> ListTransactions(std::string payment_id) {
    auto self = shared_from_this();
    const auto start = Clock::now();
    ListResult out;
    auto target = IdTarget(payment_id);
    if (!target) {
      out.result = ResultClass::kDefiniteFailure;
      out.problem = BadCall("payment id is not a PayEx payment id");
      co_return out;
    }
    // Every transaction, inlined by $expand into the payment resource: one GET
    // of a stored id, no URL of our own making (api §2.5), and the operations
    // cache is refreshed on the way.
    target->target += "?$expand=transactions";
    std::optional<PaymentResource> payment;
    Classified c = co_await FetchPayment(*target, payment);
    if (payment) out.transactions = std::move(payment->snapshot.transactions);
    Finish(out, std::move(c), start);
    co_return out;
  }

 private:
  static int64_t UsSince(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  }

  // Sets a read's outcome: its class, problem and latency since `start`.
  template <typename Result>
  static void Finish(Result& out, Classified c, Clock::time_point start) {
    out.result = c.result;
    out.problem = std::move(c.problem);
    out.latency_us = UsSince(start);
  }

  // GETs the payment resource at `target` and classifies the reply; on success the
  // operations cache is refreshed and `resource` holds what was read.
  asio::awaitable<Classified> FetchPayment(const Target& target,
                                           std::optional<PaymentResource>& resource) {
    Exchange ex = co_await Http(http::verb::get, target, std::string(), false);
    Classified c = Classify(ex);
    if (c.result == ResultClass::kSuccess) {
      auto parsed = ParsePaymentBody(ex);
      if (parsed) {
        Remember(parsed.value->snapshot.payment_id, parsed.value->operations);
        resource = std::move(parsed.value);
      } else {
        c = ClassifyUnusableBody(ex, parsed.error);
      }
    }
    co_return c;
  }

  static Problem BadCall(std::string detail) {
    return Problem{problem_type::kBadCall, "invalid call", std::move(detail), 0, {}};
  }

  // Details quote what PayEx sent (its operations' rels): masked and bounded.
  static PayexResult Fail(ResultClass c, Problem p) {
    p.title = domain::SafeDetail(p.title);
    p.detail = domain::SafeDetail(p.detail);
    PayexResult r;
    r.result = c;
    r.problem = std::move(p);
    return r;
  }

  asio::awaitable<PayexResult> Dispatch(const domain::PayexCall& call) {
    using domain::OpKind;
    if (call.kind != OpKind::kCreate && call.payment_id.empty())
      co_return Fail(ResultClass::kDefiniteFailure, BadCall("no payment id"));
    switch (call.kind) {
      case OpKind::kCreate: {
        Target t{base_, base_path_ + "/psp/vipps/payments"};
        std::string body = BuildCreateBody(call, opts_, CallbackUrlFor(opts_, call.order_id));
        Exchange ex = co_await Http(http::verb::post, t, std::move(body), true);
        co_return ToSnapshotResult(ex);
      }
      case OpKind::kRead: {
        auto t = IdTarget(call.payment_id);
        if (!t) co_return Fail(ResultClass::kDefiniteFailure, BadCall("bad payment id"));
        std::string expand = call.expand.empty() ? opts_.default_expand : call.expand;
        if (!expand.empty()) t->target += "?$expand=" + expand;
        Exchange ex = co_await Http(http::verb::get, *t, std::string(), false);
        co_return ToSnapshotResult(ex);
      }
      case OpKind::kAuthorize: {
        // (Braced lists inside co_await trip GCC 12: build the vector first.)
        std::vector<std::string_view> rels;
        rels.push_back(kAuthorizationRels[0]);
        rels.push_back(kAuthorizationRels[1]);
        auto op = co_await OperationFor(call.payment_id, std::move(rels));
        if (!op.target) co_return std::move(op.failure);
        Exchange ex = co_await Http(op.verb, *op.target,
                                    BuildAuthorizeBody(call.msisdn, opts_.msisdn_field), true);
        co_return ToTransactionResult(ex);
      }
      case OpKind::kCapture:
      case OpKind::kCancel:
      case OpKind::kReverse: {
        const char* rel = call.kind == OpKind::kCapture  ? "create-capture"
                          : call.kind == OpKind::kCancel ? "create-cancellation"
                                                         : "create-reversal";
        std::vector<std::string_view> rels(1, rel);
        auto op = co_await OperationFor(call.payment_id, std::move(rels));
        if (!op.target) co_return std::move(op.failure);
        std::string body =
            call.kind == OpKind::kCancel ? BuildCancelBody(call) : BuildCaptureBody(call);
        Exchange ex = co_await Http(op.verb, *op.target, std::move(body), true);
        co_return ToTransactionResult(ex);
      }
      case OpKind::kAbort: {
        std::vector<std::string_view> rels(1, "update-payment-abort");
        auto op = co_await OperationFor(call.payment_id, std::move(rels));
        if (!op.target) co_return std::move(op.failure);
        Exchange ex = co_await Http(op.verb, *op.target, BuildAbortBody(call.abort_reason), true);
        co_return ToSnapshotResult(ex);
      }
    }
    co_return Fail(ResultClass::kDefiniteFailure, BadCall("unknown operation kind"));
  }

  Parsed<PaymentResource> ParsePaymentBody(const Exchange& ex) {
    if (!IsJsonContentType(ex.content_type)) {
      Parsed<PaymentResource> p;
      p.error = "content type '" + ex.content_type + "' is not JSON";
      return p;
    }
    return ParsePaymentResource(ex.body);
  }

  PayexResult ToSnapshotResult(const Exchange& ex) {
    Classified c = Classify(ex);
    PayexResult r;
    if (c.result == ResultClass::kSuccess) {
      auto parsed = ParsePaymentBody(ex);
      if (parsed) {
        Remember(parsed.value->snapshot.payment_id, std::move(parsed.value->operations));
        r.snapshot = std::move(parsed.value->snapshot);
        return r;
      }
      c = ClassifyUnusableBody(ex, parsed.error);
    }
    r.result = c.result;
    r.problem = std::move(c.problem);
    return r;
  }

  PayexResult ToTransactionResult(const Exchange& ex) {
    Classified c = Classify(ex);
    PayexResult r;
    if (c.result == ResultClass::kSuccess) {
      if (IsJsonContentType(ex.content_type)) {
        auto parsed = ParseTransactionResource(ex.body);
        if (parsed) {
          r.transaction = std::move(parsed.value);
          return r;
        }
        c = ClassifyUnusableBody(ex, parsed.error);
      } else {
        c = ClassifyUnusableBody(ex, "content type '" + ex.content_type + "' is not JSON");
      }
    }
    r.result = c.result;
    r.problem = std::move(c.problem);
    return r;
  }

  // ---- hypermedia ----------------------------------------------------------------

  // The request target of a stored payment id (relative "/psp/vipps/payments/..."
  // or an absolute URL of the configured origin).
  std::optional<Target> IdTarget(const std::string& id) const {
    if (id.empty()) return std::nullopt;
    if (id.front() == '/') return Target{base_, base_path_ + id};
    auto t = SplitUrl(id);
    if (!t || !(t->origin == base_)) return std::nullopt;
    return t;
  }

  struct ResolvedOp {
    std::optional<Target> target;
    http::verb verb = http::verb::post;
    PayexResult failure;
  };

  asio::awaitable<ResolvedOp> OperationFor(std::string payment_id,
                                           std::vector<std::string_view> wanted) {
    ResolvedOp out;
    const std::vector<std::string_view>& rels = wanted;
    std::optional<Operation> found;
    if (auto* cached = Cached(payment_id)) {
      if (const Operation* op = FindOperation(*cached, rels)) {
        found = *op;
        ++stats_.cache_hits;
      }
    }
    if (!found) {
      auto t = IdTarget(payment_id);
      if (!t) {
        out.failure = Fail(ResultClass::kDefiniteFailure, BadCall("bad payment id"));
        co_return out;
      }
      Exchange ex = co_await Http(http::verb::get, *t, std::string(), false);
      Classified c = Classify(ex);
      if (c.result == ResultClass::kSuccess) {
        auto parsed = ParsePaymentBody(ex);
        if (!parsed) {
          c = ClassifyUnusableBody(ex, parsed.error);
        } else {
          Remember(parsed.value->snapshot.payment_id, parsed.value->operations);
          const auto& ops = parsed.value->operations;
          const Operation* op = FindOperation(ops, wanted);
          if (!op) {
            std::string want;
            for (std::string_view rel : wanted)
              want += (want.empty() ? "" : " or ") + std::string(rel);
            out.failure =
                Fail(ResultClass::kDefiniteFailure,
                     Problem{problem_type::kOperationNotOffered,
                             "operation not offered",
                             "PayEx does not offer " + want +
                                 " on this payment now (offered: " + OperationRels(ops) + ")",
                             0,
                             {}});
            co_return out;
          }
          found = *op;
        }
      }
      if (!found) {
        out.failure = Fail(c.result, c.problem.value_or(Problem{}));
        co_return out;
      }
    }
    auto t = SplitUrl(found->href);
    if (!t && !found->href.empty() && found->href.front() == '/') t = Target{base_, found->href};
    if (!t || !(t->origin == base_)) {
      // The bearer token goes to the configured origin only.
      out.failure =
          Fail(ResultClass::kDefiniteFailure,
               Problem{problem_type::kForeignHref,
                       "operation href outside the PayEx origin",
                       "the " + found->rel + " href does not point at " + base_.ToString(),
                       0,
                       {}});
      co_return out;
    }
    std::string method = found->method;
    for (char& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    out.verb = method == "PATCH" ? http::verb::patch
               : method == "PUT" ? http::verb::put
                                 : http::verb::post;
    out.target = std::move(t);
    co_return out;
  }

  // The operations of the latest payment resource, when young enough.
  const std::vector<Operation>* Cached(const std::string& payment_id) {
    if (opts_.operations_cache_ttl.count() <= 0) return nullptr;
    auto it = cache_.find(payment_id);
    if (it == cache_.end()) return nullptr;
    if (Clock::now() - it->second.at > opts_.operations_cache_ttl) return nullptr;
    return &it->second.ops;
  }

  void Remember(const std::string& payment_id, std::vector<Operation> ops) {
    if (opts_.operations_cache_ttl.count() <= 0 || opts_.operations_cache_size == 0) return;
    auto it = cache_.find(payment_id);
    if (it != cache_.end()) {
      lru_.erase(it->second.lru);
    } else {
      while (cache_.size() >= opts_.operations_cache_size && !lru_.empty()) {
        cache_.erase(lru_.back());
        lru_.pop_back();
      }
      it = cache_.emplace(payment_id, CacheEntry{}).first;
    }
    lru_.push_front(payment_id);
    it->second.lru = lru_.begin();
    it->second.ops = std::move(ops);
    it->second.at = Clock::now();
  }

  // ---- HTTP ------------------------------------------------------------------------

  asio::awaitable<Exchange> Http(http::verb verb, const Target& t, std::string body,
                                 bool effectful) {
    auto self = shared_from_this();
    const auto deadline = Clock::now() + opts_.request_timeout;
    for (int attempt = 0;; ++attempt) {
      Exchange ex;
      ex.effectful = effectful;
      std::string error;
      std::unique_ptr<Connection> conn = co_await Acquire(t.origin, deadline, error);
      if (!conn) {
        ex.transport = Transport::kNotSent;
        ex.error = error;
        co_return ex;
      }
      if (Clock::now() >= deadline) {  // handed over too late: nothing was sent
        bool connected = conn->connected;
        Release(std::move(conn), connected);
        ex.transport = Transport::kNotSent;
        ex.error = "deadline passed before sending";
        co_return ex;
      }
      if (!conn->connected) {
        if (!co_await Connect(*conn, deadline, error)) {
          Release(std::move(conn), false);
          ex.transport = Transport::kNotSent;
          ex.error = error;
          co_return ex;
        }
      }
      ++stats_.requests;
      bool reused = conn->uses > 0;
      if (reused) ++stats_.reuses;
      ++conn->uses;
      http::request<http::string_body> req{verb, t.target, 11};
      bool default_port = t.origin.port == (t.origin.tls ? "443" : "80");
      req.set(http::field::host,
              default_port ? t.origin.host : t.origin.host + ":" + t.origin.port);
      req.set(http::field::authorization, authorization_);
      req.set(http::field::accept, "application/problem+json; q=1.0, application/json; q=0.9");
      req.set(http::field::user_agent, opts_.user_agent);
      req.set("Session-Id", NewSessionId());
      if (verb != http::verb::get) {
        req.set(http::field::content_type, "application/json; charset=utf-8");
        req.body() = body;
      }
      req.prepare_payload();
      bool reusable = false, silent_close = false;
      if (conn->tls) {
        co_await Exchange1(*conn->tls, *conn, req, deadline, ex, reusable, silent_close);
      } else {
        co_await Exchange1(*conn->plain, *conn, req, deadline, ex, reusable, silent_close);
      }
      bool ok = ex.transport == Transport::kAnswered;
      Release(std::move(conn), ok && reusable);
      // A kept-alive connection the server had closed just before our request:
      // a read is safe to repeat once, on a new connection.
      if (!ok && silent_close && reused && !effectful && attempt == 0 && Clock::now() < deadline)
        continue;
      co_return ex;
    }
  }

  template <class Stream>
  asio::awaitable<void> Exchange1(Stream& stream, Connection& conn,
                                  http::request<http::string_body>& req, Clock::time_point deadline,
                                  Exchange& ex, bool& reusable, bool& silent_close) {
    conn.Lowest().expires_at(deadline);
    auto [wec, written] = co_await http::async_write(stream, req, kTuple);
    if (wec) {
      ex.transport =
          wec == beast::error::timeout ? Transport::kTimeoutAfterSend : Transport::kLostAfterSend;
      ex.error = "write: " + wec.message();
      silent_close = true;
      co_return;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(opts_.max_response_bytes);
    parser.header_limit(64 * 1024);
    auto [rec, read] = co_await http::async_read(stream, conn.buffer, parser, kTuple);
    if (rec) {
      if (rec == beast::error::timeout) {
        ex.transport = Transport::kTimeoutAfterSend;
      } else if (rec.category() == http::make_error_code(http::error::bad_method).category() &&
                 rec != http::error::partial_message && rec != http::error::end_of_stream) {
        // body_limit, header_limit and every syntax error of the answer
        ex.transport = Transport::kBadResponse;
      } else {
        ex.transport = Transport::kLostAfterSend;
        silent_close = !parser.got_some();
      }
      ex.error = "read: " + rec.message();
      co_return;
    }
    auto& res = parser.get();
    ex.transport = Transport::kAnswered;
    ex.status = static_cast<int>(res.result_int());
    ex.content_type = std::string(res[http::field::content_type]);
    ex.body = std::move(res.body());
    reusable = res.keep_alive() && !parser.need_eof();
  }

  asio::awaitable<bool> Connect(Connection& c, Clock::time_point deadline, std::string& error) {
    using namespace asio::experimental::awaitable_operators;
    auto connect_deadline = std::min(deadline, Clock::now() + opts_.connect_timeout);
    boost::system::error_code ec;
    std::vector<tcp::endpoint> endpoints;
    auto port = static_cast<unsigned short>(std::stoi(c.origin.port));
    auto addr = asio::ip::make_address(c.origin.host, ec);
    if (!ec) {
      endpoints.emplace_back(addr, port);
    } else {
      tcp::resolver resolver(ex_);
      asio::steady_timer timer(ex_, connect_deadline);
      auto which = co_await (resolver.async_resolve(c.origin.host, c.origin.port, kTuple) ||
                             timer.async_wait(kTuple));
      if (which.index() == 1) {
        error = "resolve " + c.origin.host + ": timed out";
        co_return false;
      }
      auto [rec, results] = std::get<0>(which);
      if (rec) {
        error = "resolve " + c.origin.host + ": " + rec.message();
        co_return false;
      }
      for (const auto& e : results) endpoints.push_back(e.endpoint());
    }
    if (c.origin.tls) {
      c.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex_, ssl_ctx_);
    } else {
      c.plain = std::make_unique<beast::tcp_stream>(ex_);
    }
    c.Lowest().expires_at(connect_deadline);
    auto [cec, ep] = co_await c.Lowest().async_connect(endpoints, kTuple);
    if (cec) {
      error = "connect " + c.origin.ToString() + ": " +
              (cec == beast::error::timeout ? std::string("timed out") : cec.message());
      co_return false;
    }
    c.Lowest().socket().set_option(tcp::no_delay(true), ec);
    if (c.tls) {
      boost::system::error_code hec;
      asio::ip::make_address(c.origin.host, hec);
      if (hec && !SSL_set_tlsext_host_name(c.tls->native_handle(), c.origin.host.c_str())) {
        error = "TLS: cannot set SNI";
        co_return false;
      }
      c.tls->set_verify_callback(ssl::host_name_verification(c.origin.host));
      auto [hsec] = co_await c.tls->async_handshake(ssl::stream_base::client, kTuple);
      if (hsec) {
        error = "TLS handshake with " + c.origin.ToString() + ": " + hsec.message();
        co_return false;
      }
    }
    c.connected = true;
    ++stats_.connects;
    co_return true;
  }

  // ---- the pool --------------------------------------------------------------------

  asio::awaitable<std::unique_ptr<Connection>> Acquire(const Origin& origin,
                                                       Clock::time_point deadline,
                                                       std::string& error) {
    for (;;) {
      if (closed_) {
        error = "client closed";
        co_return nullptr;
      }
      const auto now = Clock::now();
      for (size_t i = idle_.size(); i-- > 0;) {
        if (!(idle_[i]->origin == origin)) continue;
        std::unique_ptr<Connection> c = std::move(idle_[i]);
        idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
        if (now - c->idle_since > opts_.idle_timeout || !LooksAlive(*c)) {
          c->Close();
          --open_;
          continue;
        }
        co_return c;
      }
      if (open_ < opts_.max_connections) {
        ++open_;
        auto c = std::make_unique<Connection>();
        c->buffer.reserve(kReadBufferBytes);
        c->origin = origin;
        co_return c;
      }
      if (!idle_.empty()) {  // an idle connection to another origin makes room
        idle_.front()->Close();
        idle_.erase(idle_.begin());
        --open_;
        continue;
      }
      if (now >= deadline) {
        error = "no free connection before the deadline (max_connections=" +
                std::to_string(opts_.max_connections) + ")";
        co_return nullptr;
      }
      // Wait in line: a released connection (or its slot) is handed to the first
      // waiter, so a busy caller cannot starve the others.
      asio::steady_timer timer(ex_, deadline);
      Waiter w{&timer, origin, nullptr, false};
      waiters_.push_back(&w);
      co_await timer.async_wait(kTuple);
      auto it = std::find(waiters_.begin(), waiters_.end(), &w);
      if (it != waiters_.end()) waiters_.erase(it);
      if (w.conn) co_return std::move(w.conn);
      if (w.slot) {
        auto c = std::make_unique<Connection>();
        c->buffer.reserve(kReadBufferBytes);
        c->origin = origin;
        co_return c;
      }
    }
  }

  void Release(std::unique_ptr<Connection> c, bool reusable) {
    if (!waiters_.empty() && !closed_) {
      Waiter* w = waiters_.front();
      waiters_.pop_front();
      if (reusable && c->origin == w->origin) {
        c->idle_since = Clock::now();
        w->conn = std::move(c);
      } else {
        if (c->connected) c->Close();
        w->slot = true;  // the slot passes on: open_ stays as it is
      }
      w->timer->cancel();
      return;
    }
    if (reusable && !closed_) {
      c->idle_since = Clock::now();
      idle_.push_back(std::move(c));
    } else {
      if (c->connected) c->Close();
      --open_;
    }
  }

  void WakeAll() {
    while (!waiters_.empty()) {
      waiters_.front()->timer->cancel();
      waiters_.pop_front();
    }
  }

  void CloseIdle() {
    for (auto& c : idle_) {
      c->Close();
      --open_;
    }
    idle_.clear();
  }

  // ---- logging -----------------------------------------------------------------------

  void Log(const domain::PayexCall& call, const PayexResult& r) const {
    if (!opts_.log) return;
    std::string line = "event=payex.call kind=";
    line += KindName(call.kind);
    line += " call_id=" + std::to_string(call.call_id);
    line += " order_id=" + call.order_id;
    if (!call.payment_id.empty()) line += " payment_id=" + call.payment_id;
    if (!call.payee_reference.empty()) line += " payee_reference=" + call.payee_reference;
    if (!call.msisdn.empty()) line += " msisdn=" + domain::MaskMsisdn(call.msisdn);
    line += " result=";
    line += domain::ResultClassName(r.result);
    if (r.problem) {
      line += " problem_type=" + r.problem->type;
      if (r.problem->status) line += " status=" + std::to_string(r.problem->status);
    }
    line += " latency_us=" + std::to_string(r.latency_us);
    opts_.log(line);
  }

  struct CacheEntry {
    std::vector<Operation> ops;
    Clock::time_point at;
    std::list<std::string>::iterator lru;
  };

  asio::any_io_executor ex_;
  ClientOptions opts_;
  ssl::context ssl_ctx_;
  Origin base_;
  std::string base_path_;
  std::string authorization_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
  struct Waiter {
    asio::steady_timer* timer;
    Origin origin;
    std::unique_ptr<Connection> conn;  // handed over by Release
    bool slot;                         // or the right to open one
  };
  std::deque<Waiter*> waiters_;
  bool closed_ = false;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::list<std::string> lru_;
  PoolStats stats_;
};

}  // namespace detail

AsioClient::AsioClient(boost::asio::any_io_executor executor, ClientOptions options)
    : core_(std::make_shared<detail::ClientCore>(std::move(executor), std::move(options))) {}

AsioClient::~AsioClient() {
  if (core_) core_->Close();
}

boost::asio::awaitable<domain::PayexResult> AsioClient::Execute(domain::PayexCall call) {
  auto core = core_;
  co_return co_await core->Execute(std::move(call));
}

boost::asio::awaitable<PaymentResult> AsioClient::GetPayment(std::string payment_id,
                                                             std::string expand) {
  auto core = core_;
  co_return co_await core->GetPayment(std::move(payment_id), std::move(expand));
}

boost::asio::awaitable<ListResult> AsioClient::ListTransactions(std::string payment_id) {
  auto core = core_;
  co_return co_await core->ListTransactions(std::move(payment_id));
}

void AsioClient::Close() {
  core_->Close();
}

PoolStats AsioClient::Stats() const {
  return core_->Stats();
}

}  // namespace payorch::payex
