#include "test_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace payorch::http::testing {

using Clock = std::chrono::steady_clock;

Client::Client(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    connect_error_ = std::strerror(errno);
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    connect_error_ = std::strerror(errno);
    ::close(fd);
    return;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
}

Client::~Client() {
  Close();
}

void Client::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Client::Send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int Client::Fill(Clock::time_point deadline) {
  if (fd_ < 0) return -1;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) return 0;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return 1;
  }
}

RawResponse Client::Read(std::chrono::milliseconds bound, bool head) {
  RawResponse r;
  auto deadline = Clock::now() + bound;
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    int got = Fill(deadline);
    if (got <= 0) {
      r.error = got == 0 ? "closed before a response head" : "no response head in time";
      return r;
    }
  }
  r.head = buffer_.substr(0, end + 4);
  buffer_.erase(0, end + 4);
  // Status line, then fields.
  std::size_t line_end = r.head.find("\r\n");
  std::string status_line = r.head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.rfind("HTTP/1.", 0) != 0) {
    r.error = "bad status line: " + status_line;
    return r;
  }
  int status = std::atoi(status_line.c_str() + 9);
  std::size_t pos = line_end + 2;
  while (pos < r.head.size()) {
    std::size_t eol = r.head.find("\r\n", pos);
    if (eol == pos) break;
    std::string line = r.head.substr(pos, eol - pos);
    pos = eol + 2;
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  if (head || (status >= 100 && status < 200)) {  // no body (interim: the caller reads again)
    r.status = status;
    return r;
  }
  if (r.has("content-length")) {
    std::size_t length = std::stoul(r.header("content-length"));
    while (buffer_.size() < length) {
      if (Fill(deadline) <= 0) {
        r.error = "body cut short";
        return r;
      }
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
  } else {
    int got;
    while ((got = Fill(deadline)) > 0) {
    }
    if (got < 0) {
      r.error = "no Content-Length and no close";
      return r;
    }
    r.body = std::move(buffer_);
    buffer_.clear();
  }
  r.status = status;
  return r;
}

bool Client::WaitClosed(std::chrono::milliseconds bound, std::string* received) {
  auto deadline = Clock::now() + bound;
  for (;;) {
    int got = Fill(deadline);
    if (received) {
      received->append(buffer_);
    }
    buffer_.clear();
    if (got > 0) continue;
    if (got == 0) return true;
    // -1: an error (a reset counts as closed) or the bound.
    if (Clock::now() >= deadline) return false;
    return true;
  }
}

bool Client::Readable() {
  if (fd_ < 0) return false;
  if (!buffer_.empty()) return true;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

std::string MakeRequest(const std::string& method, const std::string& target,
                        const std::string& body, const std::vector<std::string>& extra) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& line : extra) r += line + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += "\r\n";
  r += body;
  return r;
}

RawResponse Exchange(uint16_t port, const std::string& request, std::chrono::milliseconds bound) {
  Client c(port);
  if (!c.connected()) {
    RawResponse r;
    r.error = "connect: " + c.connect_error();
    return r;
  }
  if (!c.Send(request)) {
    RawResponse r;
    r.error = "send failed";
    return r;
  }
  return c.Read(bound);
}

bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds bound) {
  auto deadline = Clock::now() + bound;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(2ms);
  }
}

std::function<void(std::string_view)> LogCapture::Sink() {
  return [this](std::string_view line) {
    std::lock_guard lock(mutex_);
    lines_.emplace_back(line);
  };
}

std::vector<std::string> LogCapture::Lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

bool LogCapture::Contains(std::string_view needle) const {
  std::lock_guard lock(mutex_);
  for (const auto& line : lines_)
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

size_t LogCapture::Count(std::string_view needle) const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& line : lines_) n += line.find(needle) != std::string::npos;
  return n;
}

std::string LogCapture::Joined() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& line : lines_) out += line + "\n";
  return out;
}

}  // namespace payorch::http::testing
