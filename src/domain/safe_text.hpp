// Text from outside (parser messages, PayEx problem details, AMQP headers) made fit
// for a log line, a header or an event: masked, one line, bounded. Pure functions,
// any thread, never throw.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace payorch::domain {

// Every run of 8 or more digits (an optional '+' in front) keeps only its last 4:
// "+4798765432" -> "+47****5432" style masking for text that may hold an MSISDN
// (raw bodies, parser details), where no field tells where the number is. Numbers
// written in groups ("+47 987 65 432") count as one run; a date (2026-11-24) is kept.
std::string MaskDigits(std::string_view text);

// The bound of SafeDetail unless a caller asks for another.
inline constexpr std::size_t kMaxDetailBytes = 300;

// MaskDigits, then one line of valid UTF-8: control characters (newlines, escape
// codes, DEL) become spaces, a byte that is not UTF-8 becomes '?'; longer than
// `max_bytes` is cut on a character boundary and ends "... (N bytes)". The result
// is at most max_bytes + 32 bytes long.
std::string SafeDetail(std::string_view text, std::size_t max_bytes = kMaxDetailBytes);

// What SafeDetail promises (for tests and fuzz targets): one line of valid UTF-8
// without control characters, at most max_bytes + 32 bytes, nothing left to mask.
bool IsSafeDetail(std::string_view text, std::size_t max_bytes = kMaxDetailBytes);

}  // namespace payorch::domain
