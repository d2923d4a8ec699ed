// Test helpers for the HTTP server tests: a blocking HTTP/1.1 client connection on
// POSIX sockets (127.0.0.1 only), a bounded wait for a condition, and a thread-safe
// log capture. Test thread only; every read is bounded, nothing throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace payorch::http::testing {

using namespace std::chrono_literals;

struct RawResponse {
  int status = 0;  // 0: no complete response (see error)
  std::string head;
  std::map<std::string, std::string> headers;  // names lower case; last one wins
  std::string body;
  std::string error;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  explicit Client(uint16_t port);  // connects at once; see connected()
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  const std::string& connect_error() const { return connect_error_; }
  bool Send(std::string_view bytes);  // false on any error (reset, broken pipe)
  // Reads one response (status line, headers, Content-Length body; or until EOF
  // when there is no Content-Length) within `bound`. A response to HEAD has no body.
  RawResponse Read(std::chrono::milliseconds bound = 5s, bool head = false);
  // Waits for the server to close (EOF or reset) within `bound`; true if it did.
  // Bytes received meanwhile are appended to *received when given.
  bool WaitClosed(std::chrono::milliseconds bound, std::string* received = nullptr);
  // Whether bytes are readable right now (no waiting).
  bool Readable();
  void Close();

 private:
  // Receives more bytes into buffer_; 1 data, 0 EOF, -1 error or timeout.
  int Fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string connect_error_;
  std::string buffer_;
};

// "METHOD target HTTP/1.1" with Host, Content-Length (when there is a body or the
// method is POST/PUT) and the extra header lines given ("Name: value").
std::string MakeRequest(const std::string& method, const std::string& target,
                        const std::string& body = {}, const std::vector<std::string>& extra = {});

// One request on a new connection.
RawResponse Exchange(uint16_t port, const std::string& request,
                     std::chrono::milliseconds bound = 5s);

// Polls `pred` until it holds or `bound` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds bound = 10s);

class LogCapture {
 public:
  std::function<void(std::string_view)> Sink();
  std::vector<std::string> Lines() const;
  bool Contains(std::string_view needle) const;  // in any line
  size_t Count(std::string_view needle) const;   // lines holding it
  std::string Joined() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

}  // namespace payorch::http::testing
