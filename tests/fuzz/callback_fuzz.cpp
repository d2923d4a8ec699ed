// The public callback endpoint, raw HTTP in: Beast's parser with the public
// server's limits, the server's target parsing (http::ParseTarget) and the
// callback handler (http::HandleCallback), for every request in the input (a
// keep-alive connection). So that the fuzzer can get past the token, "@TOKEN@" in a
// target is replaced by the right token for the order id in front of it.
// Beyond not crashing: only the documented statuses, and on_hint runs only for an
// authentic callback with a JSON object body, with a non-empty order id.
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <set>
#include <string>

#include "fuzz_support.hpp"
#include "http/callback_token.hpp"
#include "http/callbacks.hpp"
#include "http/message.hpp"

using namespace payorch;

namespace {

constexpr std::string_view kSecret = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
constexpr std::string_view kPrefix = "/callbacks/payex/";

void FillToken(std::string& target) {
  const size_t at = target.find("@TOKEN@");
  if (at == std::string::npos) return;
  std::string_view raw = std::string_view(target).substr(0, at);
  const size_t start = raw.find(kPrefix);
  std::string order;
  if (start != std::string_view::npos) {
    std::string_view seg = raw.substr(start + kPrefix.size());
    seg = seg.substr(0, seg.find('?'));
    order = http::PercentDecode(seg).value_or("");
  }
  target.replace(at, 7, http::CallbackToken(kSecret, order));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  http::CallbackOptions options;
  options.path_prefix = std::string(kPrefix);
  options.secret = std::string(kSecret);
  options.max_body_bytes = 16 * 1024;
  for (int n = 0; n < 8 && !bytes.empty(); ++n) {
    auto raw = fuzz::ParseRequest(bytes, 8 * 1024, 64 * 1024);
    if (!raw) break;
    FillToken(raw->target);
    http::Request r;
    if (!http::ParseTarget(raw->target, r)) continue;  // the server's 400
    r.method = raw->method;
    r.body = raw->body;
    for (const auto& [name, value] : raw->headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower == "content-type") r.content_type = value;
    }
    r.remote_address = "127.0.0.1";

    int hints = 0;
    http::Response res = http::HandleCallback(r, options, [&](const std::string& order_id) {
      ++hints;
      FUZZ_CHECK(!order_id.empty(), "on_hint with an empty order id");
      boost::system::error_code ec;
      const boost::json::value body = boost::json::parse(r.body, ec);
      FUZZ_CHECK(!ec && body.is_object(), "on_hint for a body that is no JSON object");
      FUZZ_CHECK(r.method == "POST", r.method);
      auto token = r.query.find("token");
      FUZZ_CHECK(token != r.query.end() &&
                     http::VerifyCallbackToken(kSecret, order_id, token->second),
                 "on_hint without the right token for " + order_id);
      return order_id.size() % 2 ? http::HintResult::kAccepted : http::HintResult::kUnknownPayment;
    });
    static const std::set<int> kStatuses = {200, 400, 401, 404, 405, 413};
    FUZZ_CHECK(kStatuses.count(res.status), std::to_string(res.status));
    FUZZ_CHECK(hints <= 1, "on_hint twice for one request");
    if (res.status == 200) FUZZ_CHECK(hints == 1, "200 without on_hint");
  }
  return 0;
}
