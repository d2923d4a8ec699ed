// payex-sim's request handling: raw HTTP requests (parsed by Beast with the sim's
// limits) through the model's fault planning and Handle, with the clock moving and
// the payer and callbacks advancing in between, the way the server drives them.
// "{id}" in a target becomes the last payment id the sim handed out, so that the
// fuzzer reaches authorizations, captures, cancellations and reversals.
// Beyond not crashing: every answer has a real HTTP status, and the ledger
// (GET /admin/ledger) shows none of PayEx's money rules broken, whatever was asked.
#include <cctype>
#include <string>

#include "fuzz_support.hpp"
#include "sim/config.hpp"
#include "sim/model.hpp"

using namespace payorch;

namespace {

std::string LastPaymentId(const std::string& body, std::string last) {
  static constexpr std::string_view kPath = "/psp/vipps/payments/";
  size_t at = body.find(kPath);
  if (at == std::string::npos) return last;
  size_t start = at + kPath.size();
  size_t end = body.find_first_of("\"/?", start);
  return body.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sim::SimConfig config;
  config.api_base = "http://127.0.0.1:1";
  int64_t now = 1'800'000'000'000;
  sim::Model model(config, now);
  model.SetBases(config.api_base, "");
  std::string id = "00000000-0000-0000-0000-000000000000";
  for (int n = 0; n < 16 && !bytes.empty(); ++n) {
    auto raw = fuzz::ParseRequest(bytes, 16 * 1024, 256 * 1024);
    if (!raw) break;
    sim::HttpRequest r;
    r.method = raw->method;
    for (char& c : r.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    r.target = raw->target;
    for (size_t at; (at = r.target.find("{id}")) != std::string::npos;) r.target.replace(at, 4, id);
    for (auto& [name, value] : raw->headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace_back(std::move(lower), value);
    }
    r.body = raw->body;
    sim::FaultPlan plan = model.PlanFaults(r);
    sim::HttpResponse res = model.Handle(r, plan, now);
    FUZZ_CHECK(res.status >= 100 && res.status <= 599, std::to_string(res.status));
    id = LastPaymentId(res.body, id);
    now += 1 + static_cast<int64_t>(size % 7) * 1000;
    for (const sim::CallbackJob& job : model.Advance(now))
      model.CallbackDone(job.id, 200, "", now);
    (void)model.TakeLog();
  }
  sim::HttpRequest ledger;
  ledger.method = "GET";
  ledger.target = "/admin/ledger";
  sim::HttpResponse check = model.Handle(ledger, sim::FaultPlan{}, now);
  // Duplicate references are the client's doing; a violated rule is the sim's.
  FUZZ_CHECK(check.status == 200 && check.body.find("\"violations\":[]") != std::string::npos,
             std::to_string(check.status) + " " + check.body);
  return 0;
}
