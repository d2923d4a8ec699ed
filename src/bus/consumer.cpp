#include "bus/consumer.hpp"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bus/amqp_link.hpp"
#include "bus/topology.hpp"
#include "codec/codec.hpp"

namespace payorch::bus {
namespace {

using detail::AmqpError;
using detail::AmqpValues;
using detail::Bytes;
using detail::Connection;
using detail::ToString;

// Channel 1 consumes; channel 2 publishes dead letters in confirm mode; channel 3
// declares the topology and is closed again.
constexpr amqp_channel_t kConsumeChannel = 1;
constexpr amqp_channel_t kDeadChannel = 2;
constexpr uint16_t kTopologyChannel = 3;

// Frames handled before the thread looks at its command queue again: keeps acks
// flowing while a burst is being read.
constexpr int kFramesPerTurn = 256;

struct Command {
  enum Kind { kAck, kReject, kRequeue } kind;
  uint64_t generation;
  uint64_t tag;
};

// A dead letter published and not yet confirmed; the original is acked on the confirm.
struct DeadPending {
  uint64_t original_tag;
  std::string routing_key;
  std::string body;
  bool returned = false;
};

// The delivery tags of the consuming channel from the lowest unsettled one up.
// Tags grow by one per delivery, so a deque of states replaces two ordered sets
// (no allocation per message, which counts at ten thousand messages a second).
class AckWindow {
 public:
  void Clear() {
    states_.clear();
    ready_.clear();
    base_ = 1;
  }
  void Delivered(uint64_t tag) {
    if (states_.empty()) base_ = tag;
    while (base_ + states_.size() < tag) states_.push_back(kSettled);  // never expected
    states_.push_back(kUnsettled);
  }
  bool IsUnsettled(uint64_t tag) const {
    return tag >= base_ && tag - base_ < states_.size() && states_[tag - base_] == kUnsettled;
  }
  // Preconditions: IsUnsettled(tag).
  void MarkReady(uint64_t tag) {
    states_[tag - base_] = kReady;
    ready_.push_back(tag);
  }
  void MarkSettled(uint64_t tag) {
    states_[tag - base_] = kSettled;
    Trim();
  }
  // Calls ack(tag, multiple) for what is ready: the run from the lowest unsettled
  // tag as one multiple-ack (settled tags inside it are not outstanding on the
  // broker, so the multiple-ack passes over them), tags past a gap one by one.
  template <typename F>
  void Flush(F&& ack) {
    if (ready_.empty()) return;
    uint64_t upto = 0;
    while (!states_.empty() && states_.front() != kUnsettled) {
      if (states_.front() == kReady) upto = base_;
      states_.pop_front();
      ++base_;
    }
    if (upto) ack(upto, true);
    for (uint64_t tag : ready_) {
      if (tag >= base_ && states_[tag - base_] == kReady) {
        ack(tag, false);
        states_[tag - base_] = kSettled;
      }
    }
    ready_.clear();
    Trim();
  }

