// The settings of payorchd's configuration file, one at a time: how a value is read
// (from the file or from --set), checked and shown, and the helpers the settings
// table (settings.cpp) and the loader (config.cpp) share. Internal to src/config.
#pragma once

#include <toml.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace payorch::config::detail {

using std::chrono::milliseconds;


// A value of a setting: from the file (toml) or from --set (text).
struct Input {
  const toml::value* toml = nullptr;
  std::string text;
};

// What is wrong with one value; LoadConfig adds the file, line and setting.
struct Bad {
  std::string what;
};

std::string Quoted(std::string_view s);
std::string GetString(const Input& in);
int64_t GetInt(const Input& in);
bool GetBool(const Input& in);
double GetDouble(const Input& in);
std::vector<std::string> GetStrings(const Input& in);
milliseconds GetDuration(const Input& in, bool allow_zero);
std::string CheckHttpUrl(const std::string& url, bool allow_port_zero = false);
std::optional<std::string> UrlPassword(const std::string& url);
std::string MaskUrlPassword(const std::string& url);
std::string ShowString(const std::string& s);

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

enum class StrRule {
  kAny,
  kNonEmpty,
  kName,
  kHttpUrl,
  kHttpUrlOrEmpty,
  kAmqpUrl,
  kCallbackUrl,
  kReadableFileOrEmpty
};

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
              case StrRule::kCallbackUrl:  // empty: no callbacks, polling alone
                if (!v.empty()) CheckHttpUrl(v, true);
                break;
              case StrRule::kReadableFileOrEmpty:
                if (!v.empty() && !std::ifstream(v).good())
                  throw Bad{"cannot read " + Quoted(v) + ": " + std::strerror(errno)};
                break;
              case StrRule::kAmqpUrl: {  // one, or a cluster's nodes separated by commas
                const auto urls = bus::BrokerUrls(v);
                if (urls.empty()) throw Bad{"must not be empty"};
                for (const std::string& u : urls)
                  if (!u.starts_with("amqp://") && !u.starts_with("amqps://"))
                    throw Bad{Quoted(MaskUrlPassword(u)) +
                              " must be amqp://user@host:port/vhost or amqps://... (TLS)"};
                break;
              }
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

// Every setting, in the order of config/payorch.toml; its sections in that order.
const std::vector<Setting>& Settings();
const std::vector<std::string>& SectionNames();
bool IsSection(const std::string& name);
const Setting* FindSetting(const std::string& section, const std::string& key);

}  // namespace payorch::config::detail
