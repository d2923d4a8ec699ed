// payorch-demo: the demo behind scripts/run. Starts payex-sim and payorchd against a
// running broker, publishes a demo set of orders (one per scenario of the contract,
// plus a malformed message), prints every order event it publishes and every payment
// event payorchd answers with as a table row, then a summary per order.
// Threads: the main thread drives everything (publishing, printing, signals);
// kit::BusClient collects payment events on its own thread. Errors: start-up failures
// are exceptions caught in main (exit 1); usage errors exit 2.
#include <fstream>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bus/message.hpp"
#include "bus/topology.hpp"
#include "kit/kit.hpp"
#include "domain/decide.hpp"
#include "domain/types.hpp"

namespace {

using namespace payorch;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using domain::EventKind;
namespace fs = std::filesystem;

constexpr const char* kUsage =
    R"(payorch-demo - plays a demo set of orders through payorchd (what scripts/run runs)

Usage: payorch-demo [--once] [--timeout SECONDS]

  --once              exit when every demo order has its expected answers, the
                      simulator's ledger is clean and payorchd drains with exit 0
                      (exit 0); otherwise, after the timeout, name what is missing (exit 1)
  --timeout SECONDS   how long to wait for the answers (default 90)
  --help              this text

Needs a broker: $PAYORCH_AMQP_URL, else build/broker/url (scripts/broker start).
Starts payex-sim and payorchd from the build tree ($PAYORCH_BUILD_DIR, else the one
this binary is in), with their store and logs under <build>/demo/<run id>/ (the five
newest runs are kept) and exchanges and queues named demo.*.<run id> (deleted at exit).
Without --once it keeps payorchd serving after the demo until Ctrl-C or SIGTERM.
Exit codes: 0 as expected (or stopped cleanly), 1 failure, 2 usage, 130 interrupted (--once).
)";

// The simulator's payer delays (approve_delay = 2 s, decline_delay = 2 s) run at this
// scale: short, yet long enough to see the purchase wait for the payer.
constexpr const char* kTimeScale = "0.25";
constexpr const char* kApproveAfter = "0.5 s";  // approve_delay 2 s at kTimeScale
// payorchd gives the payer this long: the "timed out" order ends after it.
constexpr const char* kConfirmationTimeout = "6s";
constexpr size_t kRunsKept = 5;

struct Options {
  bool once = false;
  std::chrono::milliseconds timeout = 90s;
};

// nullopt: exit with `exit_code`.
std::optional<Options> ParseArgs(int argc, char** argv, int& exit_code) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      return std::nullopt;
    }
    if (arg == "--once") {
      o.once = true;
      continue;
    }
    if (arg == "--timeout" || arg.rfind("--timeout=", 0) == 0) {
      std::string v;
      if (arg == "--timeout") {
        if (i + 1 >= argc) {
          std::cerr << "payorch-demo: --timeout needs a number of seconds\n";
          exit_code = 2;
          return std::nullopt;
        }
        v = argv[++i];
      } else {
        v = arg.substr(10);
      }
      char* end = nullptr;
      double seconds = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(seconds > 0) || seconds > 3600) {
        std::cerr << "payorch-demo: --timeout '" << v
                  << "': expected seconds between 0 and 3600, e.g. --timeout 90\n";
        exit_code = 2;
        return std::nullopt;
      }
      o.timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
      continue;
    }
    std::cerr << "payorch-demo: unknown argument '" << arg << "' (try --help)\n";
    exit_code = 2;
    return std::nullopt;
  }
  return o;
}

// ---- signals --------------------------------------------------------------------------

volatile sig_atomic_t g_term = 0;
bool g_interrupted = false;

void OnTerm(int) {
  g_term = 1;
}

// Ctrl-C goes to the terminal's whole foreground group, payex-sim and payorchd
// included: the simulator would stop while payorchd still drains. So SIGINT stays
// blocked, here and in the children (a blocked mask survives fork and exec), and the
// demo stops them itself, payorchd first. SIGTERM gets a handler, which exec resets
// to the default: the children still stop on the SIGTERM the kit sends them.
// Must run before any thread is created, so that every thread inherits the mask.
void InstallSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnTerm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

bool StopRequested() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  timespec zero{0, 0};
  if (sigtimedwait(&set, nullptr, &zero) == SIGINT) g_interrupted = true;
  return g_interrupted || g_term != 0;
}

// ---- formatting ----------------------------------------------------------------------

bool g_color = false;

std::string Paint(const std::string& text, const char* code) {
  if (!g_color || text.empty()) return text;
  return std::string("\033[") + code + "m" + text + "\033[0m";
}
constexpr const char* kBold = "1";
constexpr const char* kDim = "2";
constexpr const char* kRed = "31";
constexpr const char* kGreen = "32";
constexpr const char* kYellow = "33";

