#include "config/setting.hpp"

#include <algorithm>
#include <charconv>

#include "domain/safe_text.hpp"

namespace payorch::config::detail {

std::string Quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string GetString(const Input& in) {
  if (!in.toml) return in.text;
  if (!in.toml->is_string()) throw Bad{"must be a string (in quotes)"};
  return in.toml->as_string().str;
}

int64_t GetInt(const Input& in) {
  if (in.toml) {
    if (!in.toml->is_integer()) throw Bad{"must be an integer"};
    return in.toml->as_integer();
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(in.text.data(), in.text.data() + in.text.size(), v);
  if (ec != std::errc() || end != in.text.data() + in.text.size())
    throw Bad{Quoted(in.text) + " is not an integer"};
  return v;
}

bool GetBool(const Input& in) {
  if (in.toml) {
    if (!in.toml->is_boolean()) throw Bad{"must be true or false"};
    return in.toml->as_boolean();
  }
  if (in.text == "true") return true;
  if (in.text == "false") return false;
  throw Bad{Quoted(in.text) + " is not true or false"};
}

double GetDouble(const Input& in) {
  if (in.toml) {
    if (in.toml->is_integer()) return static_cast<double>(in.toml->as_integer());
    if (!in.toml->is_floating()) throw Bad{"must be a number"};
    return in.toml->as_floating();
  }
  double v = 0;
  auto [end, ec] = std::from_chars(in.text.data(), in.text.data() + in.text.size(), v);
  if (ec != std::errc() || end != in.text.data() + in.text.size())
    throw Bad{Quoted(in.text) + " is not a number"};
  return v;
}

std::vector<std::string> GetStrings(const Input& in) {
  std::vector<std::string> out;
  if (in.toml) {
    if (!in.toml->is_array()) throw Bad{"must be an array of strings, e.g. [\"https://a\"]"};
    for (const auto& item : in.toml->as_array()) {
      if (!item.is_string()) throw Bad{"must be an array of strings"};
      out.push_back(item.as_string().str);
    }
    return out;
  }
  // --set: comma separated.
  size_t start = 0;
  while (start < in.text.size()) {
    size_t comma = in.text.find(',', start);
    if (comma == std::string::npos) comma = in.text.size();
    out.push_back(in.text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

milliseconds GetDuration(const Input& in, bool allow_zero) {
  std::string text;
  if (in.toml) {
    if (!in.toml->is_string())
      throw Bad{"must be a duration in quotes, e.g. \"500ms\", \"3s\", \"10m\", \"1h\""};
    text = in.toml->as_string().str;
  } else {
    text = in.text;
  }
  auto d = ParseDuration(text);
  if (!d)
    throw Bad{Quoted(text) + " is not a duration (use e.g. \"500ms\", \"3s\", \"10m\", \"1h\")"};
  if (!allow_zero && d->count() == 0) throw Bad{"must be positive, got " + Quoted(text)};
  return *d;
}

// An http(s) URL with a host; the scheme, lowercased, or a Bad.
// allow_port_zero: for http.callback_base_url, where port 0 means "the port
// payorchd binds" (http.port = 0 in tests and the demo).
std::string CheckHttpUrl(const std::string& url, bool allow_port_zero) {
  size_t sep = url.find("://");
  if (sep == std::string::npos)
    throw Bad{Quoted(url) + " is not a URL (expected http(s)://host/...)"};
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
  if (scheme != "http" && scheme != "https")
    throw Bad{Quoted(url) + " must use http or https, not " + Quoted(scheme)};
  std::string rest = url.substr(sep + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) throw Bad{Quoted(url) + " must not carry a user"};
  std::string host = authority;
  if (!host.empty() && host.front() == '[') {  // [IPv6]:port
    size_t close = host.find(']');
    if (close == std::string::npos) throw Bad{Quoted(url) + " has an unclosed [IPv6 address]"};
    std::string port = host.substr(close + 1);
    host = host.substr(0, close + 1);
    if (!port.empty() && port.front() != ':') throw Bad{Quoted(url) + " is not a valid URL"};
    authority = port.empty() ? "" : port.substr(1);
  } else {
    size_t colon = host.find(':');
    authority = colon == std::string::npos ? "" : host.substr(colon + 1);
    host = host.substr(0, colon);
    if (colon != std::string::npos && authority.empty())
      throw Bad{Quoted(url) + " has an empty port"};
  }
  if (host.empty()) throw Bad{Quoted(url) + " has no host"};
  if (!authority.empty()) {
    int port = 0;
    auto [end, ec] = std::from_chars(authority.data(), authority.data() + authority.size(), port);
    if (ec != std::errc() || end != authority.data() + authority.size() || port < (allow_port_zero ? 0 : 1) || port > 65535)
      throw Bad{Quoted(url) + " has a bad port " + Quoted(authority)};
  }
  for (char c : url)
    if (static_cast<unsigned char>(c) <= ' ')
      throw Bad{Quoted(url) + " contains spaces or control characters"};
  return scheme;
}

// The password part of an amqp:// URL, nullopt when it has none.
std::optional<std::string> UrlPassword(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return std::nullopt;
  size_t end = url.find_first_of("/?#", scheme + 3);
  std::string authority = url.substr(scheme + 3, end == std::string::npos ? end : end - scheme - 3);
  size_t at = authority.rfind('@');
  if (at == std::string::npos) return std::nullopt;
  size_t colon = authority.find(':');
  if (colon == std::string::npos || colon > at) return std::nullopt;
  return authority.substr(colon + 1, at - colon - 1);
}

std::string MaskUrlPassword(const std::string& urls) {
  const auto list = bus::BrokerUrls(urls);
  if (list.size() > 1) {  // a cluster's nodes, each masked
    std::string out;
    for (const std::string& url : list) out += (out.empty() ? "" : ",") + MaskUrlPassword(url);
    return out;
  }
  const std::string& url = urls;
  auto password = UrlPassword(url);
  if (!password) return url;
  size_t scheme = url.find("://");
  size_t colon = url.find(':', scheme + 3);
  return url.substr(0, colon + 1) + "***" + url.substr(colon + 1 + password->size());
}

// Values that need quotes in a log line are quoted.
std::string ShowString(const std::string& s) {
  if (s.empty() || s.find_first_of(" \"=\t") != std::string::npos) return Quoted(s);
  return s;
}

}  // namespace payorch::config::detail
