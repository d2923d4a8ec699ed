#include "bus/publisher.hpp"

#include <pthread.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bus/amqp_link.hpp"
#include "bus/topology.hpp"

namespace payorch::bus {
namespace {

using detail::AmqpError;
using detail::AmqpValues;
using detail::Bytes;
using detail::Connection;
using detail::ToString;
using Clock = std::chrono::steady_clock;

constexpr amqp_channel_t kPublishChannel = 1;
constexpr uint16_t kTopologyChannel = 3;
constexpr int kFramesPerTurn = 512;
constexpr int kPublishesPerTurn = 256;

struct Submission {
  Message message;
  Publisher::Callback done;
};

struct InFlight {
  Publisher::Callback done;
  Clock::time_point deadline;
  // Only for mandatory publishes, to match a basic.return (which carries no sequence
  // number) with its publish.
  std::string routing_key;
  std::string body;
  bool mandatory = false;
  bool returned = false;
  bool settled = false;
  std::string return_text;
};

}  // namespace

class Publisher::Impl {
 public:
  Impl(BusConfig config, StatusHandler on_status)
      : config_(std::move(config)), status_(std::move(on_status)) {}

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard lock(start_mutex_);
    if (thread_.joinable() || stop_) return;
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "payorch-publish");  // top -H, perf, lifecycle_bench
      Run();
    });
  }

  void Stop() {
    std::lock_guard lock(start_mutex_);
    stop_ = true;
    waker_.Notify();
    if (thread_.joinable()) thread_.join();
    FailQueued(PublishStatus::kStopped, "publisher stopped", /*close=*/true);
  }

  void Publish(Message message, Callback done) {
    {
      std::lock_guard lock(queue_mutex_);
      if (!closed_) {
        bool was_empty = queue_.empty();
        queue_.push_back(Submission{std::move(message), std::move(done)});
        if (was_empty) waker_.Notify();
        return;
      }
    }
    Complete(done, PublishStatus::kStopped, "publisher stopped");
  }

  LinkStatus Status() const { return status_.Get(); }

  Stats GetStats() const { return Stats{published_.load(), confirmed_.load(), failed_.load()}; }

  const BusConfig& config() const { return config_; }

 private:
  void Run() {
    detail::Backoff backoff(config_.reconnect_min, config_.reconnect_max);
    while (!stop_) {
      try {
        Connection connection(config_, "payorch publisher");
        if (config_.declare_topology)
          DeclareTopology(connection, config_.topology, kTopologyChannel);
        connection.OpenChannel(kPublishChannel);
        amqp_confirm_select(connection.get(), kPublishChannel);
        connection.Check("confirm.select");
        uint64_t generation = ++generation_;
        status_.Connected(generation);
        detail::Log("bus.publisher.connected", "generation=" + std::to_string(generation));
        backoff.Reset();
        Session(connection);
      } catch (const std::exception& e) {
        // Status first: whoever sees a failed publish also sees the link down.
        last_error_ = e.what();
        status_.Disconnected(e.what());
        FailInFlight(PublishStatus::kConnectionLost, std::string("connection lost: ") + e.what());
        detail::Log("bus.publisher.disconnected", "error=" + detail::Quoted(e.what()));
      }
      // Only after a stop is anything still in flight here (a failure failed it above).
      FailInFlight(PublishStatus::kStopped, "publisher stopped");
      if (stop_) break;
      FailBacklog(PublishStatus::kNotConnected, "not connected: " + last_error_);
      SleepInterruptibly(backoff.Next());
    }
    FailBacklog(PublishStatus::kStopped, "publisher stopped");
    FailQueued(PublishStatus::kStopped, "publisher stopped", /*close=*/true);
    status_.Disconnected("stopped");
  }

  // While disconnected, whatever is submitted fails at once: the caller (the outbox
  // relay) retries on its own schedule, and nothing piles up here unbounded.
  void SleepInterruptibly(std::chrono::milliseconds delay) {
    auto until = Clock::now() + delay;
    while (!stop_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) break;
      detail::WaitReadable(-1, waker_, left);
      FailQueued(PublishStatus::kNotConnected, "not connected: " + last_error_, false);
    }
  }

  void Session(Connection& c) {
    next_seq_ = 0;
    blocked_ = false;
    std::optional<Clock::time_point> stop_deadline;
    auto idle_wait = std::chrono::milliseconds(
        config_.heartbeat_seconds ? std::min<int>(1000, config_.heartbeat_seconds * 250) : 1000);
    for (;;) {
      if (stop_ && !stop_deadline)
        stop_deadline = Clock::now() + std::min<std::chrono::milliseconds>(config_.confirm_timeout,
                                                                           std::chrono::seconds(5));
      if (stop_deadline && (in_flight_.empty() || Clock::now() >= *stop_deadline)) break;

      if (!stop_deadline) TakeQueued();
      int sent = 0;
      while (!stop_deadline && !blocked_ && !backlog_.empty() &&
             in_flight_.size() < config_.max_in_flight && sent < kPublishesPerTurn) {
        Submission s = std::move(backlog_.front());
        backlog_.pop_front();
        PublishOne(c, std::move(s));
        ++sent;
      }
      bool can_send = !stop_deadline && !blocked_ && !backlog_.empty() &&
                      in_flight_.size() < config_.max_in_flight;
      if (!can_send && !c.HasBuffered()) {
        auto wait = idle_wait;
        if (!in_flight_.empty()) {
          auto to_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
              in_flight_.front().deadline - Clock::now());
          wait = std::clamp(to_deadline + std::chrono::milliseconds(1),
                            std::chrono::milliseconds(0), wait);
        }
        detail::WaitReadable(c.fd(), waker_, wait);
      }
      amqp_frame_t frame;
      for (int i = 0; i < kFramesPerTurn; ++i) {
        if (!c.NextFrame(frame, std::chrono::milliseconds(0))) break;
        HandleFrame(c, frame);
      }
      amqp_maybe_release_buffers(c.get());
      if (!in_flight_.empty() && in_flight_.front().deadline < Clock::now())
        throw AmqpError("no publisher confirm within " +
                        std::to_string(config_.confirm_timeout.count()) + " ms");
    }
  }

  void TakeQueued() {
    std::lock_guard lock(queue_mutex_);
    for (auto& s : queue_) backlog_.push_back(std::move(s));
    queue_.clear();
  }

  void PublishOne(Connection& c, Submission s) {
    Message& m = s.message;
    // Refused here, not by the broker: it would close the channel (or rabbitmq-c
    // fail to encode) at every retry, taking every other publish in flight with it.
    if (auto why = Unpublishable(m, config_.max_message_bytes)) {
      Complete(s.done, PublishStatus::kRefused, "refused: " + *why);
      return;
    }
    ++next_seq_;  // the broker numbers the publishes of the channel 1, 2, 3, ...
    if (in_flight_.empty()) first_seq_ = next_seq_;
    InFlight& f = in_flight_.emplace_back();
    f.done = std::move(s.done);
    f.deadline = Clock::now() + config_.confirm_timeout;
    f.mandatory = m.mandatory;
    values_.Recycle();
    amqp_basic_properties_t props = values_.MakeProperties(m.properties);
    // On failure the entry is already in flight and fails with the connection.
    c.CheckStatus(
        amqp_basic_publish(c.get(), kPublishChannel, Bytes(m.exchange), Bytes(m.routing_key),
                           m.mandatory, /*immediate=*/0, &props, Bytes(m.body)),
        "basic.publish");
    ++published_;
    if (m.mandatory) {
      f.routing_key = std::move(m.routing_key);
      f.body = std::move(m.body);
    }
  }

  void HandleFrame(Connection& c, const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD) return;
    const amqp_method_t& method = frame.payload.method;
    switch (method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* ack = static_cast<amqp_basic_ack_t*>(method.decoded);
        Settle(ack->delivery_tag, ack->multiple, true);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* nack = static_cast<amqp_basic_nack_t*>(method.decoded);
        Settle(nack->delivery_tag, nack->multiple, false);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        auto* ret = static_cast<amqp_basic_return_t*>(method.decoded);
        std::string routing_key = ToString(ret->routing_key);
        std::string text = ToString(ret->reply_text) + " (" + std::to_string(ret->reply_code) +
                           ") for exchange '" + ToString(ret->exchange) + "' routing key '" +
                           routing_key + "'";
        Properties properties;
        std::string body;
        c.ReadContent(kPublishChannel, properties, body);
        // Returns come before the confirm of their publish, in publish order.
        for (auto& f : in_flight_) {
          if (f.mandatory && !f.settled && !f.returned && f.routing_key == routing_key &&
              f.body == body) {
            f.returned = true;
            f.return_text = std::move(text);
            break;
          }
        }
        break;
      }
      case AMQP_CONNECTION_BLOCKED_METHOD: {
        auto* blocked = static_cast<amqp_connection_blocked_t*>(method.decoded);
        blocked_ = true;
        std::string reason = "the broker blocked publishing: " + ToString(blocked->reason);
        status_.Problem(reason);
        detail::Log("bus.publisher.blocked", "reason=" + detail::Quoted(ToString(blocked->reason)));
        break;
      }
      case AMQP_CONNECTION_UNBLOCKED_METHOD:
        blocked_ = false;
        status_.Problem("");
        detail::Log("bus.publisher.unblocked", "");
        break;
      default: break;
    }
  }

  // Confirms come in order of sequence, one by one or as "all up to seq".
  void Settle(uint64_t seq, bool multiple, bool ok) {
    if (in_flight_.empty() || seq < first_seq_ || seq - first_seq_ >= in_flight_.size()) return;
    // Move them out first: a callback may publish again (re-entrantly queued).
    settled_now_.clear();
    auto settle = [&](InFlight& f) {
      if (f.settled) return;
      f.settled = true;
      settled_now_.push_back(std::move(f));
    };
    if (multiple) {
      for (uint64_t n = first_seq_; n <= seq; ++n) settle(in_flight_[n - first_seq_]);
    } else {
      settle(in_flight_[seq - first_seq_]);
    }
    while (!in_flight_.empty() && in_flight_.front().settled) {
      in_flight_.pop_front();
      ++first_seq_;
    }
    for (InFlight& f : settled_now_) {
      if (!ok)
        Complete(f.done, PublishStatus::kNacked, "the broker nacked the publish");
      else if (f.returned)
        Complete(f.done, PublishStatus::kReturned, "unroutable: " + f.return_text);
      else
        Complete(f.done, PublishStatus::kConfirmed, "");
    }
    settled_now_.clear();
  }

  void FailInFlight(PublishStatus status, const std::string& detail) {
    std::deque<InFlight> failed;
    failed.swap(in_flight_);
    for (auto& f : failed)
      if (!f.settled) Complete(f.done, status, detail);
  }

  void FailBacklog(PublishStatus status, const std::string& detail) {
    std::deque<Submission> failed;
    failed.swap(backlog_);
    for (auto& s : failed) Complete(s.done, status, detail);
  }

  void FailQueued(PublishStatus status, const std::string& detail, bool close) {
    std::deque<Submission> failed;
    {
      std::lock_guard lock(queue_mutex_);
      failed.swap(queue_);
      if (close) closed_ = true;
    }
    for (auto& s : failed) Complete(s.done, status, detail);
  }

  void Complete(const Callback& done, PublishStatus status, const std::string& why) {
    if (status == PublishStatus::kConfirmed)
      ++confirmed_;
    else
      ++failed_;
    if (!done) return;
    try {
      done(PublishResult{status, why});
    } catch (const std::exception& e) {
      detail::Log("bus.publisher.callback_failed", "error=" + detail::Quoted(e.what()));
    }
  }

  const BusConfig config_;
  detail::StatusKeeper status_;
  detail::Waker waker_;

  std::mutex start_mutex_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  uint64_t generation_ = 0;

  std::mutex queue_mutex_;
  std::deque<Submission> queue_;
  bool closed_ = false;

  // Publisher thread only.
  AmqpValues values_;  // one pool for all publishes: no malloc per message
  std::deque<Submission> backlog_;
  std::deque<InFlight> in_flight_;  // publishes first_seq_, first_seq_ + 1, ...
  std::vector<InFlight> settled_now_;
  uint64_t first_seq_ = 1;
  uint64_t next_seq_ = 0;
  bool blocked_ = false;
  std::string last_error_;

  std::atomic<uint64_t> published_{0}, confirmed_{0}, failed_{0};
};

Publisher::Publisher(BusConfig config, StatusHandler on_status) {
  if (auto bad = config.Validate()) throw std::invalid_argument("bus configuration: " + *bad);
  impl_ = std::make_unique<Impl>(std::move(config), std::move(on_status));
}

Publisher::~Publisher() = default;
void Publisher::Start() {
  impl_->Start();
}
void Publisher::Stop() {
  impl_->Stop();
}

void Publisher::Publish(Message message, Callback done) {
  impl_->Publish(std::move(message), std::move(done));
}

std::future<PublishResult> Publisher::Publish(Message message) {
  auto promise = std::make_shared<std::promise<PublishResult>>();
  auto future = promise->get_future();
  impl_->Publish(std::move(message),
                 [promise](PublishResult result) { promise->set_value(std::move(result)); });
  return future;
}

void Publisher::PublishPaymentEvent(const domain::PaymentEvent& event, Callback done) {
  impl_->Publish(PaymentEventMessage(event, impl_->config().topology.payments_exchange),
                 std::move(done));
}

LinkStatus Publisher::Status() const {
  return impl_->Status();
}
Publisher::Stats Publisher::GetStats() const {
  return impl_->GetStats();
}

}  // namespace payorch::bus