// Terminal columns of UTF-8 text (→, ✓ and ✗ are one column, three bytes).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string Pad(const std::string& s, size_t width, bool right = false) {
  size_t w = Width(s);
  if (w >= width) return s;
  std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

std::string Money(int64_t minor) {
  char buf[32];
  int64_t a = minor < 0 ? -minor : minor;
  std::snprintf(buf, sizeof buf, "%s%lld.%02lld", minor < 0 ? "-" : "",
                static_cast<long long>(a / 100), static_cast<long long>(a % 100));
  return buf;
}

std::string Seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fs",
                std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000.0);
  return buf;
}

// "+4791234567" -> "+47****4567", as payorch logs them.
std::string MaskMsisdn(const std::string& msisdn) { return domain::MaskMsisdn(msisdn); }

// amqp://guest:guest@host/ -> amqp://guest:****@host/, each node of a cluster.
std::string MaskUrl(const std::string& urls) {
  const auto nodes = bus::BrokerUrls(urls);
  if (nodes.size() > 1) {
    std::string out;
    for (const auto& node : nodes) out += (out.empty() ? "" : ",") + MaskUrl(node);
    return out;
  }
  const std::string& url = urls;
  auto scheme = url.find("://");
  auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "****" + url.substr(at);
}

std::string Shorten(const std::string& s, size_t max) {
  if (Width(s) <= max) return s;
  std::string out;
  size_t w = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80 && ++w > max - 1) break;
    out.push_back(static_cast<char>(c));
  }
  return out + "…";
}

// "/psp/vipps/payments/2245bd5f-bb68-..." -> "2245bd5f…": enough to tell payments apart.
std::string ShortId(const std::string& path) {
  std::string last = path.substr(path.rfind('/') + 1);
  return last.size() > 8 ? last.substr(0, 8) + "…" : last;
}

const char* KindColor(EventKind kind) {
  switch (kind) {
    case EventKind::kAuthorized:
    case EventKind::kCaptured:
    case EventKind::kCancelled:
    case EventKind::kReversed: return kGreen;
    case EventKind::kAborted: return kYellow;
    default: return kRed;
  }
}

// The event table: one row per order event published (→) and per payment event received.
struct Row {
  std::string time, order, seq, event, amount, balance, cause, detail;
  const char* event_color = nullptr;
  bool dim = false;
};

void PrintTableHeader() {
  std::string line = Pad("TIME", 7, true) + "  " + Pad("ORDER", 14) + " " + Pad("SEQ", 3, true) +
                     "  " + Pad("EVENT", 21) + " " + Pad("AMOUNT", 8, true) + "  " +
                     Pad("CAPT/AUTH", 15, true) + "  " + Pad("ORDER EVENT", 12) + " DETAIL";
  std::cout << Paint(line, kBold) << "\n";
}

void PrintRow(const Row& r) {
  std::string event = Pad(r.event, 21);
  if (r.event_color) event = Paint(event, r.event_color);
  std::string line = Pad(r.time, 7, true) + "  " + Pad(r.order, 14) + " " + Pad(r.seq, 3, true) +
                     "  " + event + " " + Pad(r.amount, 8, true) + "  " + Pad(r.balance, 15, true) +
                     "  " + Pad(r.cause, 12) + " " + r.detail;
  if (r.dim) line = Paint(line, kDim);
  std::cout << line << "\n" << std::flush;
}

// ---- the demo orders -------------------------------------------------------------------

// The local part of an event id ("<order_id>:ship-s1" -> "ship-s1").
std::string LocalId(const std::string& event_id) {
  auto colon = event_id.rfind(':');
  return colon == std::string::npos ? event_id : event_id.substr(colon + 1);
}

// The demo's order events: the kit's builders with the demo's wording.
domain::OrderEvent Purchase(const std::string& order, int64_t amount, const std::string& msisdn) {
  return kit::Purchase(order, amount, msisdn, "payorch demo order");
}
domain::OrderEvent Cancelled(const std::string& order) {
  return kit::Cancelled(order, "customer changed their mind");
}
using kit::Msisdn;
using kit::Refund;
using kit::Shipped;

// One order event to publish once its precondition holds: the answer `after_kind`
// to the order's event `after` has arrived (none when `after` is empty), and then
// `delay` has passed since that answer or since the previous step, whichever is later.
struct Step {
  domain::OrderEvent event;
  std::string after;
  EventKind after_kind = EventKind::kAuthorized;
  std::chrono::milliseconds delay{0};
  std::optional<Clock::time_point> sent;
};

