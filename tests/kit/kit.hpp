// payorch_kit: what the demo, the end-to-end tests and the lifecycle benchmark need
// to drive payorchd from outside, through the contract: child processes (payex-sim,
// payorchd), a blocking loopback HTTP client, and a bus client that publishes order
// events and collects payment events. Threads: BusClient runs one subscriber thread
// of its own; everything else is used by the calling thread. Errors: exceptions
// (std::runtime_error) naming what failed and what to do.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bus/config.hpp"
#include "bus/publisher.hpp"
#include "bus/subscriber.hpp"
#include "domain/types.hpp"

namespace payorch::kit {

// ---- processes ----------------------------------------------------------------

class Process {
 public:
  Process() = default;
  // Starts argv[0] with argv, the current environment plus `env` ("K=V"), stdout
  // and stderr appended to `log_file` ("" inherits them). Throws when exec fails.
  static Process Start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::string& log_file);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // The exit code (128 + signal when killed); nullopt if it is still running after `bound`.
  std::optional<int> Wait(std::chrono::milliseconds bound);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Polls `done` every few milliseconds until it holds or `bound` passes.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds bound);

// The directory of the running executable's build tree: where payex-sim and
// payorchd are found ($PAYORCH_BUILD_DIR, else derived from /proc/self/exe).
std::string FindBinary(const std::string& name);

// The whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);
// A loopback TCP port free now (the kernel's pick), for a server started next.
uint16_t FreeLoopbackPort();

// ---- HTTP (loopback, blocking, Connection: close) ----------------------------------

struct HttpResult {
  int status = 0;  // 0: could not connect
  std::string body;
  std::string error;
};
HttpResult HttpCall(const std::string& host, uint16_t port, const std::string& method,
                    const std::string& target, const std::string& body = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// ---- payex-sim ------------------------------------------------------------------------

class Simulator {
 public:
  // payex-sim --config <config> --port 0 --port-file ... plus `args`.
  Simulator(const std::string& work_dir, const std::vector<std::string>& args);
  ~Simulator();
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  HttpResult Admin(const std::string& method, const std::string& target,
                   const std::string& body = {});
  // GET /admin/ledger: {"ok":..., ...}. True when it reports no violation.
  bool LedgerOk(std::string* body = nullptr);
  Process& process() { return process_; }

 private:
  Process process_;
  uint16_t port_ = 0;
};

// ---- payorchd -------------------------------------------------------------------------

struct DaemonOptions {
  std::string work_dir;                // store, logs, ready file
  std::string config = "";             // "" = <source>/config/payorch.toml
  bus::BusConfig bus;                  // url and topology names passed as --set
  std::string payex_url;               // the simulator
  std::vector<std::string> overrides;  // more --set values
  std::string log_level = "warn";
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  // Starts payorchd and waits (bounded) for its ready file. Throws with the log's tail.
  void Start(std::chrono::milliseconds bound = std::chrono::seconds(30));
  void Kill();  // SIGKILL, waits
  // SIGTERM and the exit code (nullopt if it did not exit within `bound`).
  std::optional<int> Term(std::chrono::milliseconds bound = std::chrono::seconds(30));
  bool Running() { return process_.Running(); }
  uint16_t http_port() const { return http_port_; }
  uint16_t admin_port() const { return admin_port_; }
  std::string store_path() const { return options_.work_dir + "/payorch.db"; }
  std::string log_path() const { return options_.work_dir + "/payorchd.log"; }
  std::string LogTail(size_t lines = 40) const;
  HttpResult Get(const std::string& target) const;
  // The partitions it serves, from /admin/ping ("held":[0,1]), and whether it is
  // ready; nullopt when it does not answer.
  std::optional<std::vector<uint32_t>> Held(bool* ready = nullptr) const;
  // One metric's value from /metrics ("name{labels}" exactly as rendered); nullopt if absent.
  std::optional<double> Metric(const std::string& series) const;
  const DaemonOptions& options() const { return options_; }
  Process& process() { return process_; }

 private:
  DaemonOptions options_;
  Process process_;
  uint16_t http_port_ = 0;
  uint16_t admin_port_ = 0;
};

// The secrets a test or demo daemon runs with.
std::vector<std::string> DaemonEnvironment();
inline constexpr const char* kCallbackSecret = "payorch-demo-callback-secret-0123456789abcdef";

// ---- order events (the contract's inbound messages) -----------------------------------

// event_id = "<order>:<id>"; occurred_at = now. VAT is a fifth of the amount.
domain::OrderEvent OrderEventOf(const std::string& order, const std::string& id,
                                domain::OrderEventKind kind);
domain::OrderEvent Purchase(const std::string& order, int64_t amount,
                            const std::string& msisdn = "+4791234567",
                            const std::string& description = "");
domain::OrderEvent Msisdn(const std::string& order, const std::string& msisdn);
domain::OrderEvent Shipped(const std::string& order, const std::string& shipment, int64_t amount);
domain::OrderEvent Cancelled(const std::string& order, const std::string& reason = "customer");
domain::OrderEvent Refund(const std::string& order, const std::string& refund, int64_t amount);

// ---- the bus ---------------------------------------------------------------------------

struct Received {
  domain::PaymentEvent event;
  std::string routing_key;
  std::string message_id;
  std::chrono::steady_clock::time_point at;
};

class BusClient {
 public:
  // Declares the topology, a private queue bound to the payments exchange
  // ("payment.#"), and starts consuming it and a confirming publisher.
  explicit BusClient(bus::BusConfig config);
  ~BusClient();

  // Publishes an order event (protobuf, the contract's properties) and waits for
  // the broker's confirm. Throws if it is not confirmed.
  void Publish(const domain::OrderEvent& event);
  // Fire-and-collect for the benchmark: the confirm is counted, not awaited.
  void PublishAsync(const domain::OrderEvent& event);
  // Anything: a malformed message for the dead-letter path.
  void PublishRaw(const std::string& routing_key, const std::string& body,
                  const std::string& content_type, const std::string& message_id = {});
  size_t async_confirmed() const;
  size_t async_failed() const;

  std::vector<Received> Events() const;
  std::vector<Received> EventsFor(const std::string& order_id) const;
  size_t Count() const;
  // Waits until `done(events)` holds; false after `bound`. `done` runs under the
  // client's lock: it must look only at its argument, never call the client.
  bool WaitUntil(const std::function<bool(const std::vector<Received>&)>& done,
                 std::chrono::milliseconds bound);
  // Called on the subscriber thread for each event (the demo prints from it).
  void OnEvent(std::function<void(const Received&)> f);

  const bus::BusConfig& config() const { return config_; }

 private:
  void OnObserved(bus::Observed o);

  bus::BusConfig config_;
  std::unique_ptr<bus::Publisher> publisher_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> events_;
  std::function<void(const Received&)> on_event_;
  std::atomic<size_t> confirmed_{0}, failed_{0};
  std::unique_ptr<bus::Subscriber> subscriber_;  // last: stopped first
};

// A bus configuration whose names all end in `suffix` (tests run side by side).
bus::BusConfig UniqueBusConfig(const std::string& url, const std::string& suffix);
std::string RandomSuffix();
// PAYORCH_AMQP_URL, else build/broker/url; throws naming scripts/broker when neither.
std::string BrokerUrl();

}  // namespace payorch::kit
