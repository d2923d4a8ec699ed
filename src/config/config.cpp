#include "config/config.hpp"

#include "config/setting.hpp"

#include "domain/safe_text.hpp"

#include <toml.hpp>

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

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
    if (const char* v = std::getenv(std::string(name).c_str())) return std::string(v);
    return SystemdCredential(std::getenv("CREDENTIALS_DIRECTORY"), name);
  };
}

std::optional<std::string> SystemdCredential(const char* directory, std::string_view name) {
  if (directory == nullptr || *directory == '\0' || name.find('/') != std::string_view::npos)
    return std::nullopt;
  std::ifstream f(std::string(directory) + "/" + std::string(name), std::ios::binary);
  if (!f) return std::nullopt;
  std::string value(64 * 1024 + 1, '\0');
  f.read(value.data(), static_cast<std::streamsize>(value.size()));
  value.resize(static_cast<size_t>(f.gcount()));
  if (value.size() > 64 * 1024) return std::nullopt;  // not a secret: never read whole
  // `echo secret > file` leaves a newline that is not part of the secret.
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (!value.empty() && value.back() == '\r') value.pop_back();
  return value;
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

std::vector<uint32_t> PartitionList(const std::string& text, uint32_t partitions) {
  std::vector<uint32_t> list;
  if (text == "all") {
    for (uint32_t p = 0; p < partitions; ++p) list.push_back(p);
    return list;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? comma : comma - start);
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    while (!part.empty() && part.back() == ' ') part.pop_back();
    uint32_t p = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), p);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size())
      throw std::invalid_argument("\"" + text +
                                  "\" is neither \"all\" nor partition numbers such as \"0,1\"");
    if (p >= partitions)
      throw std::invalid_argument("partition " + part + " does not exist: bus.topology.partitions is " +
                                  std::to_string(partitions) + " (0 to " +
                                  std::to_string(partitions - 1) + ")");
    if (std::find(list.begin(), list.end(), p) != list.end())
      throw std::invalid_argument("partition " + part + " is named twice");
    list.push_back(p);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(list.begin(), list.end());
  return list;
}

std::string PartitionStorePath(const std::string& path, uint32_t p) {
  std::string out = path;
  const std::string mark = "{partition}";
  for (size_t at = out.find(mark); at != std::string::npos; at = out.find(mark, at))
    out.replace(at, mark.size(), std::to_string(p));
  return out;
}

namespace {

using namespace detail;


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
                          " is not set: the PayEx bearer token comes only from the environment (or "
                          "a systemd credential of that name)");
  for (char ch : c.payex.token)
    if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f)
      throw ConfigError(path, "payex.token",
                        std::string(kPayexTokenEnv) + " contains spaces or control characters");

  c.callback_secret = get(kCallbackSecretEnv);
  // Without callbacks (http.callback_base_url empty) no token is made or checked.
  const bool callbacks = !c.http.callback_base_url.empty();
  if (c.callback_secret.empty() && callbacks)
    throw ConfigError(path, "callback_secret",
                      std::string(kCallbackSecretEnv) +
                          " is not set: the key of the callback tokens comes only from the "
                          "environment or a systemd credential (e.g. openssl rand -hex 32)");
  if (!c.callback_secret.empty() && c.callback_secret.size() < kMinCallbackSecretBytes)
    throw ConfigError(path, "callback_secret",
                      std::string(kCallbackSecretEnv) + " is " +
                          std::to_string(c.callback_secret.size()) + " bytes; at least " +
                          std::to_string(kMinCallbackSecretBytes) +
                          " are required (e.g. openssl rand -hex 32)");

  // A password written in bus.url would be a secret in the file; RabbitMQ's
  // well-known guest:guest of a local broker is the one exception.
  const std::vector<std::string> urls = bus::BrokerUrls(c.bus.url);
  for (const std::string& url : urls)
    if (auto in_url = UrlPassword(url); in_url && *in_url != "guest")
      throw ConfigError(path, "bus.url",
                        "contains a password: write amqp://user@host/ and set " +
                            std::string(kAmqpPasswordEnv) + " instead");
  std::string password = get(kAmqpPasswordEnv);
  if (!password.empty()) {
    std::string with;  // every node's URL with the password
    for (const std::string& url : urls) {
      size_t start = url.find("://") + 3;
      size_t end = url.find_first_of("/?#", start);
      std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
      size_t at = authority.rfind('@');
      if (at == std::string::npos || at == 0)
        throw ConfigError(path, "bus.url",
                          std::string(kAmqpPasswordEnv) +
                              " is set but the URL names no user (amqp://user@host:port/vhost)");
      std::string user = authority.substr(0, std::min(authority.find(':'), at));
      with += (with.empty() ? "" : ",") + url.substr(0, start) + user + ":" +
              boost::urls::encode(password, boost::urls::unreserved_chars) + url.substr(start + at);
    }
    c.bus.url = with;
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

  // A store per partition: the path must say where each one lives.
  if (b.topology.partitions > 1)
    need(c.store.path.find("{partition}") != std::string::npos, "store.path",
         "must contain {partition} when bus.topology.partitions is " +
             std::to_string(b.topology.partitions) +
             " (each partition has its own store, e.g. /var/lib/payorch/p{partition}/payorch.db)");

  for (auto [key, text] : {std::pair{"partitions", &c.instance.partitions},
                           std::pair{"prefer", &c.instance.prefer}}) {
    try {
      (void)PartitionList(*text, b.topology.partitions);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(path, std::string("instance.") + key, e.what());
    }
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
