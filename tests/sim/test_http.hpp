// Test helpers over real sockets on 127.0.0.1 (port 0 everywhere): a blocking HTTP
// fetch, a raw-bytes exchange, a callback receiver, a TLS stub server with
// self-signed certificates, and a bounded wait. Beast stays in test_http.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace payorch::testing {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpReply {
  int status = 0;  // 0: no answer (see error)
  std::string content_type;
  std::string body;
  std::string error;
  Headers headers;  // names lower case
};

// One request on a new connection to 127.0.0.1:port.
HttpReply Fetch(uint16_t port, const std::string& method, const std::string& target,
                const std::string& body = {}, const Headers& headers = {},
                std::chrono::milliseconds timeout = 5s);

struct RawReply {
  std::string data;
  bool closed = false;     // orderly EOF
  bool reset = false;      // connection reset
  bool timed_out = false;  // still open after the bound
};
// Writes `bytes` (possibly nothing), then reads until the peer closes or `bound`.
RawReply RawExchange(uint16_t port, const std::string& bytes, std::chrono::milliseconds bound);

// Polls `pred` until it holds or `bound` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds bound = 10s);

// Receives callbacks (any method, any path) on 127.0.0.1:0 and answers with the
// statuses given, in order, then with `then`.
class CallbackReceiver {
 public:
  struct Received {
    std::string method;
    std::string target;
    std::string content_type;
    std::string body;
    std::chrono::steady_clock::time_point at;
  };
  CallbackReceiver();
  ~CallbackReceiver();
  uint16_t port() const;
  std::string Url(const std::string& path = "/callback") const;
  void SetStatuses(std::vector<int> first, int then = 200);
  std::vector<Received> Requests() const;
  size_t Count() const;
  bool WaitFor(size_t count, std::chrono::milliseconds bound = 10s) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CertPair {
  std::string cert_pem;
  std::string key_pem;
};
// A self-signed EC certificate for `dns_name` (and `ip` when not empty, as SAN).
CertPair MakeSelfSigned(const std::string& dns_name, const std::string& ip = {});

// An HTTPS server on 127.0.0.1:0 that answers every request with `body`
// (application/json, 200).
class TlsStub {
 public:
  TlsStub(const CertPair& cert, std::string body);
  ~TlsStub();
  uint16_t port() const;
  size_t Served() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A file under $TMPDIR with `content`; removed by the caller if it cares.
std::string WriteTempFile(const std::string& content, const std::string& suffix);

}  // namespace payorch::testing
