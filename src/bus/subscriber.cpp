#include "bus/subscriber.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "bus/amqp_link.hpp"
#include "bus/topology.hpp"

namespace payorch::bus {

using namespace std::chrono_literals;

class Subscriber::Impl {
 public:
  Impl(const BusConfig& config, const std::string& exchange, const std::string& key,
       Handler handler)
      : config_(config), exchange_(exchange), key_(key), handler_(std::move(handler)) {
    std::random_device rd;
    queue_ = "payorch.observe." + std::to_string(rd()) + std::to_string(rd());
    thread_ = std::thread([this] { Loop(); });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return state_ != State::kStarting; });
    if (state_ == State::kFailed) {
      lock.unlock();
      thread_.join();
      throw BusError("cannot subscribe to " + exchange_ + " (" + key_ + "): " + error_);
    }
  }

  ~Impl() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  const std::string& queue() const { return queue_; }
  std::string Failed() const {
    std::lock_guard lock(mu_);
    return state_ == State::kFailed ? error_ : "";
  }

 private:
  enum class State { kStarting, kRunning, kFailed };

  void Set(State s, std::string error = {}) {
    {
      std::lock_guard lock(mu_);
      state_ = s;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }

  void Loop() {
    using detail::Bytes;
    try {
      detail::Connection c(config_, "payorch subscriber");
      c.OpenChannel(1);
      amqp_queue_declare(c.get(), 1, Bytes(queue_), 0, /*durable=*/0, /*exclusive=*/1,
                         /*auto_delete=*/1, amqp_empty_table);
      c.Check("queue.declare " + queue_);
      amqp_queue_bind(c.get(), 1, Bytes(queue_), Bytes(exchange_), Bytes(key_), amqp_empty_table);
      c.Check("queue.bind " + queue_ + " to " + exchange_);
      amqp_basic_consume(c.get(), 1, Bytes(queue_), amqp_empty_bytes, 0, /*no_ack=*/1, 1,
                         amqp_empty_table);
      c.Check("basic.consume " + queue_);
      Set(State::kRunning);
      while (!stop_) {
        amqp_frame_t frame;
        if (!c.NextFrame(frame, 100ms)) continue;
        if (frame.frame_type != AMQP_FRAME_METHOD ||
            frame.payload.method.id != AMQP_BASIC_DELIVER_METHOD)
          continue;
        auto* d = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
        Observed o;
        o.exchange = detail::ToString(d->exchange);
        o.routing_key = detail::ToString(d->routing_key);
        c.ReadContent(1, o.properties, o.body);
        amqp_maybe_release_buffers(c.get());
        handler_(std::move(o));
      }
    } catch (const std::exception& e) {
      Set(State::kFailed, e.what());
    }
  }

  BusConfig config_;
  std::string exchange_, key_;
  Handler handler_;
  std::string queue_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kStarting;
  std::string error_;
  std::thread thread_;
};

Subscriber::Subscriber(const BusConfig& config, const std::string& exchange,
                       const std::string& binding_key, Handler handler)
    : impl_(std::make_unique<Impl>(config, exchange, binding_key, std::move(handler))) {}
Subscriber::~Subscriber() = default;
const std::string& Subscriber::queue() const { return impl_->queue(); }
std::string Subscriber::Failed() const { return impl_->Failed(); }

}  // namespace payorch::bus
