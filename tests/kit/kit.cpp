#include "kit/kit.hpp"

#include "ctl/admin_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "bus/subscriber.hpp"
#include "bus/topology.hpp"
#include "codec/codec.hpp"

extern char** environ;

namespace payorch::kit {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---- processes ------------------------------------------------------------------

Process Process::Start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::string& log_file) {
  if (argv.empty()) throw std::invalid_argument("Process::Start: empty argv");
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& kv : env) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(envs, [&](const std::string& s) { return s.rfind(key + "=", 0) == 0; });
    envs.push_back(kv);
  }
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int log_fd = -1;
  if (!log_file.empty()) {
    log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot open log file " + log_file);
  }
  // A pipe with CLOEXEC tells the parent whether exec succeeded.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    // A child never outlives its test or demo, even one killed by a timeout.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) ::_exit(127);
    ::execve(cargv[0], cargv.data(), cenv.data());
    int err = errno;
    (void)!::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(report[1]);
  if (log_fd >= 0) ::close(log_fd);
  int err = 0;
  ssize_t n = ::read(report[0], &err, sizeof err);
  ::close(report[0]);
  Process p;
  p.pid_ = pid;
  if (n == static_cast<ssize_t>(sizeof err)) {
    p.Wait(5s);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(err));
  }
  return p;
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && Running()) {
      Signal(SIGKILL);
      Wait(10s);
    }
    pid_ = o.pid_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}
Process::~Process() {
  if (pid_ > 0 && Running()) {
    Signal(SIGKILL);
    Wait(10s);
  }
}

bool Process::Running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return r == 0;
}