// One answer the order must get: to its event `cause`, of this kind (and failure
// code and amount, where given).
struct Expected {
  std::string cause;
  EventKind kind;
  std::string code;
  int64_t amount = -1;
};

struct Scenario {
  std::string name;   // the ORDER column
  std::string title;  // the summary
  std::string order_id;
  std::vector<Step> steps;
  std::vector<Expected> expected;
  std::map<std::string, kit::Received> events;  // by event_id: duplicates dropped
};

enum class Verdict { kPending, kOk, kFailed };

std::string Describe(const Expected& x) {
  std::string s = x.cause + "→" + domain::EventKindName(x.kind);
  if (!x.code.empty()) s += "(" + x.code + ")";
  if (x.amount >= 0) s += " " + Money(x.amount);
  return s;
}

std::string Describe(const domain::PaymentEvent& e) {
  std::string s = domain::EventKindName(e.kind);
  if (!e.failure.code.empty()) s += "(" + e.failure.code + ")";
  return s;
}

const kit::Received* AnswerTo(const Scenario& s, const std::string& local) {
  const kit::Received* best = nullptr;
  for (const auto& [id, r] : s.events)
    if (r.event.caused_by_event_id == s.order_id + ":" + local &&
        (!best || r.event.sequence < best->event.sequence))
      best = &r;
  return best;
}

bool Matches(const Expected& x, const domain::PaymentEvent& e) {
  return e.kind == x.kind && (x.code.empty() || e.failure.code == x.code) &&
         (x.amount < 0 || e.amount == x.amount);
}

// Ok: every expected answer arrived as expected, nothing else arrived, and the
// sequences run 1..n. Failed: an answer or an event that should not be there.
Verdict Judge(const Scenario& s, std::vector<std::string>* problems = nullptr) {
  bool pending = false, failed = false;
  std::set<std::string> causes;
  for (const auto& x : s.expected) {
    causes.insert(s.order_id + ":" + x.cause);
    const kit::Received* got = AnswerTo(s, x.cause);
    if (!got) {
      pending = true;
      if (problems) problems->push_back(Describe(x) + ": missing");
    } else if (!Matches(x, got->event)) {
      failed = true;
      if (problems)
        problems->push_back(Describe(x) + ": got " + Describe(got->event) + " " +
                            Money(got->event.amount));
    }
  }
  std::set<uint64_t> seqs;
  for (const auto& [id, r] : s.events) {
    seqs.insert(r.event.sequence);
    if (!causes.count(r.event.caused_by_event_id)) {
      failed = true;
      if (problems)
        problems->push_back("unexpected #" + std::to_string(r.event.sequence) + " " +
                            Describe(r.event) + " for " + LocalId(r.event.caused_by_event_id));
    }
  }
  if (!seqs.empty() && (*seqs.begin() != 1 || *seqs.rbegin() != seqs.size())) {
    pending = true;
    if (problems)
      problems->push_back("sequence gap: " + std::to_string(seqs.size()) + " events up to #" +
                          std::to_string(*seqs.rbegin()));
  }
  if (failed) return Verdict::kFailed;
  return pending ? Verdict::kPending : Verdict::kOk;
}

// A step sent as soon as the previous one was (plus `delay`), and one that waits for
// the answer `kind` to the order's event `local`.
Step Now(domain::OrderEvent event, std::chrono::milliseconds delay = 0ms) {
  return {std::move(event), "", EventKind::kAuthorized, delay, {}};
}
Step After(const std::string& local, EventKind kind, domain::OrderEvent event,
           std::chrono::milliseconds delay = 0ms) {
  return {std::move(event), local, kind, delay, {}};
}

