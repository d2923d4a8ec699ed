// Refusals are cheap and say nothing about the order before the token is checked,
// so a forger cannot probe which orders exist (design.md §4).
#include "http/callbacks.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "http/callback_token.hpp"

namespace payorch::http {
namespace {

Response Refuse(int status, std::string_view reason) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = "{\"error\":\"" + std::string(reason) + "\"}";
  return r;
}

}  // namespace

Response HandleCallback(const Request& r, const CallbackOptions& o,
                        const std::function<HintResult(const std::string& order_id)>& on_hint) {
  if (r.method != "POST") {
    Response refused = Refuse(405, "method_not_allowed");
    refused.headers.emplace_back("Allow", "POST");
    return refused;
  }

  std::string_view raw_path = RawPath(r.target);
  if (o.path_prefix.empty() || raw_path.substr(0, o.path_prefix.size()) != o.path_prefix)
    return Refuse(404, "not_found");
  std::string_view segment = raw_path.substr(o.path_prefix.size());
  if (segment.empty() || segment.find('/') != std::string_view::npos)
    return Refuse(404, "not_found");
  auto order_id = PercentDecode(segment);
  if (!order_id || order_id->empty()) return Refuse(404, "not_found");

  // A repeated token is refused rather than picking one: no guessing at ambiguity.
  auto [first, last] = r.query.equal_range("token");
  bool one_token = first != last && std::next(first) == last;
  if (!one_token || !VerifyCallbackToken(o.secret, *order_id, first->second))
    return Refuse(401, "bad_token");

  if (r.body.size() > o.max_body_bytes) return Refuse(413, "body_too_large");
  boost::system::error_code ec;
  boost::json::value body = boost::json::parse(r.body, ec);
  if (ec || !body.is_object()) return Refuse(400, "malformed_body");

  switch (on_hint(*order_id)) {
    case HintResult::kUnknownPayment:
      return Refuse(404, "unknown_payment");
    case HintResult::kElsewhere: {
      Response elsewhere = Refuse(503, "partition_elsewhere");
      elsewhere.headers.emplace_back("Retry-After", "1");
      return elsewhere;
    }
    case HintResult::kStopping: {
      Response stopping = Refuse(503, "stopping");
      stopping.headers.emplace_back("Retry-After", "1");
      return stopping;
    }
    case HintResult::kAccepted:
      break;
  }
  Response accepted;
  accepted.status = 200;
  return accepted;
}

}  // namespace payorch::http