void Process::Signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Process::Wait(std::chrono::milliseconds bound) {
  WaitFor([this] { return !Running(); }, bound);
  return status_;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds bound) {
  auto until = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return done();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string FindBinary(const std::string& name) {
  std::vector<fs::path> roots;
  if (const char* b = std::getenv("PAYORCH_BUILD_DIR"); b && *b) roots.emplace_back(b);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  // Walk up from the running binary to the build tree's root (it has CMakeCache.txt).
  for (fs::path p = exe.parent_path(); !ec && !p.empty() && p != p.root_path();
       p = p.parent_path()) {
    if (fs::exists(p / "CMakeCache.txt")) {
      roots.push_back(p);
      break;
    }
  }
  for (const auto& root : roots) {
    for (const char* sub : {"src/sim", "src/app", "src/ctl", "tests/kit", "bench", "examples", ""}) {
      fs::path candidate = root / sub / name;
      if (fs::exists(candidate)) return candidate.string();
    }
  }
  throw std::runtime_error("cannot find the " + name +
                           " binary: build it (cmake --build build) or set PAYORCH_BUILD_DIR");
}

// ---- HTTP ---------------------------------------------------------------------------

HttpResult HttpCall(const std::string& host, uint16_t port, const std::string& method,
                    const std::string& target, const std::string& body,
                    std::chrono::milliseconds timeout) {
  // payorch's one blocking client (payorchctl's), so that tests and the CLI share it.
  HttpResult out;
  try {
    ctl::AdminClient client(host, port, timeout, "the server");
    ctl::HttpResponse r = client.Request(method, target, body);
    out.status = r.status;
    out.body = std::move(r.body);
  } catch (const ctl::AdminError& e) {
    out.error = e.what();
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free loopback port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// ---- payex-sim ------------------------------------------------------------------------

namespace {

std::string SourceDir() {
#ifdef PAYORCH_SOURCE_DIR
  return PAYORCH_SOURCE_DIR;
#else
  return ".";
#endif
}

std::string Tail(const std::string& path, size_t lines) {
  std::string all = ReadFile(path);
  size_t pos = all.size(), n = 0;
  while (pos > 0 && n <= lines) {
    pos = all.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
    ++n;
  }
  return all.substr(pos);
}

}  // namespace

Simulator::Simulator(const std::string& work_dir, const std::vector<std::string>& args) {
  fs::create_directories(work_dir);
  std::string port_file = work_dir + "/payex-sim.port";
  fs::remove(port_file);
  std::vector<std::string> argv = {FindBinary("payex-sim"), "--config",
                                   SourceDir() + "/config/payex-sim.toml", "--port", "0",
                                   "--port-file", port_file};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log = work_dir + "/payex-sim.log";
  process_ = Process::Start(argv, {}, log);
  bool up = WaitFor(
      [&] {
        std::string s = ReadFile(port_file);
        if (!s.empty() && s.back() == '\n') port_ = static_cast<uint16_t>(std::atoi(s.c_str()));
        return port_ != 0 || !process_.Running();
      },
      20s);
  if (!up || port_ == 0)
    throw std::runtime_error("payex-sim did not start; its log (" + log + "):\n" + Tail(log, 20));
}

Simulator::~Simulator() {
  process_.Signal(SIGTERM);
  if (!process_.Wait(5s)) process_.Signal(SIGKILL);
}

HttpResult Simulator::Admin(const std::string& method, const std::string& target,
                            const std::string& body) {
  return HttpCall("127.0.0.1", port_, method, target, body);
}

bool Simulator::LedgerOk(std::string* body) {
  HttpResult r = Admin("GET", "/admin/ledger");
  if (body) *body = r.body;
  return r.status == 200 && r.body.find("\"ok\":true") != std::string::npos;
}

// ---- payorchd -------------------------------------------------------------------------

std::vector<std::string> DaemonEnvironment() {
  return {"PAYORCH_PAYEX_TOKEN=payex-sim-token",
          std::string("PAYORCH_CALLBACK_SECRET=") + kCallbackSecret};
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {
  if (options_.config.empty()) options_.config = SourceDir() + "/config/payorch.toml";
  fs::create_directories(options_.work_dir);
}

Daemon::~Daemon() {
  if (process_.Running()) {
    process_.Signal(SIGTERM);
    if (!process_.Wait(20s)) Kill();
  }
}

void Daemon::Start(std::chrono::milliseconds bound) {
  std::string ready = options_.work_dir + "/payorchd.ready";
  fs::remove(ready);
  const bus::Topology& t = options_.bus.topology;
  std::vector<std::string> sets = {
      "store.path=" + store_path(),
      "bus.url=" + options_.bus.url,
      "bus.topology.orders_exchange=" + t.orders_exchange,
      "bus.topology.orders_queue=" + t.orders_queue,
      "bus.topology.dead_letter_exchange=" + t.dead_letter_exchange,
      "bus.topology.dead_letter_queue=" + t.dead_letter_queue,
      "bus.topology.payments_exchange=" + t.payments_exchange,
      "bus.reconnect_min=50ms",
      "bus.reconnect_max=1s",
      "http.port=0",
      "http.callback_base_url=http://127.0.0.1:0/callbacks/payex",
      "admin.port=0",
      "payex.base_url=" + options_.payex_url,
      "payex.allow_plain_http=true",
      "payex.payee_id=5cabf558-5283-482f-b252-4d58e06f6f3b",
      "log.level=" + options_.log_level,
  };
  sets.insert(sets.end(), options_.overrides.begin(), options_.overrides.end());
  std::vector<std::string> argv = {FindBinary("payorchd"), "--config", options_.config,
                                   "--ready-file", ready};
  for (const auto& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  process_ = Process::Start(argv, DaemonEnvironment(), log_path());
  http_port_ = admin_port_ = 0;
  bool up = WaitFor(
      [&] {
        if (!process_.Running()) return true;
        std::ifstream f(ready);
        std::string line;
        while (std::getline(f, line)) {
          if (line.rfind("http_port=", 0) == 0) http_port_ = std::atoi(line.c_str() + 10);
          if (line.rfind("admin_port=", 0) == 0) admin_port_ = std::atoi(line.c_str() + 11);
        }
        return http_port_ != 0 && admin_port_ != 0;
      },
      bound);
  if (!up || http_port_ == 0)
    throw std::runtime_error("payorchd did not become ready; the end of " + log_path() + ":\n" +
                             LogTail());
}

void Daemon::Kill() {
  process_.Signal(SIGKILL);
  process_.Wait(20s);
}

std::optional<int> Daemon::Term(std::chrono::milliseconds bound) {
  process_.Signal(SIGTERM);
  return process_.Wait(bound);
}

std::string Daemon::LogTail(size_t lines) const { return Tail(log_path(), lines); }

HttpResult Daemon::Get(const std::string& target) const {
  return HttpCall("127.0.0.1", http_port_, "GET", target);
}

std::optional<double> Daemon::Metric(const std::string& series) const {
  HttpResult r = Get("/metrics");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::optional<std::vector<uint32_t>> Daemon::Held(bool* ready) const {
  HttpResult r = HttpCall("127.0.0.1", admin_port_, "GET", "/admin/ping", {},
                          std::chrono::seconds(2));
  if (r.status != 200) return std::nullopt;
  if (ready) *ready = r.body.find("\"ready\":true") != std::string::npos;
  const auto at = r.body.find("\"held\":[");
  if (at == std::string::npos) return std::nullopt;
  const auto end = r.body.find(']', at);
  std::istringstream list(r.body.substr(at + 8, end - at - 8));
  std::vector<uint32_t> held;
  for (std::string p; std::getline(list, p, ',');) held.push_back(std::stoul(p));
  return held;
}

// ---- order events -----------------------------------------------------------------------

domain::OrderEvent OrderEventOf(const std::string& order, const std::string& id,
                                domain::OrderEventKind kind) {
  domain::OrderEvent e;
  e.event_id = order + ":" + id;
  e.order_id = order;
  e.occurred_at =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  e.kind = std::move(kind);
  return e;
}

domain::OrderEvent Purchase(const std::string& order, int64_t amount, const std::string& msisdn,
                            const std::string& description) {
  domain::PurchaseRequested p;
  p.amount = amount;
  p.vat_amount = amount / 5;
  p.currency = "NOK";
  p.description = description.empty() ? "Order " + order.substr(0, 20) : description;
  p.msisdn = msisdn;
  return OrderEventOf(order, "purchase", p);
}

domain::OrderEvent Msisdn(const std::string& order, const std::string& msisdn) {
  return OrderEventOf(order, "msisdn", domain::PayerMsisdnProvided{msisdn});
}

domain::OrderEvent Shipped(const std::string& order, const std::string& shipment, int64_t amount) {
  domain::OrderShipped s;
  s.shipment_id = shipment;
  s.amount = amount;
  s.vat_amount = amount / 5;
  s.description = "Shipment " + shipment;
  return OrderEventOf(order, "ship-" + shipment, s);
}

domain::OrderEvent Cancelled(const std::string& order, const std::string& reason) {
  return OrderEventOf(order, "cancel", domain::OrderCancelled{reason});
}

domain::OrderEvent Refund(const std::string& order, const std::string& refund, int64_t amount) {
  domain::RefundRequested r;
  r.refund_id = refund;
  r.amount = amount;
  r.vat_amount = amount / 5;
  r.description = "Refund " + refund;
  return OrderEventOf(order, "refund-" + refund, r);
}

// ---- the bus ---------------------------------------------------------------------------

std::string RandomSuffix() {
  static std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string out;
  uint64_t v = rng();
  for (int i = 0; i < 12; ++i, v >>= 4) out.push_back(kHex[v & 15]);
  return out;
}

std::string BrokerUrl() {
  if (const char* url = std::getenv("PAYORCH_AMQP_URL"); url && *url) return url;
  std::ifstream file(SourceDir() + "/build/broker/url");
  std::string url;
  if (file && std::getline(file, url) && !url.empty()) return url;
  throw std::runtime_error(
      "no broker: PAYORCH_AMQP_URL is not set and build/broker/url does not exist; start one "
      "with scripts/broker start (scripts/test does this)");
}

bus::BusConfig UniqueBusConfig(const std::string& url, const std::string& suffix) {
  bus::BusConfig c;
  c.url = url;
  c.topology.orders_exchange = "e2e.orders." + suffix;
  c.topology.orders_queue = "e2e.orders." + suffix;
  c.topology.dead_letter_exchange = "e2e.orders.dlx." + suffix;
  c.topology.dead_letter_queue = "e2e.orders.dead." + suffix;
  c.topology.payments_exchange = "e2e.payments." + suffix;
  c.reconnect_min = 50ms;
  c.reconnect_max = 1000ms;
  return c;
}

BusClient::BusClient(bus::BusConfig config) : config_(std::move(config)) {
  {
    bus::Admin admin(config_, "payorch kit setup");
    admin.DeclareTopology(config_.topology);
  }
  publisher_ = std::make_unique<bus::Publisher>(config_);
  publisher_->Start();
  // Every payment event, as a consumer of the contract would see it.
  subscriber_ = std::make_unique<bus::Subscriber>(
      config_, config_.topology.payments_exchange, "payment.#",
      [this](bus::Observed o) { OnObserved(std::move(o)); });
  bool connected = WaitFor([&] { return publisher_->Status().connected; }, 20s);
  if (!connected) throw std::runtime_error("kit: the publisher did not connect to the broker");
}

BusClient::~BusClient() {
  subscriber_.reset();
  publisher_->Stop();
}

namespace {

bus::Message OrderMessage(const bus::BusConfig& config, const domain::OrderEvent& event) {
  bus::Message m;
  m.exchange = config.topology.orders_exchange;
  m.routing_key = codec::OrderRoutingKey(event.kind);
  m.body = codec::EncodeOrderEvent(event);
  m.properties.content_type = "application/x-protobuf";
  m.properties.message_id = event.event_id;
  m.properties.correlation_id = event.order_id;
  m.properties.delivery_mode = 2;
  m.properties.type = std::string("payorch.v1.OrderEvent");
  return m;
}

}  // namespace

void BusClient::Publish(const domain::OrderEvent& event) {
  bus::PublishResult r = publisher_->Publish(OrderMessage(config_, event)).get();
  if (!r.Ok())
    throw std::runtime_error("kit: publish of " + event.event_id + " not confirmed: " +
                             bus::PublishStatusName(r.status) + " " + r.detail);
}

void BusClient::PublishAsync(const domain::OrderEvent& event) {
  publisher_->Publish(OrderMessage(config_, event), [this](bus::PublishResult r) {
    (r.Ok() ? confirmed_ : failed_)++;
  });
}

void BusClient::PublishRaw(const std::string& routing_key, const std::string& body,
                           const std::string& content_type, const std::string& message_id) {
  bus::Message m;
  m.exchange = config_.topology.orders_exchange;
  m.routing_key = routing_key;
  m.body = body;
  m.properties.content_type = content_type;
  if (!message_id.empty()) m.properties.message_id = message_id;
  m.properties.delivery_mode = 2;
  bus::PublishResult r = publisher_->Publish(std::move(m)).get();
  if (!r.Ok()) throw std::runtime_error("kit: raw publish not confirmed");
}

size_t BusClient::async_confirmed() const { return confirmed_; }
size_t BusClient::async_failed() const { return failed_; }

std::vector<Received> BusClient::Events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::vector<Received> BusClient::EventsFor(const std::string& order_id) const {
  std::lock_guard lock(mu_);
  std::vector<Received> out;
  for (const auto& r : events_)
    if (r.event.order_id == order_id) out.push_back(r);
  return out;
}

size_t BusClient::Count() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

bool BusClient::WaitUntil(const std::function<bool(const std::vector<Received>&)>& done,
                          std::chrono::milliseconds bound) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, bound, [&] { return done(events_); });
}

void BusClient::OnEvent(std::function<void(const Received&)> f) {
  std::lock_guard lock(mu_);
  on_event_ = std::move(f);
}

void BusClient::OnObserved(bus::Observed o) {
  auto at = std::chrono::steady_clock::now();
  auto ev = codec::DecodePaymentEvent(o.body);
  if (!ev) return;
  Received r{std::move(*ev), o.routing_key, o.properties.message_id.value_or(""), at};
  std::function<void(const Received&)> cb;
  {
    std::lock_guard lock(mu_);
    events_.push_back(r);
    cb = on_event_;
  }
  cv_.notify_all();
  if (cb) cb(r);
}

}  // namespace payorch::kit
