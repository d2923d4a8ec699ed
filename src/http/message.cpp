#include "http/message.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace payorch::http {
namespace {

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

// Boost.URL's: escapes checked, then decoded.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_as_space) {
  auto pct = boost::urls::make_pct_string_view(s);
  if (!pct) return std::nullopt;
  boost::urls::encoding_opts opts;
  opts.space_as_plus = plus_as_space;
  std::string out = pct->decode(opts);
  // A NUL inside a path or value only ever serves to confuse a later C API.
  if (out.find('\0') != std::string::npos) return std::nullopt;
  return out;
}

std::string PercentEncode(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

std::string_view RawPath(std::string_view target) {
  if (StartsWithNoCase(target, "http://") || StartsWithNoCase(target, "https://")) {
    // Absolute-form (RFC 9112 §3.2.2): servers must accept it; drop scheme and authority.
    std::size_t authority = target.find("//") + 2;
    std::size_t slash = target.find_first_of("/?#", authority);
    if (slash == std::string_view::npos || target[slash] != '/') return "/";
    target.remove_prefix(slash);
  }
  if (target.empty() || target.front() != '/') return {};
  return target.substr(0, target.find_first_of("?#"));
}

bool ParseTarget(std::string_view target, Request& r) {
  std::string_view raw_path = RawPath(target);
  if (raw_path.empty()) return false;
  auto path = PercentDecode(raw_path);
  if (!path) return false;
  std::multimap<std::string, std::string> query;
  std::size_t q = target.find('?');
  if (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    rest = rest.substr(0, rest.find('#'));
    while (!rest.empty()) {
      std::size_t amp = rest.find('&');
      std::string_view item = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      if (item.empty()) continue;
      std::size_t eq = item.find('=');
      auto key = PercentDecode(item.substr(0, eq), true);
      auto value = PercentDecode(
          eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1), true);
      if (!key || !value) return false;
      query.emplace(std::move(*key), std::move(*value));
    }
  }
  r.target = std::string(target);
  r.path = std::move(*path);
  r.query = std::move(query);
  return true;
}

}  // namespace payorch::http