std::vector<Scenario> DemoOrders(const std::string& run_id) {
  using K = EventKind;
  std::vector<Scenario> out;
  auto add = [&](const std::string& name, const std::string& title) -> Scenario& {
    out.push_back({name, title, "demo-" + run_id + "-" + name, {}, {}, {}});
    return out.back();
  };
  {
    Scenario& s = add("approved", "the payer approves; shipped in full");
    s.steps = {Now(Purchase(s.order_id, 10000, "+4791234567")),
               After("purchase", K::kAuthorized, Shipped(s.order_id, "s1", 10000))};
    s.expected = {{"purchase", K::kAuthorized, "", 10000}, {"ship-s1", K::kCaptured, "", 10000}};
  }
  {
    Scenario& s = add("msisdn-later", "no number at first; it comes 1 s later");
    s.steps = {Now(Purchase(s.order_id, 4900, "")), Now(Msisdn(s.order_id, "+4791234568"), 1s)};
    s.expected = {{"purchase", K::kAuthorized, "", 4900}, {"msisdn", K::kAuthorized, "", 4900}};
  }
  {
    Scenario& s = add("declined", "the payer declines in the Vipps app");
    s.steps = {Now(Purchase(s.order_id, 7500, "+4799999989"))};
    s.expected = {{"purchase", K::kAuthorizationFailed, "declined"}};
  }
  {
    Scenario& s =
        add("timed-out", std::string("the payer never answers (payorchd gives up after ") +
                             kConfirmationTimeout + ")");
    s.steps = {Now(Purchase(s.order_id, 12000, "+4799999990"))};
    s.expected = {{"purchase", K::kAuthorizationFailed, "timed_out"}};
  }
  {
    Scenario& s = add("partly-shipped", "shipped in two parts");
    s.steps = {Now(Purchase(s.order_id, 30000, "+4791234569")),
               After("purchase", K::kAuthorized, Shipped(s.order_id, "s1", 10000)),
               After("ship-s1", K::kCaptured, Shipped(s.order_id, "s2", 20000), 500ms)};
    s.expected = {{"purchase", K::kAuthorized, "", 30000},
                  {"ship-s1", K::kCaptured, "", 10000},
                  {"ship-s2", K::kCaptured, "", 20000}};
  }
  {
    Scenario& s = add("cancelled", "shipped in part, then cancelled: the rest released");
    s.steps = {Now(Purchase(s.order_id, 25000, "+4791234570")),
               After("purchase", K::kAuthorized, Shipped(s.order_id, "s1", 10000)),
               After("ship-s1", K::kCaptured, Cancelled(s.order_id), 500ms)};
    s.expected = {{"purchase", K::kAuthorized, "", 25000},
                  {"ship-s1", K::kCaptured, "", 10000},
                  {"cancel", K::kCancelled, "", 15000}};
  }
  {
    Scenario& s = add("refunded", "shipped in full, then part refunded");
    s.steps = {Now(Purchase(s.order_id, 20000, "+4791234571")),
               After("purchase", K::kAuthorized, Shipped(s.order_id, "s1", 20000)),
               After("ship-s1", K::kCaptured, Refund(s.order_id, "r1", 5000), 500ms)};
    s.expected = {{"purchase", K::kAuthorized, "", 20000},
                  {"ship-s1", K::kCaptured, "", 20000},
                  {"refund-r1", K::kReversed, "", 5000}};
  }
  return out;
}

// The malformed message: a body that is not protobuf, declared as protobuf.
struct Malformed {
  std::string name = "malformed";
  std::string title = "a body that is not protobuf (order.purchase_requested)";
  std::string message_id;
  std::string expected_reason = "malformed_body";
  std::optional<Clock::time_point> sent;
  std::optional<std::string> reason;  // x-payorch-error once it is in the dead-letter queue
  std::string detail;
  Clock::time_point next_check{};
};

Row PublishedRow(const Scenario& s, const domain::OrderEvent& e, Clock::duration t) {
  Row r;
  r.time = Seconds(t);
  r.order = s.name;
  r.seq = "→";
  r.event = domain::OrderEventKindName(e.kind);
  r.cause = LocalId(e.event_id);
  r.dim = true;
  if (auto* p = std::get_if<domain::PurchaseRequested>(&e.kind)) {
    r.amount = Money(p->amount);
    r.detail = p->msisdn.empty() ? "no msisdn yet" : "msisdn " + MaskMsisdn(p->msisdn);
  } else if (auto* m = std::get_if<domain::PayerMsisdnProvided>(&e.kind)) {
    r.detail = "msisdn " + MaskMsisdn(m->msisdn);
  } else if (auto* sh = std::get_if<domain::OrderShipped>(&e.kind)) {
    r.amount = Money(sh->amount);
    r.detail = "shipment " + sh->shipment_id;
  } else if (auto* c = std::get_if<domain::OrderCancelled>(&e.kind)) {
    r.detail = "reason: " + c->reason;
  } else if (auto* rf = std::get_if<domain::RefundRequested>(&e.kind)) {
    r.amount = Money(rf->amount);
    r.detail = "refund " + rf->refund_id;
  }
  return r;
}

