#include "domain/safe_text.hpp"

#include <cstdint>
#include <vector>

namespace payorch::domain {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The length of the UTF-8 sequence starting at s[i], or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF included); its code
// point in `cp`.
size_t Utf8Sequence(std::string_view s, size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t n = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

}  // namespace

std::string MaskDigits(std::string_view text) {
  // A number is a run of digits, possibly in groups separated by one space or dash
  // ("+47 412 34 567", "412-34-567", "0047 41234567"); 8 digits or more is masked,
  // except a date (2026-11-24), which is no MSISDN and which operators need.
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!IsDigit(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    std::string digits;
    std::vector<size_t> groups;
    bool dashes_only = true;
    size_t j = i;
    for (;;) {
      const size_t start = j;
      while (j < text.size() && IsDigit(text[j])) digits.push_back(text[j++]);
      groups.push_back(j - start);
      if (j + 1 < text.size() && (text[j] == ' ' || text[j] == '-') && IsDigit(text[j + 1])) {
        if (text[j] != '-') dashes_only = false;
        ++j;
        continue;
      }
      break;
    }
    const bool date = groups.size() == 3 && dashes_only && groups[0] == 4 && groups[1] == 2 &&
                      groups[2] == 2;
    if (digits.size() >= 8 && !date) {
      // Country code after a '+' stays, like MaskMsisdn's "+47****5432".
      const bool plus = i > 0 && text[i - 1] == '+' && digits.size() > 8;
      if (plus) out.append(digits.substr(0, 2));
      out.append("****");
      out.append(digits.substr(digits.size() - 4));
    } else {
      out.append(text.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

bool IsControl(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
         (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

int Utf8Length(std::string_view s) {
  int count = 0;
  char32_t cp = 0;
  for (size_t i = 0; i < s.size(); ++count) {
    const size_t n = Utf8Sequence(s, i, cp);
    if (n == 0) return -1;
    i += n;
  }
  return count;
}

bool IsPlainText(std::string_view s) {
  char32_t cp = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8Sequence(s, i, cp);
    if (n == 0 || IsControl(cp)) return false;
    i += n;
  }
  return true;
}

std::string EscapeControls(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  char32_t cp = 0;
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8Sequence(text, i, cp);
    const bool escape = n == 0 || IsControl(cp);
    if (n == 0) n = 1;
    if (!escape) {
      out.append(text.substr(i, n));
    } else {
      for (size_t k = i; k < i + n; ++k) {
        const auto byte = static_cast<unsigned char>(text[k]);
        out += "\\x";
        out += kHex[byte >> 4];
        out += kHex[byte & 0xF];
      }
    }
    i += n;
  }
  return out;
}

std::string SafeDetail(std::string_view text, std::size_t max_bytes) {
  // Characters first, so that a number split by a newline is masked as one.
  std::string clean;
  clean.reserve(text.size());
  char32_t cp = 0;
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8Sequence(text, i, cp);
    if (n == 0) {
      clean.push_back('?');
      n = 1;
    } else if (IsControl(cp)) {
      clean.push_back(' ');
    } else {
      clean.append(text.substr(i, n));
    }
    i += n;
  }
  std::string out = MaskDigits(clean);
  if (out.size() <= max_bytes) return out;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
  out.resize(cut);
  // The size in a form MaskDigits leaves alone (under 8 digits).
  out += text.size() < 10'000'000 ? "... (" + std::to_string(text.size()) + " bytes)"
                                  : "... (" + std::to_string(text.size() >> 20) + " MiB)";
  return out;
}

bool IsSafeDetail(std::string_view text, std::size_t max_bytes) {
  return text.size() <= max_bytes + 32 && IsPlainText(text) && MaskDigits(text) == text;
}

}  // namespace payorch::domain
