// The plain request/response values the HTTP server hands to handlers, and the
// target parsing it uses (also for tests that build requests by hand). Pure values
// and functions, no thread affinity; parsing reports malformed input as nullopt or
// false, never throws.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace payorch::http {

struct Request {
  std::string method;                             // as sent (HTTP methods are case-sensitive)
  std::string target;                             // as sent: raw path and query
  std::string path;                               // percent-decoded path, no query
  std::multimap<std::string, std::string> query;  // decoded ('+' is a space)
  std::string body;
  std::string content_type;  // empty when absent
  std::string remote_address;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";  // empty: no Content-Type
  std::string body;
  // Extra headers. Content-Length, Connection and Transfer-Encoding are the
  // server's and are ignored here.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Call exactly once, on the server's executor (it is dispatched there if called
// from elsewhere); may be called later, from an async handler. A second call is
// ignored; a Reply dropped without being called answers 500.
using Reply = std::function<void(Response)>;
using Handler = std::function<void(Request, Reply)>;

// Decodes %XX escapes (and '+' as a space when `plus_as_space`, for queries).
// nullopt for a bad escape or a decoded NUL byte.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_as_space = false);
// Encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string PercentEncode(std::string_view s);

// The path of a target, still encoded: origin-form "/a/b?q" gives "/a/b";
// absolute-form "http://h/a?q" gives "/a". Empty for anything else ("*", "h:443").
std::string_view RawPath(std::string_view target);

// Fills r.target, r.path and r.query from `target`; false when the target is not
// origin- or absolute-form or holds a bad escape.
bool ParseTarget(std::string_view target, Request& r);

}  // namespace payorch::http