Row ReceivedRow(const std::string& order_name, const kit::Received& got, Clock::duration t) {
  const domain::PaymentEvent& e = got.event;
  Row r;
  r.time = Seconds(t);
  r.order = order_name;
  r.seq = std::to_string(e.sequence);
  r.event = domain::EventKindName(e.kind);
  r.event_color = KindColor(e.kind);
  bool has_amount = e.kind == EventKind::kAuthorized || e.kind == EventKind::kCaptured ||
                    e.kind == EventKind::kCancelled || e.kind == EventKind::kReversed;
  if (has_amount) r.amount = Money(e.amount);
  r.balance = Money(e.balance.captured) + "/" + Money(e.balance.authorized);
  r.cause = LocalId(e.caused_by_event_id);
  if (!e.failure.code.empty()) {
    r.detail = e.failure.code + ": " + Shorten(e.failure.message, 60);
  } else if (!e.shipment_id.empty()) {
    r.detail = "shipment " + e.shipment_id;
  } else if (!e.refund_id.empty()) {
    r.detail = "refund " + e.refund_id + ", reversed in all " + Money(e.balance.reversed);
  } else if (e.kind == EventKind::kCancelled) {
    r.detail = "released, cancelled in all " + Money(e.balance.cancelled);
  } else if (!e.reason.empty()) {
    r.detail = e.reason;
  }
  if (r.detail.empty() && !e.payment_id.empty()) r.detail = "payment " + ShortId(e.payment_id);
  return r;
}

// ---- where things live -----------------------------------------------------------------

// The build tree: $PAYORCH_BUILD_DIR, else the directory above this binary that has
// CMakeCache.txt (the kit finds payex-sim and payorchd the same way).
fs::path BuildRoot() {
  if (const char* b = std::getenv("PAYORCH_BUILD_DIR"); b && *b) return fs::absolute(b);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path p = exe.parent_path(); !ec && !p.empty() && p != p.root_path(); p = p.parent_path())
    if (fs::exists(p / "CMakeCache.txt")) return p;
  return fs::current_path();
}

// "20261124-153012-3fa9": sorts by time, and two runs in one second still differ.
std::string NewRunId() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return std::string(buf) + "-" + kit::RandomSuffix().substr(0, 4);
}

// Keeps the newest runs' directories (stores and logs), removes older ones.
void PruneRuns(const fs::path& base, size_t keep) {
  std::error_code ec;
  std::vector<fs::path> runs;
  for (const auto& entry : fs::directory_iterator(base, ec))
    if (entry.is_directory()) runs.push_back(entry.path());
  if (runs.size() <= keep) return;
  std::sort(runs.begin(), runs.end());
  for (size_t i = 0; i + keep < runs.size(); ++i) fs::remove_all(runs[i], ec);
}

bus::BusConfig DemoBusConfig(const std::string& url, const std::string& run_id) {
  bus::BusConfig c = kit::UniqueBusConfig(url, run_id);
  c.topology.orders_exchange = "demo.orders." + run_id;
  c.topology.orders_queue = "demo.orders." + run_id;
  c.topology.dead_letter_exchange = "demo.orders.dlx." + run_id;
  c.topology.dead_letter_queue = "demo.orders.dead." + run_id;
  c.topology.payments_exchange = "demo.payments." + run_id;
  return c;
}

// ---- the run ---------------------------------------------------------------------------

class Demo {
 public:
  explicit Demo(Options options) : options_(options) {}

  int Run() {
    run_id_ = NewRunId();
    fs::path base = BuildRoot() / "demo";
    work_dir_ = (base / run_id_).string();
    fs::create_directories(work_dir_);
    PruneRuns(base, kRunsKept);
    bus_config_ = DemoBusConfig(kit::BrokerUrl(), run_id_);

    StartAll();
    PrintHeader();
    int code = Play();
    return Stop(code);
  }

  // Stops whatever is still running when Run() threw.
  void Abandon() {
    if (daemon_ && daemon_->Running()) daemon_->Term(20s);
    client_.reset();
    sim_.reset();
    DeleteTopology();
  }
  std::string LogTail() const { return daemon_ ? daemon_->LogTail(30) : std::string(); }

 private:
  void StartAll() {
    std::vector<std::string> sim_args = {"--time-scale", kTimeScale};
    sim_ = std::make_unique<kit::Simulator>(work_dir_, sim_args);
    client_ = std::make_unique<kit::BusClient>(bus_config_);
    kit::DaemonOptions o;
    o.work_dir = work_dir_;
    o.bus = bus_config_;
    o.payex_url = sim_->url();
    o.log_level = "info";
    o.overrides = {std::string("payments.confirmation_timeout=") + kConfirmationTimeout,
                   "payments.msisdn_timeout=60s",
                   "payments.first_poll=300ms",
                   "payments.poll_max=1s",
                   "payments.slow_poll=2s",
                   "payments.backoff_base=100ms",
                   "payments.backoff_cap=2s",
                   "payments.call_watchdog=5s",
                   "payex.request_timeout=2s",
                   "payex.connect_timeout=1s"};
    daemon_ = std::make_unique<kit::Daemon>(o);
    daemon_->Start();
    admin_ = std::make_unique<bus::Admin>(bus_config_, "payorch demo");
    WriteCtlConfig();
  }

