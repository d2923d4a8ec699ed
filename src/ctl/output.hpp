// Output helpers of payorchctl: aligned text tables for people, JSON values for
// scripts (-o json), times and ages, and masking of MSISDNs in free text.
// Pure functions and a plain value type; any thread.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "bus/message.hpp"
#include "domain/safe_text.hpp"
#include "domain/types.hpp"

namespace payorch::ctl {

enum class Format { kTable, kJson, kCsv };

// Columns aligned on the widest cell; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "2026-11-24T10:00:00.123Z"; "-" for the zero time.
std::string FormatTime(domain::Time t);
std::string FormatTime(const std::optional<domain::Time>& t);
// A coarse age for tables: "45s", "12m", "3h", "2d"; "-" when unknown.
std::string FormatAge(std::optional<std::chrono::milliseconds> age);
using domain::MaskDigits;  // domain/safe_text.hpp
// A name or id someone else wrote (a dead letter's id, routing key, exchange), for
// a terminal: as it is when it is plain text (domain::IsPlainText) of at most
// `max_bytes`, so that it can be typed back; else SafeDetail's one masked line.
std::string ShowText(std::string_view text, size_t max_bytes = 256);
// The bytes as text when they are printable UTF-8, else as hex; masked (MaskDigits).
std::string ShowBytes(std::string_view bytes, size_t max_bytes = 4096);

// JSON: times as ISO strings (null when unset), AMQP field values by their kind.
boost::json::value JsonTime(const std::optional<domain::Time>& t);
boost::json::value ToJson(const bus::FieldValue& value);
boost::json::value ToJson(const bus::Table& table);
// One JSON document and a newline.
void PrintJson(std::ostream& out, const boost::json::value& value);

}  // namespace payorch::ctl
