#include "ctl/output.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <ctime>
#include <vector>

#include "domain/decide.hpp"

namespace payorch::ctl {
namespace {

size_t Width(const std::string& s) {
  int n = domain::Utf8Length(s);
  return n < 0 ? s.size() : static_cast<size_t>(n);
}

}  // namespace

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], Width(row[i]));
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size()) line += std::string(widths[i] - Width(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  print(headers_);
  for (const auto& row : rows_) print(row);
}

std::string FormatTime(domain::Time t) {
  if (t == domain::Time{}) return "-";
  const int64_t ms = domain::ToMillis(t);
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(((ms % 1000) + 1000) % 1000));
  return buf;
}

std::string FormatTime(const std::optional<domain::Time>& t) {
  return t ? FormatTime(*t) : "-";
}

std::string FormatAge(std::optional<std::chrono::milliseconds> age) {
  if (!age) return "-";
  int64_t s = std::max<int64_t>(0, age->count() / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 120 * 60) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string ShowText(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes && domain::IsPlainText(text)) return std::string(text);
  return domain::SafeDetail(text, max_bytes);
}

std::string ShowBytes(std::string_view bytes, size_t max_bytes) {
  const std::string_view shown = bytes.substr(0, max_bytes);
  bool printable = domain::Utf8Length(shown) >= 0;
  for (char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\n' && c != '\r' && c != '\t') printable = false;
  }
  std::string out;
  if (printable) {
    out = std::string(shown);
  } else {
    // Hex of a copy whose ASCII digit runs are masked first: protobuf strings are
    // plain bytes, so an MSISDN would otherwise be readable in the dump.
    const std::string masked = MaskDigits(shown);
    static const char* kHex = "0123456789abcdef";
    for (size_t i = 0; i < masked.size(); ++i) {
      if (i > 0) out += (i % 32 == 0) ? '\n' : ' ';
      const auto u = static_cast<unsigned char>(masked[i]);
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
    return out + (bytes.size() > max_bytes
                      ? "\n... (" + std::to_string(bytes.size()) + " bytes in all)"
                      : "");
  }
  out = MaskDigits(out);
  if (bytes.size() > max_bytes) out += "\n... (" + std::to_string(bytes.size()) + " bytes in all)";
  return out;
}

boost::json::value JsonTime(const std::optional<domain::Time>& t) {
  if (!t || *t == domain::Time{}) return nullptr;
  return boost::json::value(FormatTime(*t));
}

boost::json::value ToJson(const bus::FieldValue& v) {
  switch (v.kind) {
    case 't': return boost::json::value(v.i != 0);
    case 'b':
    case 's':
    case 'I':
    case 'l': return boost::json::value(v.i);
    case 'B':
    case 'u':
    case 'i':
    case 'L':
    case 'T': return boost::json::value(v.u);
    case 'f':
    case 'd': return boost::json::value(v.f);
    case 'D': return boost::json::value(v.ToText());
    case 'S':
    case 'x': return boost::json::value(v.s);
    case 'A': {
      boost::json::array a;
      for (const auto& e : v.array) a.push_back(ToJson(e));
      return a;
    }
    case 'F': return ToJson(v.table);
    default: return nullptr;
  }
}

boost::json::value ToJson(const bus::Table& table) {
  boost::json::object o;
  for (const auto& [key, value] : table) o[key] = ToJson(value);
  return o;
}

void PrintJson(std::ostream& out, const boost::json::value& value) {
  out << boost::json::serialize(value) << '\n';
}

}  // namespace payorch::ctl