  // A payorchctl configuration for this run: its store, broker, topology names and
  // admin port (every other setting at its default), so that no name is typed by hand.
  void WriteCtlConfig() {
    const auto& t = bus_config_.topology;
    ctl_config_ = work_dir_ + "/payorchctl.toml";
    std::ofstream f(ctl_config_);
    auto q = [](const std::string& v) {  // a TOML basic string
      std::string out = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      return out + "\"";
    };
    f << "# payorchctl's view of the demo run " << run_id_ << " (written by the demo)\n"
      << "[store]\npath = " << q(daemon_->store_path()) << "\n"
      << "[bus]\nurl = " << q(bus_config_.url) << "\n"
      << "[bus.topology]\norders_exchange = " << q(t.orders_exchange)
      << "\norders_queue = " << q(t.orders_queue)
      << "\ndead_letter_exchange = " << q(t.dead_letter_exchange)
      << "\ndead_letter_queue = " << q(t.dead_letter_queue)
      << "\npayments_exchange = " << q(t.payments_exchange) << "\n"
      << "[admin]\nport = " << daemon_->admin_port() << "\n";
  }

  void PrintHeader() {
    const auto& t = bus_config_.topology;
    auto label = [](const std::string& s) { return Paint(Pad(s, 10), kBold); };
    std::cout << Paint("payorch demo", kBold) << ", run " << run_id_ << "\n"
              << label("broker") << MaskUrl(bus_config_.url) << "  orders → " << t.orders_exchange
              << ", answers ← " << t.payments_exchange << ", dead letters in "
              << t.dead_letter_queue << "\n"
              << label("payex-sim") << sim_->url() << "  at time scale " << kTimeScale
              << " (the payer approves after " << kApproveAfter << ")\n"
              << label("payorchd") << "pid " << daemon_->process().pid()
              << ", callbacks and metrics on http://127.0.0.1:" << daemon_->http_port()
              << ", admin on :" << daemon_->admin_port() << ", payer deadline "
              << kConfirmationTimeout << "\n"
              << label("files") << "log " << daemon_->log_path() << "\n"
              << label("") << "store " << daemon_->store_path() << "\n"
              << label("") << "simulator log " << work_dir_ << "/payex-sim.log\n"
              << label("operate") << "build/src/ctl/payorchctl --config " << ctl_config_
              << " payment list\n\n"
              << "Order ids are demo-" << run_id_ << "-<ORDER>; amounts in NOK. Rows with → are "
              << "order events the demo published;\nnumbered rows are payorchd's payment events "
              << "(SEQ per order), answering the ORDER EVENT named.\n\n";
    PrintTableHeader();
  }

  // Publishes the demo orders, each follow-up once its precondition arrived, and
  // prints what comes back, until every order is settled (or the bound, or a signal).
  int Play() {
    scenarios_ = DemoOrders(run_id_);
    malformed_.message_id = "demo-" + run_id_ + "-malformed:garbage";
    t0_ = Clock::now();
    auto deadline = t0_ + options_.timeout;
    bool summarized = false;
    size_t seen = 0;
    for (;;) {
      if (StopRequested()) break;
      client_->WaitUntil([&](const std::vector<kit::Received>& all) { return all.size() > seen; },
                         50ms);
      std::vector<kit::Received> all = client_->Events();
      for (; seen < all.size(); ++seen) Take(all[seen]);
      Advance();
      CheckDeadLetters();
      if (summarized) continue;
      bool settled = Settled();
      if (!settled && Clock::now() < deadline) continue;
      summarized = true;
      PrintSummary();
      if (options_.once) return settled && AllOk() ? 0 : 1;
      PrintServing(settled);
    }
    if (!summarized) PrintSummary();
    return options_.once ? 130 : 0;
  }

  void Take(const kit::Received& got) {
    for (auto& s : scenarios_) {
      if (got.event.order_id != s.order_id) continue;
      if (!s.events.emplace(got.event.event_id, got).second) return;  // a duplicate delivery
      PrintRow(ReceivedRow(s.name, got, got.at - t0_));
      return;
    }
  }