 private:
  enum State : uint8_t { kUnsettled, kReady, kSettled };
  void Trim() {
    while (!states_.empty() && states_.front() == kSettled) {
      states_.pop_front();
      ++base_;
    }
  }
  std::deque<State> states_;
  std::vector<uint64_t> ready_;
  uint64_t base_ = 1;
};

}  // namespace

class Consumer::Impl {
 public:
  Impl(BusConfig config, DeliveryHandler on_delivery, StatusHandler on_status)
      : config_(std::move(config)),
        on_delivery_(std::move(on_delivery)),
        status_(std::move(on_status)) {}

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard lock(start_mutex_);
    if (thread_.joinable() || stop_) return;
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "payorch-consume");  // top -H, perf, lifecycle_bench
      Run();
    });
    thread_id_ = thread_.get_id();
  }

  void Stop() {
    std::lock_guard lock(start_mutex_);
    stop_ = true;
    waker_.Notify();
    if (thread_.joinable()) thread_.join();
  }

  void Push(Command command) {
    bool was_empty;
    {
      std::lock_guard lock(commands_mutex_);
      was_empty = commands_.empty();
      commands_.push_back(command);
    }
    // One wake-up per batch: the thread drains everything queued when it wakes. An
    // ack from the handler itself (on the consumer thread) needs none: the thread
    // looks at the queue before it next waits.
    if (was_empty && std::this_thread::get_id() != thread_id_) waker_.Notify();
  }

  LinkStatus Status() const { return status_.Get(); }

  Stats GetStats() const {
    Stats s;
    s.delivered = delivered_.load();
    s.acked = acked_.load();
    s.rejected = rejected_.load();
    s.dead_lettered = dead_lettered_.load();
    s.stale = stale_.load();
    return s;
  }

 private:
  void Run() {
    detail::Backoff backoff(config_.reconnect_min, config_.reconnect_max);
    while (!stop_) {
      try {
        Connection connection(config_, "payorch consumer " + config_.consumer_tag);
        Setup(connection);
        uint64_t generation = ++generation_;
        status_.Connected(generation);
        detail::Log("bus.consumer.connected", "queue=" + config_.ConsumeQueue() +
                                                  " generation=" + std::to_string(generation));
        backoff.Reset();
        Session(connection, generation);
      } catch (const std::exception& e) {
        Forget();
        status_.Disconnected(e.what());
        detail::Log("bus.consumer.disconnected", "error=" + detail::Quoted(e.what()));
      }
      Forget();
      if (stop_) break;
      SleepInterruptibly(backoff.Next());
    }
    status_.Disconnected("stopped");
  }

  void Setup(Connection& c) {
    if (config_.declare_topology) DeclareTopology(c, config_.topology, kTopologyChannel);
    c.OpenChannel(kConsumeChannel);
    amqp_basic_qos(c.get(), kConsumeChannel, 0, config_.prefetch, 0);
    c.Check("basic.qos");
    c.OpenChannel(kDeadChannel);
    amqp_confirm_select(c.get(), kDeadChannel);
    c.Check("confirm.select");
    amqp_basic_consume(c.get(), kConsumeChannel, Bytes(config_.ConsumeQueue()),
                       Bytes(config_.consumer_tag), /*no_local=*/0, /*no_ack=*/0,
                       /*exclusive=*/0, amqp_empty_table);
    c.Check("basic.consume on " + config_.ConsumeQueue());
  }

  // Per-connection state dies with the connection: the broker requeues whatever
  // was not acked on it, and delivery tags start again at 1 on the next one.
  void Forget() {
    window_.Clear();
    dead_pending_.clear();
    dead_seq_ = 0;
  }

  void SleepInterruptibly(std::chrono::milliseconds delay) {
    auto until = std::chrono::steady_clock::now() + delay;
    while (!stop_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      // Commands that arrive meanwhile are for a connection that is gone.
      detail::WaitReadable(-1, waker_, left);
      DropCommands();
    }
  }

  void DropCommands() {
    std::lock_guard lock(commands_mutex_);
    stale_ += commands_.size();
    commands_.clear();
  }

  void Session(Connection& c, uint64_t generation) {
    auto idle_wait = std::chrono::milliseconds(
        config_.heartbeat_seconds ? std::min<int>(1000, config_.heartbeat_seconds * 250) : 1000);
    while (!stop_) {
      TakeCommands(c, generation);
      FlushAcks(c);
      if (!c.HasBuffered()) {
        detail::WaitReadable(c.fd(), waker_, idle_wait);
      }
      // Also when nothing is readable: the zero-timeout read sends heartbeats due.
      amqp_frame_t frame;
      for (int i = 0; i < kFramesPerTurn && !stop_; ++i) {
        if (!c.NextFrame(frame, std::chrono::milliseconds(0))) break;
        HandleFrame(c, frame, generation);
      }
      amqp_maybe_release_buffers(c.get());
    }
    // Stopping: what the engine acked before Stop() still goes out.
    TakeCommands(c, generation);
    FlushAcks(c);
  }

  void TakeCommands(Connection& c, uint64_t generation) {
    {
      std::lock_guard lock(commands_mutex_);
      if (commands_.empty()) return;
      taken_.swap(commands_);
    }
    for (const Command& command : taken_) {
      // A tag from another connection, or one already settled: acking it would make
      // the broker close the channel (PRECONDITION_FAILED, unknown delivery tag).
      if (command.generation != generation || !window_.IsUnsettled(command.tag)) {
        ++stale_;
        continue;
      }
      if (command.kind == Command::kAck) {
        window_.MarkReady(command.tag);
        ++acked_;
      } else {
        c.CheckStatus(amqp_basic_nack(c.get(), kConsumeChannel, command.tag, /*multiple=*/0,
                                      command.kind == Command::kRequeue),
                      "basic.nack");
        window_.MarkSettled(command.tag);
        ++rejected_;
      }
    }
    taken_.clear();
  }

  void FlushAcks(Connection& c) {
    window_.Flush([&](uint64_t tag, bool multiple) {
      c.CheckStatus(amqp_basic_ack(c.get(), kConsumeChannel, tag, multiple), "basic.ack");
    });
  }

  void HandleFrame(Connection& c, const amqp_frame_t& frame, uint64_t generation) {
    if (frame.frame_type != AMQP_FRAME_METHOD) return;  // heartbeats; content is read below
    const amqp_method_t& method = frame.payload.method;
    switch (method.id) {
      case AMQP_BASIC_DELIVER_METHOD:
        OnDeliver(c, *static_cast<amqp_basic_deliver_t*>(method.decoded), generation);
        break;
      case AMQP_BASIC_ACK_METHOD: {
        auto* ack = static_cast<amqp_basic_ack_t*>(method.decoded);
        OnDeadConfirm(c, ack->delivery_tag, ack->multiple, true);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* nack = static_cast<amqp_basic_nack_t*>(method.decoded);
        OnDeadConfirm(c, nack->delivery_tag, nack->multiple, false);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD:
        OnDeadReturn(c, *static_cast<amqp_basic_return_t*>(method.decoded));
        break;
      case AMQP_BASIC_CANCEL_METHOD:
        // The broker cancelled us: the queue was deleted, or its leader moved.
        throw AmqpError("the broker cancelled the consumer (queue " +
                        config_.ConsumeQueue() + " deleted or unavailable)");
      default: break;
    }
  }

  void OnDeliver(Connection& c, const amqp_basic_deliver_t& deliver, uint64_t generation) {
    uint64_t tag = deliver.delivery_tag;
    std::string exchange = ToString(deliver.exchange);
    std::string routing_key = ToString(deliver.routing_key);
    bool redelivered = deliver.redelivered;
    Properties properties;
    std::string body;
    c.ReadContent(kConsumeChannel, properties, body);
    window_.Delivered(tag);

    std::string content_type = properties.content_type.value_or("");
    codec::DecodeResult decoded = codec::DecodeOrderEvent(body, content_type);
    if (!decoded) {
      DeadLetter(c, tag, exchange, routing_key, std::move(properties), std::move(body),
                 decoded.Error());
      return;
    }
    Delivery d;
    d.event = std::move(decoded).Event();
    d.body = std::move(body);
    d.content_type = std::move(content_type);
    d.exchange = std::move(exchange);
    d.routing_key = std::move(routing_key);
    d.message_id = properties.message_id.value_or("");
    d.headers = std::move(properties.headers);
    properties.headers.clear();
    d.properties = std::move(properties);
    d.redelivered = redelivered;
    d.delivery_tag = tag;
    d.generation = generation;
    ++delivered_;
    try {
      on_delivery_(std::move(d));
    } catch (const std::exception& e) {
      // The handler could not take it: give it back rather than hold it for ever.
      detail::Log("bus.consumer.handler_failed",
                  "delivery_tag=" + std::to_string(tag) + " error=" + detail::Quoted(e.what()));
      Push(Command{Command::kRequeue, generation, tag});
    }
  }

  // Moves an undecodable message to the dead-letter exchange with its reason, its
  // original routing key, body and properties. The original is acked only when the
  // broker has confirmed the copy: a crash in between leaves two copies at worst,
  // never none.
  void DeadLetter(Connection& c, uint64_t tag, const std::string& exchange,
                  const std::string& routing_key, Properties properties, std::string body,
                  const codec::DecodeError& error) {
    auto now = std::chrono::system_clock::now();
    properties.headers["x-payorch-error"] = FieldValue::String(error.code);
    properties.headers["x-payorch-detail"] = FieldValue::String(error.detail);
    properties.headers["x-payorch-original-exchange"] = FieldValue::String(exchange);
    properties.headers["x-payorch-original-routing-key"] = FieldValue::String(routing_key);
    properties.headers["x-payorch-dead-lettered-at"] = FieldValue::Timestamp(
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    // Persistent whatever it was: the dead-letter queue is where nothing may vanish.
    properties.delivery_mode = 2;
    // Headers that filled the message's frame leave no room for ours: the dead
    // letter keeps only the five above and says what it dropped, rather than
    // failing the connection at every delivery until the broker's delivery limit
    // takes it. (Whatever else is long stays within 255 bytes a property.)
    if (!FitsOneFrame(properties)) {
      const size_t bytes = EncodedPropertiesBytes(properties);
      Table ours;
      for (const char* key : {"x-payorch-error", "x-payorch-detail", "x-payorch-original-exchange",
                              "x-payorch-original-routing-key", "x-payorch-dead-lettered-at"})
        ours[key] = std::move(properties.headers[key]);
      const size_t dropped = properties.headers.size() - ours.size();
      properties.headers = std::move(ours);
      properties.headers["x-payorch-headers-dropped"] = FieldValue::String(
          std::to_string(dropped) + " headers: with the reason they took " +
          std::to_string(bytes) + " bytes, more than an AMQP frame (" +
          std::to_string(kFrameMax) + ")");
    }
    AmqpValues values;
    amqp_basic_properties_t props = values.MakeProperties(properties);
    c.CheckStatus(amqp_basic_publish(
                      c.get(), kDeadChannel, Bytes(config_.topology.dead_letter_exchange),
                      Bytes(routing_key), /*mandatory=*/1, /*immediate=*/0, &props, Bytes(body)),
                  "publishing a dead letter");
    dead_pending_[++dead_seq_] = DeadPending{tag, routing_key, std::move(body)};
    detail::Log("bus.consumer.dead_letter", "routing_key=" + detail::Quoted(routing_key) +
                                                " error=" + error.code +
                                                " detail=" + detail::Quoted(error.detail));
  }

  void OnDeadConfirm(Connection& c, uint64_t seq, bool multiple, bool ok) {
    auto end = multiple ? dead_pending_.upper_bound(seq) : dead_pending_.find(seq);
    auto begin = multiple ? dead_pending_.begin() : end;
    if (!multiple) {
      if (end == dead_pending_.end()) return;
      ++end;
    }
    for (auto it = begin; it != end;) {
      const DeadPending& p = it->second;
      if (ok && !p.returned) {
        if (window_.IsUnsettled(p.original_tag)) window_.MarkReady(p.original_tag);
        ++dead_lettered_;
      } else if (ok && p.returned) {
        // No queue behind the dead-letter exchange: keep the original unacked (it is
        // redelivered after a reconnect, which declares the binding again).
        status_.Problem("dead letter returned: exchange " + config_.topology.dead_letter_exchange +
                        " routes to no queue; holding the original");
      } else {
        // The broker could not take the copy: give the original back to try again.
        if (window_.IsUnsettled(p.original_tag)) {
          c.CheckStatus(amqp_basic_nack(c.get(), kConsumeChannel, p.original_tag, 0, 1),
                        "basic.nack");
          window_.MarkSettled(p.original_tag);
        }
      }
      it = dead_pending_.erase(it);
    }
  }

  void OnDeadReturn(Connection& c, const amqp_basic_return_t& ret) {
    std::string routing_key = ToString(ret.routing_key);
    Properties properties;
    std::string body;
    c.ReadContent(kDeadChannel, properties, body);
    for (auto& [seq, p] : dead_pending_) {
      if (!p.returned && p.routing_key == routing_key && p.body == body) {
        p.returned = true;
        break;
      }
    }
  }

  const BusConfig config_;
  const DeliveryHandler on_delivery_;
  detail::StatusKeeper status_;
  detail::Waker waker_;

  std::mutex start_mutex_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};

  std::mutex commands_mutex_;
  std::vector<Command> commands_;

  // Consumer thread only.
  std::vector<Command> taken_;
  AckWindow window_;
  std::map<uint64_t, DeadPending> dead_pending_;
  uint64_t dead_seq_ = 0;

  std::atomic<uint64_t> delivered_{0}, acked_{0}, rejected_{0}, dead_lettered_{0}, stale_{0};
};

Consumer::Consumer(BusConfig config, DeliveryHandler on_delivery, StatusHandler on_status) {
  if (auto bad = config.Validate()) throw std::invalid_argument("bus configuration: " + *bad);
  if (!on_delivery) throw std::invalid_argument("bus consumer: no delivery handler");
  impl_ = std::make_unique<Impl>(std::move(config), std::move(on_delivery), std::move(on_status));
}

Consumer::~Consumer() = default;
void Consumer::Start() {
  impl_->Start();
}
void Consumer::Stop() {
  impl_->Stop();
}

void Consumer::Ack(uint64_t generation, uint64_t delivery_tag) {
  impl_->Push(Command{Command::kAck, generation, delivery_tag});
}

void Consumer::Reject(uint64_t generation, uint64_t delivery_tag, bool requeue) {
  impl_->Push(Command{requeue ? Command::kRequeue : Command::kReject, generation, delivery_tag});
}

LinkStatus Consumer::Status() const {
  return impl_->Status();
}
Consumer::Stats Consumer::GetStats() const {
  return impl_->GetStats();
}

}  // namespace payorch::bus
