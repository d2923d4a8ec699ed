#include "engine/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "domain/safe_text.hpp"

namespace payorch::engine {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_json{false};
std::shared_ptr<spdlog::logger> g_logger;
LogSink g_sink;  // set only by tests, before any thread logs

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

spdlog::logger& Logger() {
  if (!g_logger) InitLogging(Level::kInfo, false);
  return *g_logger;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void AppendTextValue(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') plain = false;
  if (plain) {
    out += v;
    return;
  }
  AppendJsonString(out, v);  // quoted and escaped: one line, always parseable
}

// Splits "event=x k=v k2=\"a b\"" back into fields for the JSON format.
Fields SplitLine(std::string_view line, std::string& storage_event) {
  Fields f;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string_view key = line.substr(i, eq - i);
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        value += line[i++];
      }
      ++i;
    } else {
      size_t end = line.find(' ', i);
      if (end == std::string_view::npos) end = line.size();
      value = std::string(line.substr(i, end - i));
      i = end;
    }
    if (key == "event" && storage_event.empty()) {
      storage_event = value;
    } else {
      f.emplace_back(key, std::move(value));
    }
  }
  return f;
}

// A value an outsider sends (an id, a parser's message, a PayEx problem detail)
// must not grow a line without bound: longer values are cut, saying how long they
// were.
std::string_view Bounded(std::string_view v, std::string& storage) {
  if (v.size() <= kMaxLogFieldBytes) return v;
  size_t cut = kMaxLogFieldBytes;
  while (cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  storage.assign(v.substr(0, cut));
  storage += "...(" + std::to_string(v.size()) + " bytes)";
  return storage;
}

std::string Format(std::string_view event, const Fields& fields) {
  std::string out;
  out.reserve(96);
  std::string storage;
  if (g_json.load(std::memory_order_relaxed)) {
    out += "\"event\":";
    AppendJsonString(out, event);
    for (const auto& [k, v] : fields) {
      out += ',';
      AppendJsonString(out, k);
      out += ':';
      AppendJsonString(out, Bounded(v, storage));
    }
  } else {
    out += "event=";
    out += event;
    for (const auto& [k, v] : fields) {
      out += ' ';
      out += k;
      out += '=';
      AppendTextValue(out, Bounded(v, storage));
    }
  }
  return out;
}

}  // namespace

void InitLogging(Level min_level, bool json) {
  g_min_level = static_cast<int>(min_level);
  g_json = json;
  auto logger = std::make_shared<spdlog::logger>(
      "payorch", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  // UTC timestamps; JSON lines carry the same fields as the text lines.
  logger->set_pattern(json ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"
                           : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(ToSpd(min_level));
  logger->flush_on(spdlog::level::debug);
  g_logger = std::move(logger);
}

bool LogEnabled(Level level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

void SetLogSink(Level min_level, LogSink sink) {
  g_min_level = static_cast<int>(min_level);
  g_json = false;
  g_sink = std::move(sink);
}

void Log(Level level, std::string_view event, const Fields& fields) {
  if (!LogEnabled(level)) return;
  if (g_sink) return g_sink(level, Format(event, fields));
  Logger().log(ToSpd(level), "{}", Format(event, fields));
}

void LogLine(Level level, std::string_view line) {
  if (!LogEnabled(level)) return;
  // Lines come preformatted from rooms below (the bus): cut at a character
  // boundary, and no control byte reaches the log raw (no forged lines, no
  // terminal escapes).
  std::string cut;
  const size_t max = 8 * kMaxLogFieldBytes;  // the start-up config line is ~2 KB
  size_t keep = std::min(line.size(), max);
  while (keep < line.size() && keep > 0 && (static_cast<unsigned char>(line[keep]) & 0xC0) == 0x80)
    --keep;
  const std::string_view kept = line.substr(0, keep);
  if (keep < line.size() || !domain::IsPlainText(kept)) {
    cut = domain::EscapeControls(kept);
    if (keep < line.size()) cut += "...(" + std::to_string(line.size()) + " bytes)";
    line = cut;
  }
  if (g_sink) return g_sink(level, line);
  if (!g_json.load(std::memory_order_relaxed)) {
    Logger().log(ToSpd(level), "{}", line);
    return;
  }
  std::string event;
  Fields f = SplitLine(line, event);
  Logger().log(ToSpd(level), "{}", Format(event.empty() ? "log" : event, f));
}

}  // namespace payorch::engine