  void Advance() {
    auto now = Clock::now();
    for (auto& s : scenarios_) {
      Clock::time_point previous = t0_;
      for (auto& step : s.steps) {
        if (step.sent) {
          previous = *step.sent;
          continue;
        }
        Clock::time_point ready = previous;
        if (!step.after.empty()) {
          const kit::Received* answer = AnswerTo(s, step.after);
          if (!answer || answer->event.kind != step.after_kind) break;
          ready = std::max(ready, answer->at);
        }
        if (now < ready + step.delay) break;
        client_->Publish(step.event);
        step.sent = Clock::now();
        PrintRow(PublishedRow(s, step.event, *step.sent - t0_));
        break;  // one step per order per round: the next waits for its answer anyway
      }
    }
    if (!malformed_.sent) {
      client_->PublishRaw("order.purchase_requested", "\xff\x01garbage", "application/x-protobuf",
                          malformed_.message_id);
      malformed_.sent = Clock::now();
      Row r;
      r.time = Seconds(*malformed_.sent - t0_);
      r.order = malformed_.name;
      r.seq = "→";
      r.event = "(not protobuf)";
      r.cause = LocalId(malformed_.message_id);
      r.detail = "9 bytes as application/x-protobuf on order.purchase_requested";
      r.dim = true;
      PrintRow(r);
    }
  }

  // The dead-letter queue is read without taking anything: Peek holds the messages on
  // a channel of its own and closing it puts them back.
  void CheckDeadLetters() {
    if (!malformed_.sent || malformed_.reason || Clock::now() < malformed_.next_check) return;
    malformed_.next_check = Clock::now() + 200ms;
    const std::string& queue = bus_config_.topology.dead_letter_queue;
    if (admin_->QueueDepth(queue).value_or(0) == 0) return;
    for (const auto& m : admin_->Peek(queue, 10)) {
      if (m.properties.message_id != malformed_.message_id) continue;
      malformed_.reason = bus::HeaderString(m.properties.headers, "x-payorch-error").value_or("?");
      malformed_.detail = bus::HeaderString(m.properties.headers, "x-payorch-detail").value_or("");
    }
    if (!malformed_.reason) return;
    Row r;
    r.time = Seconds(Clock::now() - t0_);
    r.order = malformed_.name;
    r.seq = "DLQ";
    r.event = "dead-lettered";
    r.event_color = *malformed_.reason == malformed_.expected_reason ? kYellow : kRed;
    r.cause = LocalId(malformed_.message_id);
    r.detail = "x-payorch-error=" + *malformed_.reason + ": " + Shorten(malformed_.detail, 70);
    PrintRow(r);
  }

  bool Settled() const {
    for (const auto& s : scenarios_)
      if (Judge(s) == Verdict::kPending) return false;
    return malformed_.reason.has_value();
  }

  bool AllOk() const {
    for (const auto& s : scenarios_)
      if (Judge(s) != Verdict::kOk) return false;
    return malformed_.reason == malformed_.expected_reason;
  }

  void PrintSummary() {
    std::cout << "\n"
              << Paint("Summary after " + Seconds(Clock::now() - t0_) +
                           ": the answers each demo order expects",
                       kBold)
              << "\n";
    for (const auto& s : scenarios_) {
      Verdict v = Judge(s);
      std::string mark = v == Verdict::kOk ? Paint("✓", kGreen) : Paint("✗", kRed);
      std::string answers;
      for (const auto& x : s.expected) {
        const kit::Received* got = AnswerTo(s, x.cause);
        std::string item = Describe(x);
        if (!got) {
          item = Paint(item + " (missing)", kRed);
        } else if (!Matches(x, got->event)) {
          item = Paint(
              item + " (got " + Describe(got->event) + " " + Money(got->event.amount) + ")", kRed);
        }
        answers += (answers.empty() ? "" : ", ") + item;
      }
      std::cout << "  " << mark << " " << Pad(s.name, 15) << Pad(s.title, 53) << " " << answers
                << "\n";
      if (v != Verdict::kOk) {
        std::vector<std::string> problems;
        Judge(s, &problems);
        // Missing and wrong answers are marked in the line above; the rest come here.
        for (const auto& p : problems)
          if (p.rfind("unexpected", 0) == 0 || p.rfind("sequence", 0) == 0)
            std::cout << "      " << Paint(p, kRed) << "\n";
      }
    }
    bool ok = malformed_.reason == malformed_.expected_reason;
    std::string got = !malformed_.reason
                          ? " (not in " + bus_config_.topology.dead_letter_queue + ")"
                      : ok ? ""
                           : " (got " + *malformed_.reason + ")";
    std::string what = "dead-lettered(" + malformed_.expected_reason + ")" + got;
    std::cout << "  " << (ok ? Paint("✓", kGreen) : Paint("✗", kRed)) << " "
              << Pad(malformed_.name, 15) << Pad(malformed_.title, 53) << " "
              << (ok ? what : Paint(what, kRed)) << "\n"
              << std::flush;
  }

  void PrintServing(bool settled) {
    std::cout << "\n";
    if (!settled)
      std::cout << Paint("Not every demo order got its answers within " +
                             Seconds(options_.timeout) + " (see above).",
                         kRed)
                << "\n";
    std::cout << "payorchd keeps serving. Meanwhile:\n"
              << "  curl -s http://127.0.0.1:" << daemon_->http_port()
              << "/metrics      the metrics (also /healthz, /readyz)\n"
              << "  tail -f " << daemon_->log_path() << "\n"
              << "Ctrl-C stops payorchd (it drains), then payex-sim.\n"
              << std::flush;
  }

