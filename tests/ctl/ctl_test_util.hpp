// Shared by the payorchctl tests: a temp directory with a configuration file and a
// store, payorchctl run in-process (Main with string streams) or as a process (the
// built binary, for exit codes and output), payments built by domain::Decide and
// committed as payorchd would, and dead letters as the consumer writes them.
// The broker tests use bus_test_util.hpp's unique topology names, so they run in
// parallel with every other test; a missing broker is a failure, never a skip.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <streambuf>
#include <sstream>
#include <string>
#include <vector>

#include "../bus/bus_test_util.hpp"
#include "config/config.hpp"
#include "ctl/ctl.hpp"
#include "domain/decide.hpp"
#include "store/store.hpp"

extern char** environ;

namespace payorch::ctl::testing {

using namespace std::chrono_literals;

inline const domain::Time kNow = domain::FromMillis(1'790'000'000'000);

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "payorchctl-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

// payorchctl -o json prints one JSON document; anything else fails the test.
inline boost::json::value Json(const Result& r) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.out, ec);
  EXPECT_FALSE(ec) << "not one JSON document: " << r.out;
  return v;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the built payorchctl with `args`, `input` on its stdin (not a terminal) and
// the environment plus `env` ("NAME=value"; "NAME=" removes NAME).
inline Result RunProcess(const std::vector<std::string>& args, const std::string& input = "",
                         const std::vector<std::string>& env = {}) {
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe(out_pipe) || pipe(err_pipe) || pipe(in_pipe)) throw std::runtime_error("pipe failed");
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    bool overridden = false;
    for (const auto& o : env)
      if (entry.substr(0, entry.find('=') + 1) == o.substr(0, o.find('=') + 1)) overridden = true;
    if (!overridden) environment.push_back(entry);
  }
  for (const auto& o : env)
    if (o.back() != '=') environment.push_back(o);
  std::vector<char*> argv{const_cast<char*>(PAYORCHCTL_PATH)};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], in_pipe[0], in_pipe[1]})
      close(fd);
    execve(PAYORCHCTL_PATH, argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(in_pipe[0]);
  if (!input.empty() && write(in_pipe[1], input.data(), input.size()) < 0)
    ADD_FAILURE() << "writing payorchctl's stdin failed";
  close(in_pipe[1]);
  Result r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, 120'000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Starts the built payorchctl in the background, its output thrown away; the
// caller waits for it (or kills it).
inline pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>(PAYORCHCTL_PATH)};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execv(PAYORCHCTL_PATH, argv.data());
    _exit(127);
  }
  return pid;
}

// A TCP port on 127.0.0.1 that is bound but not listening: connecting is refused,
// and nobody else can take the port while the socket lives.
class DeadPort {
 public:
  DeadPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~DeadPort() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// An input stream that runs `hook` once, when payorchctl first reads it (that is,
// while it waits for the operator's answer), then gives `text`.
class HookedInput : public std::streambuf {
 public:
  HookedInput(std::string text, std::function<void()> hook)
      : text_(std::move(text)), hook_(std::move(hook)) {}

 protected:
  int_type underflow() override {
    if (hook_) {
      auto hook = std::move(hook_);
      hook_ = nullptr;
      hook();
    }
    if (served_) return traits_type::eof();
    served_ = true;
    if (text_.empty()) return traits_type::eof();
    setg(text_.data(), text_.data(), text_.data() + text_.size());
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::string text_;
  std::function<void()> hook_;
  bool served_ = false;
};

struct CtlOptions {
  std::string input{};
  std::function<void()> before_answer{};  // runs when payorchctl reads stdin
  bool stdin_tty = false;
  bool stderr_tty = false;
  std::optional<domain::Time> now{};
  std::chrono::milliseconds progress_interval{5000};
};

// A configuration file and a store in a temp directory.
class CtlFixture {
 public:
  explicit CtlFixture(const bus::BusConfig& bus = {}, uint16_t admin_port = 8081) {
    config_path_ = dir_.File("payorch.toml");
    store_path_ = dir_.File("payorch.db");
    WriteConfig(bus, admin_port);
    store::Store::Open(store_path_);  // created with its schema, as payorchd would
  }

