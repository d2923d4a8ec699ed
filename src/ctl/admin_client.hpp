// payorch's one small blocking HTTP/1.1 client (loopback and LAN, no TLS): payorchctl
// asks payorchd's admin endpoint with it, and the test harness (kit::HttpCall) every
// server of a test. Over a POSIX socket, one request per connection, a deadline,
// Content-Length or chunked answers.
// Runs on the caller's thread. Errors: AdminUnreachable when nothing answers (the
// message tells the operator whether payorchd runs), AdminError for a bad answer.
#pragma once

#include <netdb.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace payorch::ctl {

class AdminError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Connection refused, no route, or no answer before the deadline.
class AdminUnreachable : public AdminError {
 public:
  using AdminError::AdminError;
};

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Connects to the first of `addresses` (getaddrinfo's list) that accepts, each in
// turn ("localhost" may resolve to ::1 first while payorchd listens on 127.0.0.1
// only), each with a share of the time left until `deadline`. Returns the connected
// non-blocking socket, the caller's to close. Throws AdminUnreachable, saying
// "payorchd is not running" when an address refused and none accepted.
int ConnectAny(const addrinfo* addresses, const std::string& where,
               std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout,
               const std::string& peer = "payorchd");

class AdminClient {
 public:
  // host: the configured admin.listen_address; a wildcard (0.0.0.0, ::) is reached
  // on loopback.
  // peer: what the messages call the server ("payorchd").
  AdminClient(std::string host, uint16_t port,
              std::chrono::milliseconds timeout = std::chrono::seconds(10),
              std::string peer = "payorchd");

  // Sends `method target` with `body` (Connection: close) and reads the whole
  // answer. Throws AdminUnreachable or AdminError.
  HttpResponse Request(std::string_view method, std::string_view target,
                       std::string_view body = {},
                       std::string_view content_type = "application/json") const;

  // "127.0.0.1:8081"
  std::string Where() const;

 private:
  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
  std::string peer_;
};

// A path segment with everything but RFC 3986 unreserved characters %-encoded.
std::string PathSegment(std::string_view text);

}  // namespace payorch::ctl
