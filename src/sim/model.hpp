// The simulated PayEx: payments, transactions, the rules of api §13/§14, the
// simulated payer, the callback schedule, fault decisions and the admin API, all
// behind HTTP-shaped values. No IO and no clock: time comes in with every call
// (simulated milliseconds since the Unix epoch), so the rules test without sockets
// and the server only moves bytes. Not thread-safe: one thread drives it. Bad input
// never throws out of Handle: it becomes the problem PayEx would answer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sim/config.hpp"

namespace payorch::sim {

struct HttpRequest {
  std::string method;                                        // upper case
  std::string target;                                        // path and query, as received
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case
  std::string body;
  std::string Header(std::string_view name) const;
};

enum class Disposition {
  kNormal,
  kDrop,      // reset the connection without an answer
  kHang,      // hold the connection hang_ms (real), then close
  kTruncate,  // send the head and half of the body, then close
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Disposition disposition = Disposition::kNormal;
  int64_t hang_ms = 0;
};

// Faults chosen for one request before it is handled.
struct FaultPlan {
  int64_t latency_ms = 0;                // real time to wait before Handle
  std::optional<FaultRule> before;       // error / drop_before: no effect
  std::optional<FaultRule> after;        // drop_after, error_after, hang, bad_json, ...
  std::optional<FaultRule> transaction;  // initialized / tx_failed
};

// A callback attempt the server must deliver now.
struct CallbackJob {
  uint64_t id = 0;  // attempt id; report it back with CallbackDone
  std::string url;
  std::string body;
};

class Model {
 public:
  Model(SimConfig config, int64_t now_ms);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The base URLs once the port is known (server.api_base may be empty).
  void SetBases(std::string api_base, std::string ecom_base);

  FaultPlan PlanFaults(const HttpRequest& request);
  HttpResponse Handle(const HttpRequest& request, const FaultPlan& plan, int64_t now_ms);

  // Runs due payer decisions and collects due callback attempts.
  std::vector<CallbackJob> Advance(int64_t now_ms);
  // The outcome of an attempt: the HTTP status, or 0 when nothing came back.
  void CallbackDone(uint64_t attempt_id, int status, std::string error, int64_t now_ms);
  // Earliest simulated time anything is due; nullopt when nothing is.
  std::optional<int64_t> NextDue() const;

  const SimConfig& config() const;
  // Log lines produced since the last call (the server writes them to stderr).
  std::vector<std::string> TakeLog();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// A PayEx problem answer for transport-level refusals (oversized or malformed
// requests) that the server answers without the model.
HttpResponse TransportProblem(int status, std::string_view detail);

// "+47****5432" (the sim's logs mask numbers too).
std::string MaskNumber(std::string_view msisdn);

}  // namespace payorch::sim
