// Internal to src/bus: a thin RAII layer over rabbitmq-c. One Connection is owned
// by one thread for its whole life (rabbitmq-c is not thread-safe). Errors are
// exceptions (AmqpError) inside the adapter; the public classes turn them into
// states and results.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bus/config.hpp"
#include "bus/message.hpp"

namespace payorch::bus::detail {

class AmqpError : public std::runtime_error {
 public:
  // reply_code: the broker's AMQP reply code (404, 406, 320, ...) when it closed the
  // channel or connection; 0 for library and socket errors.
  AmqpError(std::string what, uint16_t reply_code = 0, bool channel_level = false)
      : std::runtime_error(std::move(what)),
        reply_code_(reply_code),
        channel_level_(channel_level) {}
  uint16_t reply_code() const { return reply_code_; }
  bool channel_level() const { return channel_level_; }
  // The TLS handshake refused the broker (its certificate, its name) or our files:
  // a retry cannot fix it.
  static AmqpError Tls(std::string what) {
    AmqpError e(std::move(what));
    e.tls_ = true;
    return e;
  }
  bool tls() const { return tls_; }

 private:
  uint16_t reply_code_;
  bool channel_level_;
  bool tls_ = false;
};

struct UrlParts {
  bool tls = false;  // amqps://
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  std::string vhost;
};
// Throws std::invalid_argument with a message that never contains the password.
UrlParts ParseUrl(const std::string& url);
// The URL with the password replaced by "***", for logs and errors.
std::string RedactUrl(const std::string& url);

inline amqp_bytes_t Bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
inline std::string ToString(amqp_bytes_t b) {
  return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}

class Connection {
 public:
  // Connects and logs in, to the first node of config.url that answers (trying each
  // once); throws AmqpError. `name` shows in the broker's connection list.
  Connection(const BusConfig& config, const std::string& name);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t get() const { return conn_; }
  int fd() const;

  void OpenChannel(amqp_channel_t channel);
  // Throws AmqpError unless `reply` is normal; answers a server close (close-ok) first.
  void Check(const amqp_rpc_reply_t& reply, const std::string& context);
  void Check(const std::string& context) { Check(amqp_get_rpc_reply(conn_), context); }
  // Throws AmqpError when a rabbitmq-c status code is an error.
  void CheckStatus(int status, const std::string& context);

  // The next frame within `timeout` (zero: only what is already readable). Returns
  // false on timeout; throws AmqpError when the connection fails. Connection- and
  // channel-close from the server are answered and thrown as AmqpError.
  bool NextFrame(amqp_frame_t& frame, std::chrono::milliseconds timeout);
  // Frames already read from the socket or buffered bytes, so poll() would not tell.
  bool HasBuffered() const;
  // Reads the content (header + body) following a basic.deliver/return/get-ok.
  // The body is copied; properties are converted. Throws AmqpError.
  void ReadContent(amqp_channel_t channel, Properties& properties, std::string& body);

  // After a failure: do not try a graceful close on destruction.
  void MarkBroken() { broken_ = true; }

 private:
  void Open(const BusConfig& config, const UrlParts& url, const std::string& name);
  [[noreturn]] void ThrowServerClose(const amqp_method_t& method, const std::string& context);

  amqp_connection_state_t conn_ = nullptr;
  bool broken_ = false;
};

// AMQP tables and properties in rabbitmq-c form, built from C++ values. The memory
// lives in the object's pool: keep it alive until the call that uses it returned.
class AmqpValues {
 public:
  AmqpValues();
  ~AmqpValues();
  AmqpValues(const AmqpValues&) = delete;
  AmqpValues& operator=(const AmqpValues&) = delete;

  amqp_table_t MakeTable(const Table& table);
  amqp_basic_properties_t MakeProperties(const Properties& properties);
  // Frees what was made, keeping the pool's memory for the next message.
  void Recycle() { recycle_amqp_pool(&pool_); }

 private:
  amqp_field_value_t MakeValue(const FieldValue& value);
  amqp_bytes_t Dup(const std::string& s);
  amqp_pool_t pool_;
};

Table FromAmqp(const amqp_table_t& table);
Properties FromAmqp(const amqp_basic_properties_t& properties);

// Wakes a thread that sleeps in poll() on the connection's socket: an eventfd.
class Waker {
 public:
  Waker();
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  void Notify();
  void Drain();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits until the socket is readable, the waker fires or the timeout passes, and
// resets the waker if it fired. Returns true when the socket is readable (or hung up).
bool WaitReadable(int socket_fd, Waker& waker, std::chrono::milliseconds timeout);

// Capped exponential backoff with jitter: each delay is uniform in [d/2, d], d
// doubling from `min` up to `max`. Jitter keeps a fleet of daemons from hammering a
// broker that just came back all at the same instant.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);
  std::chrono::milliseconds Next();
  void Reset() { current_ = min_; }

 private:
  std::chrono::milliseconds min_, max_, current_;
  std::minstd_rand rng_;
};

// The LinkStatus of one link, shared between its thread and any reader.
class StatusKeeper {
 public:
  explicit StatusKeeper(std::function<void(const LinkStatus&)> on_change)
      : on_change_(std::move(on_change)) {}
  // Called by the link's thread only (the callback runs there).
  void Connected(uint64_t generation);
  void Disconnected(const std::string& error);
  void Problem(const std::string& error);  // still connected, but something is wrong
  LinkStatus Get() const;

 private:
  void Changed(const LinkStatus& status);
  mutable std::mutex mutex_;
  LinkStatus status_;
  std::function<void(const LinkStatus&)> on_change_;
};

// One structured line on stderr: "bus: event=<event> <fields>".
void Log(const std::string& event, const std::string& fields);
// A field value from outside (a routing key, a broker's or a parser's words) for
// Log: masked, one line, bounded (domain::SafeDetail), quoted with its quotes and
// backslashes escaped, so it can neither break the line nor forge a field.
std::string Quoted(std::string_view text);

}  // namespace payorch::bus::detail
