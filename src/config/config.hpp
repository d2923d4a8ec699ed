// The configuration of payorchd: one TOML file, `--set section.key=value` overrides and
// secrets from the environment, validated as a whole at start-up (runs once, on the
// main thread). Errors: LoadConfig throws ConfigError naming the file, the setting and the fault.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bus/config.hpp"
#include "domain/decide.hpp"
#include "payex/options.hpp"
#include "store/store.hpp"

namespace payorch::config {

// Environment variables holding the secrets; nothing else reads secrets.
inline constexpr std::string_view kPayexTokenEnv = "PAYORCH_PAYEX_TOKEN";
inline constexpr std::string_view kCallbackSecretEnv = "PAYORCH_CALLBACK_SECRET";
inline constexpr std::string_view kAmqpPasswordEnv = "PAYORCH_AMQP_PASSWORD";
inline constexpr std::size_t kMinCallbackSecretBytes = 32;

struct StoreConfig {
  std::string path = "var/payorch.db";
  store::Options options;
  // options.quick_check: a store up to this size is checked before payorchd serves,
  // a bigger one beside the engine while it serves (0: always beside).
  int64_t quick_check_first_mib = 256;
};

struct HttpConfig {
  // Where payorchd listens for PayEx callbacks (and health/metrics).
  std::string listen_address = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (tests)
  // The public URL PayEx calls back; callbackUrl is "<this>/<order_id>?token=...".
  std::string callback_base_url = "http://127.0.0.1:8080/callbacks/payex";
  std::size_t max_body_bytes = 64 * 1024;
  // Requests slower than this to arrive (headers and body) are dropped.
  std::chrono::milliseconds read_timeout{10'000};
  // How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{15'000};
  // Open connections at most; past it a new one evicts the longest-waiting
  // idle or slow connection (http::ServerOptions::max_connections).
  std::size_t max_connections = 1024;
};

// The operators' endpoint (payorchctl payment resolve/republish): a second
// listener, loopback by default, never exposed to PayEx.
struct AdminConfig {
  std::string listen_address = "127.0.0.1";
  uint16_t port = 8081;  // 0: any free port (tests)
};

struct EngineConfig {
  std::size_t max_batch = 256;            // decisions per group commit
  std::size_t max_concurrent_calls = 64;  // PayEx calls in flight
  // How long a group commit may wait for more decisions when the writer is idle:
  // 0 commits at once (lowest latency); a few ms gives bigger batches and fewer
  // WAL writes under sustained load (throughput), at that much latency per commit.
  std::chrono::milliseconds commit_delay{0};
  double payex_rate_limit = 0;            // PayEx requests per second; 0: no limit
  // Payments kept in memory (about 2 KB each); beyond it the least recently used
  // with nothing in flight are dropped and read from the store when needed.
  std::size_t cache_payments = 20'000;
};

// Which partitions this payorchd serves when bus.topology.partitions > 1 (issue 13).
// Several instances share the partitions; each holds a partition by its store's lock.
struct InstanceConfig {
  // The partitions this instance may serve: "all", or numbers such as "0,1".
  std::string partitions = "all";
  // Of those, the ones it takes at start. The others it takes only when their
  // holder is gone and standby_delay has passed since its start, so instances
  // started together share the partitions as their `prefer` lists say.
  std::string prefer = "all";
  // How often a partition held elsewhere is tried again (its store's lock).
  std::chrono::milliseconds poll_interval{250};
  std::chrono::milliseconds standby_delay{3'000};
};

// "all" or "0,2,3" -> the partition numbers, sorted, each below `partitions`; throws
// std::invalid_argument naming what is wrong.
std::vector<uint32_t> PartitionList(const std::string& text, uint32_t partitions);
// The store of partition p: `path` with {partition} replaced by p.
std::string PartitionStorePath(const std::string& path, uint32_t p);

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

struct Config {
  std::string file;  // the file it was loaded from, for logs
  domain::Policy payments;
  StoreConfig store;
  bus::BusConfig bus;          // url carries PAYORCH_AMQP_PASSWORD when set
  payex::ClientOptions payex;  // token from PAYORCH_PAYEX_TOKEN; callback_url_base
                               // = http.callback_base_url
  HttpConfig http;
  AdminConfig admin;
  EngineConfig engine;
  InstanceConfig instance;
  LogConfig log;
  std::string callback_secret;  // from PAYORCH_CALLBACK_SECRET: keys the callback tokens
};

class ConfigError : public std::runtime_error {
 public:
  // line: of the file where the setting is, 0 when unknown or not from the file.
  ConfigError(std::string file, std::string setting, std::string problem, int line = 0);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& setting() const { return setting_; }  // "section.key"; may be empty
  const std::string& problem() const { return problem_; }

 private:
  std::string file_, setting_, problem_;
  int line_ = 0;
};

// Looks up an environment variable; nullopt (or empty) when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
// The process's environment; a name it lacks is then read as a systemd credential
// ($CREDENTIALS_DIRECTORY/<name>, from LoadCredential= in the unit), if there.
EnvLookup ProcessEnv();
// <directory>/<name> without its trailing newline; nullopt when there is no such
// file or it is larger than 64 KiB.
std::optional<std::string> SystemdCredential(const char* directory, std::string_view name);

// Reads `path`, applies `overrides` ("section.key=value", in order, after the file),
// takes the secrets from `env` and validates everything. Throws ConfigError.
Config LoadConfig(const std::string& path, const std::vector<std::string>& overrides = {},
                  const EnvLookup& env = ProcessEnv());

// One line, "event=config.loaded file=... section.key=value ...", every setting,
// secrets masked ("***"), the AMQP password too.
std::string DescribeConfig(const Config& config);

// Every file setting as "section.key", in the order of the shipped file.
std::vector<std::string> SettingNames();

// "500ms", "3s", "10m", "1h" (also "1m30s"); nullopt when malformed or negative.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace payorch::config