  // Stops payorchd (SIGTERM: it drains, exit 0), then the simulator, and deletes the
  // run's exchanges and queues. With --once the ledger and the drain decide too.
  int Stop(int code) {
    std::cout << "\n";
    if (g_interrupted || g_term) std::cout << (g_term ? "SIGTERM" : "Ctrl-C") << " received. ";
    std::cout << "Stopping payorchd (SIGTERM: it drains)" << std::flush;
    auto daemon_exit = daemon_->Term(30s);
    if (!daemon_exit) {
      daemon_->Kill();
      std::cout << ": " << Paint("did not exit within 30 s; killed", kRed) << "\n";
    } else {
      std::cout << ": "
                << (*daemon_exit == 0 ? "drained, exit 0"
                                      : Paint("exit " + std::to_string(*daemon_exit), kRed))
                << "\n";
    }
    // The ledger after the drain: whatever payorchd finished on its way out counts too.
    std::string ledger;
    bool ledger_ok = sim_->LedgerOk(&ledger);
    client_.reset();
    sim_.reset();
    std::cout << "Stopped payex-sim";
    DeleteTopology();
    std::cout << "; deleted the run's exchanges and queues; logs and store kept in " << work_dir_
              << "\n";
    bool drained = daemon_exit && *daemon_exit == 0;
    std::cout << "payex-sim ledger: "
              << (ledger_ok ? "ok (no money-rule violation, no payeeReference applied twice)"
                            : Paint("VIOLATIONS " + ledger, kRed))
              << "\n";
    if (options_.once) {
      if (code == 0 && ledger_ok && drained) {
        std::cout << Paint("demo passed", kGreen) << ": every demo order got its expected answers"
                  << "\n";
        return 0;
      }
      if (code == 130) {
        std::cerr << "payorch-demo: interrupted before every demo order was answered\n";
        return 130;
      }
      std::cerr << "payorch-demo: FAILED\n";
      for (const auto& s : scenarios_) {
        std::vector<std::string> problems;
        if (Judge(s, &problems) == Verdict::kOk) continue;
        for (const auto& p : problems) std::cerr << "  " << s.name << ": " << p << "\n";
      }
      if (malformed_.reason != malformed_.expected_reason)
        std::cerr << "  malformed: expected in " << bus_config_.topology.dead_letter_queue
                  << " with x-payorch-error=" << malformed_.expected_reason << ", "
                  << (malformed_.reason ? "got " + *malformed_.reason : std::string("not there"))
                  << "\n";
      if (!ledger_ok) std::cerr << "  payex-sim ledger: " << ledger << "\n";
      if (!drained) std::cerr << "  payorchd did not drain with exit 0\n";
      std::cerr << "the end of " << daemon_->log_path() << ":\n" << daemon_->LogTail(30) << "\n";
      return 1;
    }
    std::cout << "Stopped.\n";
    return drained ? 0 : 1;
  }

  void DeleteTopology() {
    admin_.reset();
    try {
      bus::Admin admin(bus_config_, "payorch demo cleanup");
      admin.DeleteTopology(bus_config_.topology);
    } catch (const std::exception& e) {
      std::cerr << "payorch-demo: could not delete the demo's exchanges and queues: " << e.what()
                << "\n";
    }
  }

  Options options_;
  std::string run_id_;
  std::string work_dir_;
  bus::BusConfig bus_config_;
  std::unique_ptr<kit::Simulator> sim_;
  std::unique_ptr<kit::BusClient> client_;
  std::unique_ptr<kit::Daemon> daemon_;
  std::string ctl_config_;  // payorchctl's configuration for this run
  std::unique_ptr<bus::Admin> admin_;
  std::vector<Scenario> scenarios_;
  Malformed malformed_;
  Clock::time_point t0_;
};

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  auto options = ParseArgs(argc, argv, exit_code);
  if (!options) return exit_code;
  InstallSignals();
  g_color = ::isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  // The demo's own bus links are not news to the user: keep their lines out of the table.
  bus::SetLogSink([](std::string_view) {});
  Demo demo(*options);
  try {
    return demo.Run();
  } catch (const std::exception& e) {
    std::cerr << "payorch-demo: " << e.what() << "\n";
    std::string tail = demo.LogTail();
    demo.Abandon();
    if (!tail.empty()) std::cerr << "the end of payorchd's log:\n" << tail << "\n";
    return 1;
  }
}
