#include "ctl/admin_client.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

namespace payorch::ctl {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

std::string Lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Decodes a chunked body; throws AdminError when it is cut short or malformed.
std::string Dechunk(std::string_view raw) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) throw AdminError("a chunked answer was cut short");
    const std::string size_text(raw.substr(pos, eol - pos));
    size_t size = 0;
    try {
      size = std::stoul(size_text, nullptr, 16);
    } catch (const std::exception&) {
      throw AdminError("a chunked answer has a bad chunk size");
    }
    pos = eol + 2;
    if (size == 0) return out;
    if (raw.size() < pos + size + 2) throw AdminError("a chunked answer was cut short");
    out.append(raw.substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace

int ConnectAny(const addrinfo* found, const std::string& where,
               std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout,
               const std::string& peer) {
  // Every address in turn: "localhost" may resolve to ::1 first while payorchd
  // listens on 127.0.0.1 only. Each gets a share of the time left, so one that drops
  // packets leaves time for the next.
  size_t count = 0;
  for (const addrinfo* a = found; a; a = a->ai_next) ++count;
  std::optional<Fd> connected;
  bool refused = false;
  bool timed_out = false;
  std::string other_error;
  size_t index = 0;
  for (const addrinfo* a = found; a && !connected; a = a->ai_next, ++index) {
    Fd fd(socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) {
      if (errno != EAFNOSUPPORT) other_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        const auto share = Clock::now() + (deadline - Clock::now()) / static_cast<int>(count - index);
        pollfd p{fd.get(), POLLOUT, 0};
        if (poll(&p, 1, MillisLeft(share)) <= 0) {
          timed_out = true;
          continue;
        }
        err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    if (err == 0) {
      connected.emplace(std::move(fd));
    } else if (err == ECONNREFUSED) {
      refused = true;
    } else if (err != EADDRNOTAVAIL && err != ENETUNREACH && err != EAFNOSUPPORT) {
      other_error = "cannot connect to " + peer + " at " + where + ": " + std::strerror(err);
    }
  }
  if (!connected) {
    const std::string not_running =
        peer + " is not running (nothing listens on " + where + ")" +
        (peer == "payorchd" ? ": start it, or check admin.port" : "");
    if (refused) throw AdminUnreachable(not_running);
    if (timed_out)
      throw AdminUnreachable(peer + " did not accept a connection on " + where + " within " +
                             std::to_string(timeout.count()) +
                             " ms: check admin.listen_address and admin.port, and whether a "
                             "firewall drops the connection");
    throw AdminUnreachable(other_error.empty() ? "cannot connect to " + peer + " at " + where +
                                                     ": no usable address"
                                               : other_error);
  }
  return connected->Release();
}

AdminClient::AdminClient(std::string host, uint16_t port, std::chrono::milliseconds timeout,
                         std::string peer)
    : host_(std::move(host)), port_(port), timeout_(timeout), peer_(std::move(peer)) {
  if (host_.empty() || host_ == "0.0.0.0") host_ = "127.0.0.1";
  if (host_ == "::" || host_ == "[::]") host_ = "::1";
}

std::string AdminClient::Where() const {
  return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" +
         std::to_string(port_);
}

HttpResponse AdminClient::Request(std::string_view method, std::string_view target,
                                  std::string_view body, std::string_view content_type) const {
  const auto deadline = Clock::now() + timeout_;
  const std::string where = Where();

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(port_);
  if (int rc = getaddrinfo(host_.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw AdminUnreachable("cannot resolve admin.listen_address \"" + host_ +
                           "\": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);

  Fd fd(ConnectAny(found, where, deadline, timeout_, peer_));


  std::string request = std::string(method) + " " + std::string(target) +
                        " HTTP/1.1\r\nHost: " + where +
                        "\r\nUser-Agent: payorchctl\r\nAccept: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n";
  if (!body.empty()) request += "Content-Type: " + std::string(content_type) + "\r\n";
  request += "\r\n";
  request += body;
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd.get(), POLLOUT, 0};
      if (poll(&p, 1, MillisLeft(deadline)) <= 0)
        throw AdminUnreachable(peer_ + " at " + where + " did not take the request in time");
      continue;
    }
    throw AdminUnreachable("sending to " + peer_ + " at " + where + ": " + std::strerror(errno));
  }

  // Connection: close, so the answer ends where the stream ends (or at Content-Length).
  std::string raw;
  std::optional<size_t> body_at, content_length;
  bool chunked = false;
  char buf[8192];
  for (;;) {
    if (body_at && content_length && raw.size() >= *body_at + *content_length) break;
    pollfd p{fd.get(), POLLIN, 0};
    int ready = poll(&p, 1, MillisLeft(deadline));
    if (ready <= 0)
      throw AdminUnreachable(peer_ + " at " + where + " did not answer within " +
                             std::to_string(timeout_.count()) +
                             " ms: it may be overloaded or stuck; check its log");
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0)
      throw AdminUnreachable("reading from " + peer_ + " at " + where + ": " + std::strerror(errno));
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > (16u << 20)) throw AdminError(peer_ + "'s answer is larger than 16 MiB");
    if (!body_at) {
      size_t end = raw.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      body_at = end + 4;
      // Headers: Content-Length and Transfer-Encoding matter here.
      size_t line = raw.find("\r\n");
      while (line < end) {
        size_t next = raw.find("\r\n", line + 2);
        std::string header = raw.substr(line + 2, next - line - 2);
        size_t colon = header.find(':');
        if (colon != std::string::npos) {
          std::string name = Lower(header.substr(0, colon));
          std::string value = header.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          if (name == "content-length") {
            try {
              content_length = std::stoul(value);
            } catch (const std::exception&) {
              throw AdminError(peer_ + " answered a bad Content-Length");
            }
          }
          if (name == "transfer-encoding" && Lower(value).find("chunked") != std::string::npos)
            chunked = true;
        }
        line = next;
      }
    }
  }
  if (!body_at)
    throw AdminError(peer_ + " at " + where + " closed the connection without an answer");

  HttpResponse response;
  const std::string status_line = raw.substr(0, raw.find("\r\n"));
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12)
    throw AdminError("not an HTTP answer from " + where + ": " + status_line.substr(0, 80));
  try {
    response.status = std::stoi(status_line.substr(9, 3));
  } catch (const std::exception&) {
    throw AdminError("a bad HTTP status line from " + where + ": " + status_line.substr(0, 80));
  }
  {
    std::string headers = Lower(raw.substr(0, *body_at));
    size_t ct = headers.find("\r\ncontent-type:");
    if (ct != std::string::npos) {
      size_t start = ct + 15;
      size_t stop = headers.find("\r\n", start);
      response.content_type = raw.substr(start, stop - start);
      while (!response.content_type.empty() && response.content_type.front() == ' ')
        response.content_type.erase(0, 1);
    }
  }
  std::string_view answer = std::string_view(raw).substr(*body_at);
  if (chunked) {
    response.body = Dechunk(answer);
  } else if (content_length) {
    if (answer.size() < *content_length)
      throw AdminError(peer_ + "'s answer from " + where + " was cut short");
    response.body = std::string(answer.substr(0, *content_length));
  } else {
    response.body = std::string(answer);
  }
  return response;
}

std::string PathSegment(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

}  // namespace payorch::ctl
