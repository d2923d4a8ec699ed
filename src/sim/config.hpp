// payex-sim configuration: every knob of the simulator in one struct, with one
// registry that drives the TOML file, `--set section.key=value`, `--help` and the
// admin API, so the four never disagree. No IO except LoadToml; errors are
// std::invalid_argument with a message naming the knob.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace payorch::sim {

enum class DuplicateMode { kReject, kReplay, kAllow };
enum class ListShape { kWrapped, kFlat };
enum class MsisdnSpelling { kMsisdn, kMobileNumber, kBoth };
enum class RemainingBeforeAuth { kOmit, kZero, kFull };

// What a fault does to a request of its endpoint.
enum class FaultKind {
  kLatency,           // wait latency before handling (real time, not scaled)
  kError,             // answer `status` (default 500) before any effect
  kDropBefore,        // close the connection (RST) before any effect
  kDropAfter,         // apply the effect, then close without answering (in doubt)
  kErrorAfter,        // apply the effect, then answer `status` (default 500)
  kHang,              // apply the effect, then hold the connection `latency` and close
  kInitialized,       // the transaction is left Initialized (payment Pending)
  kTxFailed,          // the transaction is created Failed with `problem`
  kBadJson,           // apply the effect, answer 200 with a broken JSON body
  kWrongContentType,  // apply the effect, answer 200 text/html
  kTruncated,         // apply the effect, send half of the body, close
};

struct FaultRule {
  std::string endpoint = "any";  // create|get|authorize|capture|cancel|reverse|abort|any
  FaultKind kind = FaultKind::kError;
  double rate = 1.0;                       // probability per matching request
  int64_t count = -1;                      // applications left; -1 = unlimited
  int64_t latency_ms = 0;                  // latency / hang duration (real milliseconds)
  int status = 500;                        // error / error_after
  std::string problem = "acquirer_error";  // tx_failed: the problem type's last segment
};

struct SimConfig {
  // [server]
  std::string listen = "127.0.0.1";
  int port = 0;
  std::string api_base;   // base of operation hrefs; empty: http://<listen>:<port>
  std::string ecom_base;  // base of hosted-page hrefs; empty: <api_base>/ecom
  int64_t max_body_bytes = 64 * 1024;
  int64_t read_timeout_ms = 15'000;  // real time a request may take to arrive
  int64_t idle_timeout_ms = 60'000;  // real time a keep-alive connection may idle
  double time_scale = 1.0;           // real seconds per simulated second
  uint64_t seed = 1;
  int log_level = 1;  // 0 quiet, 1 events, 2 every request
  std::string port_file;

  // [merchant]
  std::string token = "payex-sim-token";
  std::string payee_id = "5cabf558-5283-482f-b252-4d58e06f6f3b";

  // [payer]
  int64_t approve_delay_ms = 2'000;     // simulated time until an approval
  int64_t decline_delay_ms = 2'000;     // until 99999989 declines
  int64_t ignore_timeout_ms = 600'000;  // until 99999990 times out (Vipps: 5 + 5 min)
  bool magic_numbers = true;
  int max_authorization_attempts = 3;

  // [callbacks]
  bool callbacks = true;
  std::vector<int64_t> callback_schedule_s = {30, 60, 360, 432, 864, 1265};
  int callback_max_attempts = 7;  // the first attempt + 6 retries
  int64_t callback_timeout_ms = 5'000;
  bool callback_on_abort = false;
  double callback_lost_rate = 0;
  double callback_duplicate_rate = 0;
  double callback_delay_rate = 0;
  int64_t callback_delay_ms = 10'000;  // simulated
  double callback_reorder_rate = 0;

  // [behaviour]
  DuplicateMode duplicate_payee_reference = DuplicateMode::kReject;
  std::string authorization_rel = "create-authorization";
  bool direct_authorization = true;
  MsisdnSpelling msisdn_field = MsisdnSpelling::kMsisdn;        // in answers
  MsisdnSpelling msisdn_request_field = MsisdnSpelling::kBoth;  // accepted in requests
  ListShape list_items = ListShape::kWrapped;
  ListShape transaction_list_items = ListShape::kFlat;
  bool awaiting_state_pending = false;  // payment state while AwaitingActivity
  bool abort_during_awaiting = true;
  RemainingBeforeAuth remaining_before_authorization = RemainingBeforeAuth::kOmit;
  char settlement = 'A';
  int lock_after_failures = 5;
  bool lock_captures = false;

  // [[faults]]
  std::vector<FaultRule> faults;
};

struct Knob {
  std::string name;  // "section.key"
  std::string kind;  // "string", "int", "duration", "rate", "bool", "enum a|b", ...
  std::string help;
  std::function<std::string(const SimConfig&)> get;
  std::function<void(SimConfig&, std::string_view)> set;  // throws std::invalid_argument
};

const std::vector<Knob>& Knobs();
// Sets one knob from text; throws std::invalid_argument naming it.
void SetKnob(SimConfig& config, std::string_view name, std::string_view value);
std::string GetKnob(const SimConfig& config, std::string_view name);

// "capture:drop_after,rate=0.5,count=1,latency=200ms,status=503,problem=x".
FaultRule ParseFault(std::string_view spec);
std::string FormatFault(const FaultRule& rule);
const char* FaultKindName(FaultKind kind);

// "150ms", "2s", "10m", "1h"; a bare number is seconds.
int64_t ParseDurationMs(std::string_view text);

// Loads a TOML file over `config`. Unknown sections or keys and bad values throw.
void LoadToml(SimConfig& config, const std::string& path);
// Command line: --config FILE, --port N, --listen ADDR, --time-scale X,
// --seed N, --set k=v, --fault SPEC, --port-file F, --quiet, --verbose.
// Returns false when --help was asked (help printed to `help_out`).
bool ParseArgs(SimConfig& config, int argc, char** argv, std::string& help_out);
std::string HelpText();

}  // namespace payorch::sim
