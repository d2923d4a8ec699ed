// What the benchmark programs share: percentiles, and a process's CPU time and
// memory read from /proc. Header-only; figures, never assertions.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace payorch::bench {

using Clock = std::chrono::steady_clock;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

inline double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

// utime + stime from a /proc stat file (a process's or one thread's), in seconds;
// `name` gets the name between the parentheses when asked for.
inline double StatCpuSeconds(const std::string& stat_path, std::string* name = nullptr) {
  std::ifstream f(stat_path);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto open = s.find('(');
  auto close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return 0;
  if (name) *name = s.substr(open + 1, close - open - 1);
  std::istringstream in(s.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// utime + stime of a process, in seconds.
inline double CpuSeconds(pid_t pid) {
  return StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
}

// CPU seconds of a process's live threads by thread name (payorchd names its
// threads: payorch-writer, payorch-consume, ...; the engine's is "payorchd").
inline std::map<std::string, double> ThreadCpuSeconds(pid_t pid) {
  std::map<std::string, double> out;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
    std::string name;
    double s = StatCpuSeconds(task.path().string() + "/stat", &name);
    if (!name.empty()) out[name] += s;
  }
  return out;
}

// A "VmXXX:" line of a process's /proc status (kB there), in MiB.
inline double StatusMiB(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) / 1024.0;
  return 0;
}

// Peak resident set (VmHWM) and resident set now (VmRSS) of a process, in MiB.
inline double PeakRssMiB(pid_t pid) { return StatusMiB(pid, "VmHWM:"); }
inline double RssMiB(pid_t pid) { return StatusMiB(pid, "VmRSS:"); }

}  // namespace payorch::bench
