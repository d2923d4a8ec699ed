#include "config/config.hpp"

#include "domain/safe_text.hpp"

#include <toml.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <limits>
#include <tuple>

namespace payorch::config {

using std::chrono::milliseconds;

ConfigError::ConfigError(std::string file, std::string setting, std::string problem, int line)
    : std::runtime_error(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " +
                         (setting.empty() ? std::string() : setting + ": ") + problem),
      file_(std::move(file)),
      setting_(std::move(setting)),
      problem_(std::move(problem)),
      line_(line) {}

EnvLookup ProcessEnv() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::optional<milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  while (!text.empty()) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data() || n < 0) return std::nullopt;
    text.remove_prefix(end - text.data());
    int64_t unit;
    if (text.starts_with("ms")) {
      unit = 1, text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      unit = 1000, text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      unit = 60'000, text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      unit = 3'600'000, text.remove_prefix(1);
    } else {
      return std::nullopt;  // a bare number is refused: "30" could mean s or ms
    }
    if (n > (std::numeric_limits<int64_t>::max() - total) / unit) return std::nullopt;
    total += n * unit;
  }
  return milliseconds(total);
}

std::string FormatDuration(milliseconds d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

namespace {

// A value of a setting: from the file (toml) or from --set (text).
struct Input {
  const toml::value* toml = nullptr;
  std::string text;
};

// What is wrong with one value; LoadConfig adds the file, line and setting.
struct Bad {
  std::string what;
};

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
std::string CheckHttpUrl(const std::string& url, bool allow_port_zero = false) {
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

std::string MaskUrlPassword(const std::string& url) {
  auto password = UrlPassword(url);
  if (!password) return url;
  size_t scheme = url.find("://");
  size_t colon = url.find(':', scheme + 3);
  return url.substr(0, colon + 1) + "***" + url.substr(colon + 1 + password->size());
}

std::string PctEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Values that need quotes in a log line are quoted.
std::string ShowString(const std::string& s) {
  if (s.empty() || s.find_first_of(" \"=\t") != std::string::npos) return Quoted(s);
  return s;
}

struct Setting {
  std::string section;
  std::string key;
  std::function<void(Config&, const Input&)> set;
  std::function<std::string(const Config&)> show;
  std::string name() const { return section + "." + key; }
};

// The field of a Config a setting is bound to; works on const and mutable Configs.
#define FIELD(expr)      \
  [](auto& c) -> auto& { \
    return c.expr;       \
  }

template <class Get>
Setting Dur(std::string section, std::string key, Get get, bool allow_zero = false) {
  return {std::move(section), std::move(key),
          [=](Config& c, const Input& in) { get(c) = GetDuration(in, allow_zero); },
          [=](const Config& c) { return FormatDuration(get(c)); }};
}

template <class Get>
Setting Int(std::string section, std::string key, Get get, int64_t min,
            int64_t max = std::numeric_limits<int64_t>::max()) {
  return {std::move(section), std::move(key),
          [=](Config& c, const Input& in) {
            int64_t v = GetInt(in);
            if (v < min || v > max)
              throw Bad{"must be " +
                        (max == std::numeric_limits<int64_t>::max()
                             ? "at least " + std::to_string(min)
                             : "between " + std::to_string(min) + " and " + std::to_string(max)) +
                        ", got " + std::to_string(v)};
            using T = std::remove_reference_t<decltype(get(c))>;
            get(c) = static_cast<T>(v);
          },
          [=](const Config& c) { return std::to_string(get(c)); }};
}

template <class Get>
Setting Bool(std::string section, std::string key, Get get) {
  return {std::move(section), std::move(key),
          [=](Config& c, const Input& in) { get(c) = GetBool(in); },
          [=](const Config& c) { return std::string(get(c) ? "true" : "false"); }};
}

enum class StrRule { kAny, kNonEmpty, kName, kHttpUrl, kHttpUrlOrEmpty, kAmqpUrl, kCallbackUrl };

template <class Get>
Setting Str(std::string section, std::string key, Get get, StrRule rule) {
  return {std::move(section), std::move(key),
          [=](Config& c, const Input& in) {
            std::string v = GetString(in);
            switch (rule) {
              case StrRule::kAny: break;
              case StrRule::kNonEmpty:
                if (v.empty()) throw Bad{"must not be empty"};
                break;
              case StrRule::kName:  // AMQP short strings
                if (v.empty()) throw Bad{"must not be empty"};
                if (v.size() > 255) throw Bad{"is longer than 255 bytes"};
                break;
              case StrRule::kHttpUrlOrEmpty:
                if (v.empty()) break;
                [[fallthrough]];
              case StrRule::kHttpUrl: CheckHttpUrl(v); break;
              case StrRule::kCallbackUrl: CheckHttpUrl(v, true); break;
              case StrRule::kAmqpUrl:
                if (!v.starts_with("amqp://"))
                  throw Bad{Quoted(MaskUrlPassword(v)) +
                            " must be amqp://user@host:port/vhost (amqps is not supported)"};
                break;
            }
            get(c) = std::move(v);
          },
          [=](const Config& c) {
            return ShowString(rule == StrRule::kAmqpUrl ? MaskUrlPassword(get(c)) : get(c));
          }};
}

template <class Get, class E>
Setting Enum(std::string section, std::string key, Get get,
             std::vector<std::pair<std::string, E>> names) {
  return {std::move(section), std::move(key),
          [=](Config& c, const Input& in) {
            std::string v = GetString(in);
            std::string all;
            for (const auto& [name, value] : names) {
              if (name == v) {
                get(c) = value;
                return;
              }
              all += (all.empty() ? "" : ", ") + name;
            }
            throw Bad{Quoted(v) + " is not one of " + all};
          },
          [=](const Config& c) {
            for (const auto& [name, value] : names)
              if (value == get(c)) return name;
            return std::string("?");
          }};
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = [] {
    using SR = StrRule;
    std::vector<Setting> s;
    const std::string p = "payments";
    s.push_back(Dur(p, "confirmation_timeout", FIELD(payments.confirmation_timeout)));
    s.push_back(Dur(p, "msisdn_timeout", FIELD(payments.msisdn_timeout)));
    s.push_back(Dur(p, "first_poll", FIELD(payments.first_poll)));
    s.push_back(Dur(p, "poll_max", FIELD(payments.poll_max)));
    s.push_back(Dur(p, "slow_poll", FIELD(payments.slow_poll)));
    s.push_back(Dur(p, "backoff_base", FIELD(payments.backoff_base)));
    s.push_back(Dur(p, "backoff_cap", FIELD(payments.backoff_cap)));
    s.push_back(Dur(p, "call_watchdog", FIELD(payments.call_watchdog)));
    s.push_back(Dur(p, "transit_horizon", FIELD(payments.transit_horizon)));

    const std::string st = "store";
    s.push_back(Str(st, "path", FIELD(store.path), SR::kNonEmpty));
    s.push_back(Bool(st, "create_if_missing", FIELD(store.options.create_if_missing)));
    s.push_back(Dur(st, "busy_timeout", FIELD(store.options.busy_timeout)));
    s.push_back(Bool(st, "quick_check", FIELD(store.options.quick_check)));
    s.push_back(Int(st, "quick_check_first_mib", FIELD(store.quick_check_first_mib), 0,
                    1'000'000'000));
    s.push_back(
        Int(st, "cache_kib", FIELD(store.options.cache_kib), 0, std::numeric_limits<int>::max()));
    s.push_back(Int(st, "wal_autocheckpoint_pages", FIELD(store.options.wal_autocheckpoint_pages),
                    0, std::numeric_limits<int>::max()));

    const std::string b = "bus";
    s.push_back(Str(b, "url", FIELD(bus.url), SR::kAmqpUrl));
    s.push_back(Int(b, "prefetch", FIELD(bus.prefetch), 1, 65535));
    s.push_back(Str(b, "consumer_tag", FIELD(bus.consumer_tag), SR::kName));
    s.push_back(Int(b, "max_in_flight", FIELD(bus.max_in_flight), 1));
    s.push_back(Int(b, "max_message_bytes", FIELD(bus.max_message_bytes), 1, 128ll << 20));
    s.push_back(Dur(b, "confirm_timeout", FIELD(bus.confirm_timeout)));
    s.push_back(Int(b, "heartbeat_seconds", FIELD(bus.heartbeat_seconds), 0, 65535));
    s.push_back(Dur(b, "connect_timeout", FIELD(bus.connect_timeout)));
    s.push_back(Dur(b, "reconnect_min", FIELD(bus.reconnect_min)));
    s.push_back(Dur(b, "reconnect_max", FIELD(bus.reconnect_max)));
    s.push_back(Bool(b, "declare_topology", FIELD(bus.declare_topology)));

    const std::string t = "bus.topology";
    s.push_back(Str(t, "orders_exchange", FIELD(bus.topology.orders_exchange), SR::kName));
    s.push_back(Str(t, "orders_queue", FIELD(bus.topology.orders_queue), SR::kName));
    s.push_back(Str(t, "orders_binding", FIELD(bus.topology.orders_binding), SR::kName));
    s.push_back(
        Str(t, "dead_letter_exchange", FIELD(bus.topology.dead_letter_exchange), SR::kName));
    s.push_back(Str(t, "dead_letter_queue", FIELD(bus.topology.dead_letter_queue), SR::kName));
    s.push_back(Str(t, "payments_exchange", FIELD(bus.topology.payments_exchange), SR::kName));
    s.push_back(Int(t, "delivery_limit", FIELD(bus.topology.delivery_limit), 1));
    s.push_back(
        Bool(t, "at_least_once_dead_lettering", FIELD(bus.topology.at_least_once_dead_lettering)));

    const std::string x = "payex";
    s.push_back(Str(x, "base_url", FIELD(payex.base_url), SR::kHttpUrl));
    s.push_back(Bool(x, "allow_plain_http", FIELD(payex.allow_plain_http)));
    s.push_back(Str(x, "user_agent", FIELD(payex.user_agent), SR::kNonEmpty));
    s.push_back(Str(x, "ca_file", FIELD(payex.ca_file), SR::kAny));
    s.push_back(Str(x, "payee_id", FIELD(payex.payee_id), SR::kAny));
    s.push_back(Str(x, "payee_name", FIELD(payex.payee_name), SR::kAny));
    s.push_back(Str(x, "product_category", FIELD(payex.product_category), SR::kAny));
    s.push_back(Str(x, "subsite", FIELD(payex.subsite), SR::kAny));
    s.push_back(Setting{x, "host_urls",
                        [](Config& c, const Input& in) {
                          auto urls = GetStrings(in);
                          for (const auto& u : urls) CheckHttpUrl(u);
                          c.payex.host_urls = std::move(urls);
                        },
                        [](const Config& c) {
                          std::string v;
                          for (const auto& u : c.payex.host_urls) v += (v.empty() ? "" : ",") + u;
                          return ShowString(v);
                        }});
    s.push_back(Str(x, "complete_url", FIELD(payex.complete_url), SR::kHttpUrl));
    s.push_back(Str(x, "cancel_url", FIELD(payex.cancel_url), SR::kHttpUrlOrEmpty));
    s.push_back(
        Str(x, "default_payer_user_agent", FIELD(payex.default_payer_user_agent), SR::kNonEmpty));
    s.push_back(Str(x, "default_language", FIELD(payex.default_language), SR::kNonEmpty));
    s.push_back(Bool(x, "payer_reference_in_payer", FIELD(payex.payer_reference_in_payer)));
    s.push_back(Enum(x, "msisdn_field", FIELD(payex.msisdn_field),
                     std::vector<std::pair<std::string, payex::MsisdnField>>{
                         {"msisdn", payex::MsisdnField::kMsisdn},
                         {"mobileNumber", payex::MsisdnField::kMobileNumber},
                         {"both", payex::MsisdnField::kBoth}}));
    s.push_back(Str(x, "default_expand", FIELD(payex.default_expand), SR::kAny));
    s.push_back(Int(x, "max_connections", FIELD(payex.max_connections), 1));
    s.push_back(Dur(x, "request_timeout", FIELD(payex.request_timeout)));
    s.push_back(Dur(x, "connect_timeout", FIELD(payex.connect_timeout)));
    s.push_back(Dur(x, "idle_timeout", FIELD(payex.idle_timeout)));
    s.push_back(Int(x, "max_response_bytes", FIELD(payex.max_response_bytes), 1));
    s.push_back(Dur(x, "operations_cache_ttl", FIELD(payex.operations_cache_ttl), true));
    s.push_back(Int(x, "operations_cache_size", FIELD(payex.operations_cache_size), 0));

    const std::string h = "http";
    s.push_back(Str(h, "listen_address", FIELD(http.listen_address), SR::kNonEmpty));
    s.push_back(Int(h, "port", FIELD(http.port), 0, 65535));
    s.push_back(Str(h, "callback_base_url", FIELD(http.callback_base_url), SR::kCallbackUrl));
    s.push_back(Int(h, "max_body_bytes", FIELD(http.max_body_bytes), 1));
    s.push_back(Dur(h, "read_timeout", FIELD(http.read_timeout)));
    s.push_back(Dur(h, "idle_timeout", FIELD(http.idle_timeout)));
    s.push_back(Int(h, "max_connections", FIELD(http.max_connections), 1, 65'536));

    const std::string a = "admin";
    s.push_back(Str(a, "listen_address", FIELD(admin.listen_address), SR::kNonEmpty));
    s.push_back(Int(a, "port", FIELD(admin.port), 0, 65535));

    const std::string e = "engine";
    s.push_back(Int(e, "max_batch", FIELD(engine.max_batch), 1));
    s.push_back(Int(e, "max_concurrent_calls", FIELD(engine.max_concurrent_calls), 1));
    s.push_back(Dur(e, "commit_delay", FIELD(engine.commit_delay), true));
    s.push_back(Int(e, "cache_payments", FIELD(engine.cache_payments), 100, 100'000'000));
    s.push_back(Setting{e, "payex_rate_limit",
                        [](Config& c, const Input& in) {
                          double v = GetDouble(in);
                          if (!(v >= 0) || v > 1e9)
                            throw Bad{"must be a number of requests per second >= 0 (0: no limit)"};
                          c.engine.payex_rate_limit = v;
                        },
                        [](const Config& c) {
                          char buf[64];
                          auto [end, ec] =
                              std::to_chars(buf, buf + sizeof buf, c.engine.payex_rate_limit);
                          return std::string(buf, end);
                        }});

    const std::string l = "log";
    s.push_back(Enum(l, "level", FIELD(log.level),
                     std::vector<std::pair<std::string, LogLevel>>{{"debug", LogLevel::kDebug},
                                                                   {"info", LogLevel::kInfo},
                                                                   {"warn", LogLevel::kWarn},
                                                                   {"error", LogLevel::kError}}));
    s.push_back(Enum(l, "format", FIELD(log.format),
                     std::vector<std::pair<std::string, LogFormat>>{{"text", LogFormat::kText},
                                                                    {"json", LogFormat::kJson}}));
    return s;
  }();
  return settings;
}
#undef FIELD

const std::vector<std::string>& SectionNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : Settings())
      if (std::find(n.begin(), n.end(), s.section) == n.end()) n.push_back(s.section);
    return n;
  }();
  return names;
}

bool IsSection(const std::string& name) {
  const auto& n = SectionNames();
  return std::find(n.begin(), n.end(), name) != n.end();
}

const Setting* FindSetting(const std::string& section, const std::string& key) {
  for (const auto& s : Settings())
    if (s.section == section && s.key == key) return &s;
  return nullptr;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean \"x\"?)" for the closest candidate 1-2 edits away, else "".
std::string Suggest(const std::string& wrong, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 3;
  for (const auto& c : candidates) {
    size_t d = EditDistance(wrong, c);
    if (d < best_distance) best = &c, best_distance = d;
  }
  return best ? " (did you mean " + Quoted(*best) + "?)" : "";
}

// The environment variable for a key that names a secret, or nullopt.
std::optional<std::string_view> SecretEnvFor(const std::string& key) {
  if (key == "token" || key == "payex_token" || key == "bearer_token") return kPayexTokenEnv;
  if (key == "callback_secret" || key == "secret") return kCallbackSecretEnv;
  if (key == "password" || key == "amqp_password") return kAmqpPasswordEnv;
  return std::nullopt;
}

class Loader {
 public:
  Loader(const std::string& path, Config& config) : path_(path), config_(config) {}

  void ApplyFile() {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path_, ec))
      throw ConfigError(path_, "", "cannot read the configuration file (missing or not a file)");
    // TOML is UTF-8. Checked before toml11 sees the file: toml11 3.7.1 reads out
    // of bounds reporting invalid UTF-8 inside a multi-line string (config_fuzz).
    std::string text;
    {
      std::ifstream in(path_, std::ios::binary);
      char buffer[8192];
      while (in.read(buffer, sizeof buffer) || in.gcount() > 0) text.append(buffer, in.gcount());
      // eof ends the loop; bad is a read error (a truncated file is not parsed).
      if (in.bad() || !in.eof()) throw ConfigError(path_, "", "cannot read the configuration file");
    }
    if (domain::Utf8Length(text) < 0) {
      int line = 1;
      for (size_t start = 0; start <= text.size(); ++line) {
        const size_t end = std::min(text.find('\n', start), text.size());
        if (domain::Utf8Length(std::string_view(text).substr(start, end - start)) < 0) break;
        start = end + 1;
      }
      throw ConfigError(path_, "", "not valid TOML: the file is not UTF-8", line);
    }
    toml::value data;
    try {
      std::istringstream stream(std::move(text));
      data = toml::parse(stream, path_);
    } catch (const std::exception& e) {
      throw ConfigError(path_, "", std::string("not valid TOML: ") + e.what());
    }
    for (const auto& [name, entry] : InFileOrder(data)) {
      const toml::value& value = *entry;
      if (!IsSection(name)) {
        if (SecretEnvFor(name)) throw Secret(name, *SecretEnvFor(name), Line(value));
        throw ConfigError(
            path_, name,
            "unknown setting or section [" + name + "]" + Suggest(name, SectionNames()),
            Line(value));
      }
      if (!value.is_table())
        throw ConfigError(path_, name, "must be a section [" + name + "]", Line(value));
      ApplyTable(name, value);
    }
  }

  void ApplyOverride(const std::string& arg) {
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    size_t dot = name.rfind('.');
    if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == name.size())
      throw ConfigError(path_, name,
                        "--set " + Quoted(arg) + " is not of the form section.key=value");
    std::string section = name.substr(0, dot), key = name.substr(dot + 1);
    std::string text = arg.substr(eq + 1);
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
      text = text.substr(1, text.size() - 2);
    if (auto env = SecretEnvFor(key)) throw Secret(name, *env, 0);
    const Setting* s = Known(section, key, 0);
    Set(*s, Input{nullptr, text}, 0, " (from --set)");
  }

 private:
  ConfigError Secret(const std::string& name, std::string_view env, int line) const {
    return ConfigError(path_, name,
                       "secrets are not read from the file or flags: remove it and set the "
                       "environment variable " +
                           std::string(env) + " instead",
                       line);
  }

  // toml11 keeps tables unordered; the first error reported is the first in the file.
  static std::vector<std::pair<std::string, const toml::value*>> InFileOrder(
      const toml::value& table) {
    // Each line number once: toml11 counts the newlines before a value to find its
    // line, so a comparator asking on every comparison counted the file n log n
    // times (seen by config_fuzz).
    std::vector<std::tuple<int, std::string, const toml::value*>> lined;
    for (const auto& [key, value] : table.as_table()) lined.emplace_back(Line(value), key, &value);
    std::stable_sort(lined.begin(), lined.end(), [](const auto& a, const auto& b) {
      return std::get<0>(a) < std::get<0>(b);
    });
    std::vector<std::pair<std::string, const toml::value*>> entries;
    for (auto& [line, key, value] : lined) entries.emplace_back(std::move(key), value);
    return entries;
  }

  static int Line(const toml::value& v) { return static_cast<int>(v.location().line()); }

  const Setting* Known(const std::string& section, const std::string& key, int line) const {
    if (!IsSection(section))
      throw ConfigError(path_, section + "." + key,
                        "unknown section [" + section + "]" + Suggest(section, SectionNames()),
                        line);
    if (const Setting* s = FindSetting(section, key)) return s;
    std::vector<std::string> keys;
    std::string elsewhere;
    for (const auto& s : Settings()) {
      if (s.section == section) keys.push_back(s.key);
      if (s.key == key) elsewhere = " (it belongs in [" + s.section + "])";
    }
    std::string hint = Suggest(key, keys);
    throw ConfigError(path_, section + "." + key,
                      "unknown setting " + Quoted(key) + " in [" + section + "]" +
                          (hint.empty() ? elsewhere : hint),
                      line);
  }

  void ApplyTable(const std::string& section, const toml::value& table) {
    for (const auto& [key, entry] : InFileOrder(table)) {
      const toml::value& value = *entry;
      std::string name = section + "." + key;
      if (value.is_table() && IsSection(name)) {
        ApplyTable(name, value);
        continue;
      }
      if (auto env = SecretEnvFor(key)) throw Secret(name, *env, Line(value));
      const Setting* s = Known(section, key, Line(value));
      Set(*s, Input{&value, {}}, Line(value), "");
    }
  }

  void Set(const Setting& s, const Input& in, int line, const std::string& from) {
    try {
      s.set(config_, in);
    } catch (const Bad& bad) {
      throw ConfigError(path_, s.name(), bad.what + from, line);
    }
  }

  const std::string& path_;
  Config& config_;
};

void TakeSecrets(const std::string& path, Config& c, const EnvLookup& env) {
  auto get = [&](std::string_view name) -> std::string {
    auto v = env ? env(name) : std::nullopt;
    return v ? *v : std::string();
  };
  c.payex.token = get(kPayexTokenEnv);
  if (c.payex.token.empty())
    throw ConfigError(path, "payex.token",
                      std::string(kPayexTokenEnv) +
                          " is not set: the PayEx bearer token comes only from the environment");
  for (char ch : c.payex.token)
    if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f)
      throw ConfigError(path, "payex.token",
                        std::string(kPayexTokenEnv) + " contains spaces or control characters");

  c.callback_secret = get(kCallbackSecretEnv);
  if (c.callback_secret.empty())
    throw ConfigError(path, "callback_secret",
                      std::string(kCallbackSecretEnv) +
                          " is not set: the key of the callback tokens comes only from the "
                          "environment (e.g. openssl rand -hex 32)");
  if (c.callback_secret.size() < kMinCallbackSecretBytes)
    throw ConfigError(path, "callback_secret",
                      std::string(kCallbackSecretEnv) + " is " +
                          std::to_string(c.callback_secret.size()) + " bytes; at least " +
                          std::to_string(kMinCallbackSecretBytes) +
                          " are required (e.g. openssl rand -hex 32)");

  // A password written in bus.url would be a secret in the file; RabbitMQ's
  // well-known guest:guest of a local broker is the one exception.
  if (auto in_url = UrlPassword(c.bus.url); in_url && *in_url != "guest")
    throw ConfigError(path, "bus.url",
                      "contains a password: write amqp://user@host/ and set " +
                          std::string(kAmqpPasswordEnv) + " instead");
  std::string password = get(kAmqpPasswordEnv);
  if (!password.empty()) {
    const std::string& url = c.bus.url;
    size_t start = url.find("://") + 3;
    size_t end = url.find_first_of("/?#", start);
    std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
    size_t at = authority.rfind('@');
    if (at == std::string::npos || at == 0)
      throw ConfigError(path, "bus.url",
                        std::string(kAmqpPasswordEnv) +
                            " is set but the URL names no user (amqp://user@host:port/vhost)");
    std::string user = authority.substr(0, std::min(authority.find(':'), at));
    c.bus.url = url.substr(0, start) + user + ":" + PctEncode(password) + url.substr(start + at);
  }
}

void Validate(const std::string& path, Config& c) {
  auto need = [&](bool ok, const std::string& setting, const std::string& problem) {
    if (!ok) throw ConfigError(path, setting, problem);
  };
  const domain::Policy& p = c.payments;
  need(p.poll_max >= p.first_poll, "payments.poll_max",
       "must be at least payments.first_poll (" + FormatDuration(p.first_poll) + "), got " +
           FormatDuration(p.poll_max));
  need(p.backoff_cap >= p.backoff_base, "payments.backoff_cap",
       "must be at least payments.backoff_base (" + FormatDuration(p.backoff_base) + "), got " +
           FormatDuration(p.backoff_cap));

  const bus::BusConfig& b = c.bus;
  need(b.reconnect_max >= b.reconnect_min, "bus.reconnect_max",
       "must be at least bus.reconnect_min (" + FormatDuration(b.reconnect_min) + "), got " +
           FormatDuration(b.reconnect_max));
  need(b.topology.dead_letter_queue != b.topology.orders_queue, "bus.topology.dead_letter_queue",
       "must differ from bus.topology.orders_queue");
  need(b.topology.dead_letter_exchange != b.topology.orders_exchange,
       "bus.topology.dead_letter_exchange", "must differ from bus.topology.orders_exchange");
  // The bus's own check (it parses the URL the way rabbitmq-c will); its messages
  // start with the key and never contain the password.
  if (auto bad = b.Validate()) {
    std::string key = bad->substr(0, bad->find_first_of(": "));
    std::string setting = FindSetting("bus", key)            ? "bus." + key
                          : FindSetting("bus.topology", key) ? "bus.topology." + key
                                                             : "bus";
    throw ConfigError(path, setting, *bad);
  }

  payex::ClientOptions& x = c.payex;
  std::string scheme = CheckHttpUrl(x.base_url);  // checked when set; the scheme here
  need(scheme == "https" || x.allow_plain_http, "payex.base_url",
       Quoted(x.base_url) +
           " is plain http: PayEx must be https (set payex.allow_plain_http = true only for "
           "the simulator on loopback)");
  need(x.connect_timeout <= x.request_timeout, "payex.connect_timeout",
       "must not exceed payex.request_timeout (" + FormatDuration(x.request_timeout) + ")");
  // A call is given up (in doubt, read back) after the watchdog: it must outlast the
  // requests one call may make (a GET for the links, then the POST).
  need(c.payments.call_watchdog >= 2 * x.request_timeout, "payments.call_watchdog",
       "must be at least twice payex.request_timeout (" + FormatDuration(x.request_timeout) +
           ")");
  // An attempt may still land at PayEx after the client gave up on it; a resend
  // before the horizon could move the money twice (design.md §2).
  need(c.payments.transit_horizon >= 2 * x.request_timeout, "payments.transit_horizon",
       "must be at least twice payex.request_timeout (" + FormatDuration(x.request_timeout) +
           ")");

  std::string base = c.http.callback_base_url;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  x.callback_url_base = base;
}

}  // namespace

std::vector<std::string> SettingNames() {
  std::vector<std::string> names;
  for (const auto& s : Settings()) names.push_back(s.name());
  return names;
}

Config LoadConfig(const std::string& path, const std::vector<std::string>& overrides,
                  const EnvLookup& env) {
  Config config;
  config.file = path;
  Loader loader(path, config);
  loader.ApplyFile();
  for (const auto& arg : overrides) loader.ApplyOverride(arg);
  // File mistakes first: they are what an operator is editing.
  Validate(path, config);
  TakeSecrets(path, config, env);
  return config;
}

std::string DescribeConfig(const Config& config) {
  std::string line = "event=config.loaded file=" + ShowString(config.file);
  for (const auto& s : Settings()) line += " " + s.name() + "=" + s.show(config);
  // Secrets: only whether they are there.
  line += std::string(" payex.token=") + (config.payex.token.empty() ? "unset" : "***");
  line += std::string(" callback_secret=") + (config.callback_secret.empty() ? "unset" : "***");
  return line;
}

}  // namespace payorch::config
