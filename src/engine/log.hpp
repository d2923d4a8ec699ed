// Structured logs of payorchd: one line per event, "event=... key=value ...", or the
// same fields as one JSON object per line. Thread-safe (spdlog's stderr sink has its
// own lock); Boost-free. Callers mask MSISDNs and never pass tokens.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace payorch::engine {

enum class Level { kDebug, kInfo, kWarn, kError };

using Fields = std::vector<std::pair<std::string_view, std::string>>;

// A field value longer than this is cut in the line ("...(N bytes)").
inline constexpr size_t kMaxLogFieldBytes = 1024;

// Configures the process-wide logger (stderr). json: one JSON object per line.
void InitLogging(Level min_level, bool json);

// Tests (the simulation): lines at min_level and above go to `sink` (text format)
// instead of stderr; an empty sink goes back to stderr.
using LogSink = std::function<void(Level level, std::string_view line)>;
void SetLogSink(Level min_level, LogSink sink);

bool LogEnabled(Level level);
// event=<event> k=v ...: values with spaces or quotes are quoted.
void Log(Level level, std::string_view event, const Fields& fields = {});
// A line that already is "event=... k=v ..." (the PayEx client's call lines).
void LogLine(Level level, std::string_view line);

}  // namespace payorch::engine