  void WriteConfig(const bus::BusConfig& bus, uint16_t admin_port) {
    const bus::Topology& t = bus.topology;
    std::ofstream f(config_path_, std::ios::trunc);
    f << "[store]\npath = \"" << store_path_ << "\"\n"
      << "[bus]\nurl = \"" << bus.url << "\"\n"
      << "[bus.topology]\norders_exchange = \"" << t.orders_exchange << "\"\n"
      << "orders_queue = \"" << t.orders_queue << "\"\n"
      << "dead_letter_exchange = \"" << t.dead_letter_exchange << "\"\n"
      << "dead_letter_queue = \"" << t.dead_letter_queue << "\"\n"
      << "payments_exchange = \"" << t.payments_exchange << "\"\n"
      << "partitions = " << partitions_ << "\n"
      << "[admin]\nport = " << admin_port << "\n";
  }

  // A partitioned deployment: a store per partition (p0.db, p1.db, ...).
  void UsePartitions(uint32_t partitions, const bus::BusConfig& bus = {}) {
    partitions_ = partitions;
    store_path_ = dir_.File("p{partition}.db");
    WriteConfig(bus, 8081);
    for (uint32_t p = 0; p < partitions; ++p) (void)OpenStore(p);
  }

  store::Store OpenStore() { return store::Store::Open(store_path_); }
  store::Store OpenStore(uint32_t partition) {
    return store::Store::Open(config::PartitionStorePath(store_path_, partition));
  }

  // payorchctl in-process with --config.
  Result Ctl(std::vector<std::string> args, const CtlOptions& options = {}) {
    args.insert(args.begin(), {"--config", config_path_});
    std::ostringstream out, err;
    HookedInput hooked(options.input, options.before_answer);
    std::istream in(&hooked);
    Io io;
    io.out = &out;
    io.err = &err;
    io.in = &in;
    io.stdin_is_tty = options.stdin_tty;
    io.stderr_is_tty = options.stderr_tty;
    io.env = [](std::string_view name) -> std::optional<std::string> {
      if (name == "USER") return "tester";
      return std::nullopt;
    };
    if (options.now) io.now = [t = *options.now] { return t; };
    io.progress_interval = options.progress_interval;
    Result r;
    r.code = Main(args, io);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  // The binary as a process with --config.
  Result Process(std::vector<std::string> args, const std::string& input = "",
                 const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--config", config_path_});
    return RunProcess(args, input, env);
  }

  const std::string& config_path() const { return config_path_; }
  const std::string& store_path() const { return store_path_; }

 protected:
  TempDir dir_;
  std::string config_path_;
  std::string store_path_;
  uint32_t partitions_ = 1;
};

// Decides `event` on `payment` (empty when new) and commits it as payorchd does.
inline domain::Decision DecideAndCommit(store::Store& store, const domain::OrderEvent& event,
                                        domain::Time now) {
  std::optional<domain::Payment> before = store.LoadPayment(event.order_id);
  domain::Payment current;
  if (before) {
    current = *before;
  } else {
    current.order_id = event.order_id;
  }
  domain::Decision d = domain::Decide(domain::Policy{}, current, event, now);
  store::Commit c;
  if (before) c.phase_before = before->phase;
  c.after = d.next;
  c.inbox_event_id = event.event_id;
  c.events = d.events;
  c.calls = d.calls;
  c.input_name = domain::InputName(domain::Input(event));
  c.note = d.note;
  c.at = now;
  if (store::WriteResult w = store.CommitOne(c); !w) throw std::runtime_error(w.message);
  return d;
}

inline domain::OrderEvent Purchase(const std::string& order, const std::string& event_id,
                                   int64_t amount, const std::string& msisdn = "+4798765432") {
  domain::PurchaseRequested p;
  p.amount = amount;
  p.vat_amount = amount / 5;
  p.currency = "NOK";
  p.description = "Blåbærsyltetøy";
  p.msisdn = msisdn;
  return domain::OrderEvent{event_id, order, kNow, p};
}

inline domain::OrderEvent Shipped(const std::string& order, const std::string& event_id,
                                  int64_t amount) {
  return domain::OrderEvent{event_id, order, kNow,
                            domain::OrderShipped{"ship-" + event_id, amount, 0, "box"}};
}

// A broker test: unique topology (declared), a config file and a store.
class CtlBusTest : public bus::testing::BusTest {
 protected:
  void SetUp() override {
    BusTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_THROW(admin_->DeclareTopology(config_.topology));
    fixture_ = std::make_unique<CtlFixture>(config_);
  }

