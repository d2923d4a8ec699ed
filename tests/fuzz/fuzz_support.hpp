// What the fuzz targets share: a reader that turns the fuzzer's bytes into
// structured values, a check that aborts (libFuzzer reports it as a crash, the
// replay test as a failure), and raw HTTP requests parsed by Beast the way the
// servers parse them. Beast lives in raw_http.cpp alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace payorch::fuzz {

// A property every input must keep; a failure aborts with the message.
#define FUZZ_CHECK(cond, what)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d): %s\n", #cond, __FILE__, \
                   __LINE__, std::string(what).c_str());                              \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

// Reads the fuzzer's bytes front to back; past the end everything is zero or empty.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  explicit Input(std::string_view bytes) : rest_(bytes) {}

  bool Empty() const { return rest_.empty(); }
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  uint64_t Uint64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  // A string of up to `max` bytes, its length taken from the input (one or two bytes).
  std::string String(size_t max = 64) {
    size_t n = Byte();
    if (n == 255) n = (size_t{Byte()} << 8) | Byte();
    n = std::min({n, max, rest_.size()});
    std::string s(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return s;
  }
  // Everything not read yet.
  std::string_view Rest() {
    std::string_view r = rest_;
    rest_ = {};
    return r;
  }

 private:
  std::string_view rest_;
};

// One HTTP request as a server sees it after Beast's parser.
struct RawRequest {
  std::string method;  // as sent
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::string body;
  bool keep_alive = false;
};

// Parses the first request of `bytes` with the servers' limits and removes what it
// consumed. nullopt when Beast refuses it (a server's 400/413/431) or it is
// incomplete; `bytes` is then empty.
std::optional<RawRequest> ParseRequest(std::string_view& bytes, size_t header_limit,
                                       size_t body_limit);

}  // namespace payorch::fuzz
