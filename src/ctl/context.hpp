// Internal to src/ctl: what every command gets (the Io, the configuration loaded on
// first use, the output format), the parsed command line of one command, and the
// commands themselves. Errors inside commands are exceptions: UsageError (exit 2),
// Failure (exit 1) and whatever the bus and store throw, caught by Main.
#pragma once

#include <functional>

#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "bus/topology.hpp"
#include "ctl/ctl.hpp"
#include "ctl/output.hpp"
#include "store/store.hpp"

namespace payorch::ctl {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  const char* name;  // "--limit"
  bool takes_value;
};

// One command's arguments after the global options were taken out.
struct Args {
  std::string command;  // "dlq replay", for messages
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> flags;

  bool Has(const std::string& name) const;
  std::optional<std::string> Get(const std::string& name) const;  // the last value
};

// Throws UsageError for an unknown option or a missing value.
Args ParseArgs(const std::string& command, const std::vector<std::string>& tokens,
               std::span<const OptionSpec> spec);

class Context {
 public:
  Context(Io& io, std::string config_path, std::vector<std::string> overrides, Format format)
      : io_(io),
        config_path_(std::move(config_path)),
        overrides_(std::move(overrides)),
        format_(format) {}

  std::ostream& out() { return *io_.out; }
  std::ostream& err() { return *io_.err; }
  Io& io() { return io_; }
  Format format() const { return format_; }
  bool Json() const { return format_ == Format::kJson; }
  bool Csv() const { return format_ == Format::kCsv; }
  domain::Time Now() const;
  std::optional<std::string> Env(std::string_view name) const;

  // Loaded on first use; throws Failure naming the file, the setting and the fault.
  const config::Config& Config();
  // Connects to the broker; throws Failure saying what to check.
  bus::Admin ConnectBus(const std::string& purpose);
  // The store as payorchd has it (never created; no quick_check, since payorchd
  // may be writing: payorchctl is one more WAL reader). Throws Failure.
  // Read-only unless `write` (only a real replay records something): reading never
  // migrates, locks or changes payorchd's file.
  // Partitioned (bus.topology.partitions > 1), the store of `partition`.
  store::Store OpenStore(bool write = false, uint32_t partition = 0);
  // The partitions of the deployment (1 unpartitioned) and an order's.
  uint32_t Partitions();
  uint32_t PartitionOf(const std::string& order_id);
  // The dead-letter queue's ready messages; throws Failure when it does not exist.
  uint32_t DeadLetterDepth(bus::Admin& admin);

 private:
  Io& io_;
  std::string config_path_;
  std::vector<std::string> overrides_;
  Format format_;
  std::optional<config::Config> config_;
};

// "50/s", "50", "0.5/s" -> messages per second; throws UsageError.
double ParseRate(const std::string& text);
std::chrono::milliseconds ParseDurationArg(const std::string& option, const std::string& text);
size_t ParseCount(const std::string& option, const std::string& text);

// Asks on a terminal; refuses (UsageError) when stdin is not one. False when the
// operator says anything but y/yes. `keep_alive`, when given, is called while the
// operator thinks (with how long it may wait at most), on the calling thread: a
// command that holds messages passes HoldChannel::Pause, so the broker connection
// answers heartbeats and is still there after a long look at the question.
bool Confirm(Context& ctx, const std::string& question, const std::string& refusal,
             const std::function<void(std::chrono::milliseconds)>& keep_alive = {});

int DlqList(Context& ctx, const Args& args);
int DlqShow(Context& ctx, const Args& args);
int DlqReplay(Context& ctx, const Args& args);
int DlqPurge(Context& ctx, const Args& args);
int DlqReplays(Context& ctx, const Args& args);
int PaymentShow(Context& ctx, const Args& args);
int PaymentList(Context& ctx, const Args& args);
int PaymentResolve(Context& ctx, const Args& args);
int PaymentRepublish(Context& ctx, const Args& args);
int PaymentParked(Context& ctx, const Args& args);
int PaymentExport(Context& ctx, const Args& args);

// Every partition's payments matching `filter`, merged in the store's own order
// (least recently updated first) and cut at filter.limit. Partitioned, a store that
// cannot be opened or read (its volume attached elsewhere) is skipped and named in
// `unread` with its error; unpartitioned, the error is thrown.
struct MergedPayments {
  std::vector<store::PaymentSummary> payments;
  bool truncated = false;  // filter.limit reached: more may match
  std::vector<std::pair<uint32_t, std::string>> unread;
};
MergedPayments ListAllPayments(Context& ctx, const store::PaymentFilter& filter);
int Reconcile(Context& ctx, const Args& args);

}  // namespace payorch::ctl