  Result Ctl(std::vector<std::string> args, const CtlOptions& options = {}) {
    return fixture_->Ctl(std::move(args), options);
  }
  Result Process(std::vector<std::string> args, const std::string& input = "",
                 const std::vector<std::string>& env = {}) {
    return fixture_->Process(std::move(args), input, env);
  }

  const std::string& DeadQueue() const { return config_.topology.dead_letter_queue; }
  const std::string& OrdersQueue() const { return config_.topology.orders_queue; }

  // A dead letter as payorchd's consumer writes it (x-payorch-* headers), published
  // to the dead-letter exchange with a confirm.
  void DeadLetter(const std::string& body, const std::string& content_type,
                  const std::string& message_id, const std::string& routing_key,
                  const std::string& error, domain::Time at = domain::Time{}) {
    bus::Message m;
    m.exchange = config_.topology.dead_letter_exchange;
    m.routing_key = routing_key;
    m.body = body;
    m.properties.content_type = content_type;
    if (!message_id.empty()) m.properties.message_id = message_id;
    m.properties.type = "payorch.v1.OrderEvent";
    m.properties.delivery_mode = 2;
    auto& h = m.properties.headers;
    h["x-payorch-error"] = bus::FieldValue::String(error);
    h["x-payorch-detail"] = bus::FieldValue::String("test: " + error);
    h["x-payorch-original-exchange"] = bus::FieldValue::String(config_.topology.orders_exchange);
    h["x-payorch-original-routing-key"] = bus::FieldValue::String(routing_key);
    h["x-custom"] = bus::FieldValue::String("kept");
    if (at == domain::Time{})
      at =
          std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    h["x-payorch-dead-lettered-at"] =
        bus::FieldValue::Timestamp(static_cast<uint64_t>(domain::ToMillis(at) / 1000));
    m.mandatory = true;
    Publish(m);
  }

  // A well-formed event dead-lettered for `error` (e.g. found again after a fix).
  void DeadEvent(const domain::OrderEvent& e, const std::string& error = "malformed_body") {
    DeadLetter(codec::EncodeOrderEvent(e), "application/x-protobuf", e.event_id,
               codec::OrderRoutingKey(e.kind), error);
  }

  // Dead-lettered by the broker itself: published to the orders queue, then taken
  // and rejected without requeue, so the broker adds x-death (reason "rejected").
  void BrokerDeadLetter(const domain::OrderEvent& e) {
    const uint32_t before = admin_->QueueDepth(DeadQueue()).value_or(0);
    Publish(bus::testing::OrderMessage(config_, e, false));
    auto hold = admin_->OpenHold();
    auto got = hold.Get(OrdersQueue());
    ASSERT_TRUE(got.has_value());
    hold.Nack(got->delivery_tag, false);
    hold.Close();
    // The broker dead-letters asynchronously (at-least-once, through the DLX).
    ASSERT_TRUE(bus::testing::WaitFor(
        [&] { return admin_->QueueDepth(DeadQueue()).value_or(0) > before; }));
  }

  void Publish(const bus::Message& m) {
    auto hold = admin_->OpenHold();
    auto r = hold.Publish(m);
    ASSERT_EQ(r.status, bus::PublishStatus::kConfirmed) << r.detail;
  }

  // Takes every message of `queue` (acked: gone).
  std::vector<bus::GotMessage> Drain(const std::string& queue) {
    std::vector<bus::GotMessage> out;
    while (auto m = admin_->Take(queue)) out.push_back(std::move(*m));
    return out;
  }

  std::unique_ptr<CtlFixture> fixture_;
};

}  // namespace payorch::ctl::testing
