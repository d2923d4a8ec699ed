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

// Number of Unicode code points of a UTF-8 string; -1 if it is not valid UTF-8
// (strict: no overlong forms, surrogates or code points past U+10FFFF).
int Utf8Length(std::string_view s);

// Characters that must not reach a terminal, a log line or PayEx from outside:
// C0 controls and DEL, C1 controls (U+0080..U+009F, the 8-bit escape among them),
// the line and paragraph separators U+2028/U+2029 and the bidirectional
// overrides and isolates (U+202A..U+202E, U+2066..U+2069), which reorder what a
// terminal shows.
bool IsControl(char32_t code_point);
// Strict UTF-8 without any IsControl character.
bool IsPlainText(std::string_view s);

// `text` with every IsControl character and every byte that is not UTF-8 written
// as \xNN escapes of its bytes: one line that a terminal shows as it is. Nothing
// masked, nothing cut (for lines built elsewhere: SafeDetail for outsiders' words).
std::string EscapeControls(std::string_view text);

// The bound of SafeDetail unless a caller asks for another.
inline constexpr std::size_t kMaxDetailBytes = 300;

// MaskDigits, then one line of valid UTF-8: IsControl characters (newlines, escape
// codes, DEL, separators, bidi overrides) become spaces, a byte that is not UTF-8
// becomes '?'; longer than
// `max_bytes` is cut on a character boundary and ends "... (N bytes)". The result
// is at most max_bytes + 32 bytes long.
std::string SafeDetail(std::string_view text, std::size_t max_bytes = kMaxDetailBytes);

// What SafeDetail promises (for tests and fuzz targets): IsPlainText, at most
// max_bytes + 32 bytes, nothing left to mask.
bool IsSafeDetail(std::string_view text, std::size_t max_bytes = kMaxDetailBytes);

}  // namespace payorch::domain
