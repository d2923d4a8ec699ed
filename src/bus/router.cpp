#include "bus/router.hpp"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "bus/amqp_link.hpp"
#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "domain/partition.hpp"

namespace payorch::bus {

class Router::Impl {
 public:
  explicit Impl(BusConfig config)
      : config_(Checked(std::move(config))),
        publisher_(config_),
        consumer_(ConsumerConfig(config_), [this](Delivery d) { OnDelivery(std::move(d)); }),
        backoff_(config_.reconnect_min, config_.reconnect_max) {}

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard lock(mu_);
    if (started_ || stop_) return;
    started_ = true;
    retry_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "payorch-router");
      RetryLoop();
    });
    publisher_.Start();
    consumer_.Start();
  }

  void Stop() {
    // The consumer first: nothing new comes in, and what is unacked goes back.
    consumer_.Stop();
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (retry_thread_.joinable()) retry_thread_.join();
    publisher_.Stop();
  }

  LinkStatus ConsumerStatus() const { return consumer_.Status(); }
  LinkStatus PublisherStatus() const { return publisher_.Status(); }
  Stats GetStats() const {
    Stats s;
    s.forwarded = forwarded_.load();
    s.resent = resent_.load();
    s.dead_lettered = consumer_.GetStats().dead_lettered;
    s.refused = refused_.load();
    return s;
  }

 private:
  enum class State { kWaiting, kSent, kConfirmed };
  struct Item {
    uint64_t id;
    Message message;
    uint64_t generation;
    uint64_t tag;
    State state = State::kWaiting;
    bool sent_before = false;
  };

  static BusConfig Checked(BusConfig c) {
    if (auto bad = c.Validate()) throw std::invalid_argument("bad bus configuration: " + *bad);
    if (c.topology.partitions < 2)
      throw std::invalid_argument("the router needs topology.partitions >= 2");
    return c;
  }

  static BusConfig ConsumerConfig(BusConfig c) {
    c.consume_queue = c.topology.orders_queue;
    c.consumer_tag += "-router";
    return c;
  }

  // Consumer thread.
  void OnDelivery(Delivery d) {
    Message m;
    m.exchange = config_.topology.partitions_exchange;
    m.routing_key = std::move(d.routing_key);
    m.body = std::move(d.body);
    m.properties = std::move(d.properties);
    m.properties.headers = std::move(d.headers);
    m.properties.headers[kPartitionHeader] = FieldValue::String(
        std::to_string(domain::PartitionOf(d.event.order_id, config_.topology.partitions)));
    m.mandatory = true;  // a partition without its queue comes back, not lost
    std::lock_guard send(send_mu_);
    std::vector<std::pair<uint64_t, Message>> out;
    {
      std::lock_guard lock(mu_);
      items_.push_back(Item{next_id_++, std::move(m), d.generation, d.delivery_tag});
      // Nothing overtakes a copy waiting to be sent again.
      if (!backing_off_) Take(out);
    }
    Send(out);
  }

  // Under mu_: the waiting items, in order, marked sent.
  void Take(std::vector<std::pair<uint64_t, Message>>& out) {
    for (Item& item : items_) {
      if (item.state != State::kWaiting) continue;
      item.state = State::kSent;
      if (item.sent_before) ++resent_;
      item.sent_before = true;
      out.emplace_back(item.id, item.message);
    }
  }

  // Under send_mu_ only (a result may come back at once, taking mu_).
  void Send(std::vector<std::pair<uint64_t, Message>>& out) {
    for (auto& [id, message] : out)
      publisher_.Publish(std::move(message), [this, id = id](PublishResult r) { OnResult(id, r); });
  }

  // Publisher thread (or the sender's, for a result known at once).
  void OnResult(uint64_t id, const PublishResult& r) {
    bool retry = false;
    {
      std::lock_guard lock(mu_);
      if (items_.empty() || id < items_.front().id) return;
      Item& item = items_[id - items_.front().id];
      if (r.Ok()) {
        item.state = State::kConfirmed;
        consumer_.Ack(item.generation, item.tag);
        ++forwarded_;
        backoff_.Reset();
      } else if (r.status == PublishStatus::kRefused) {
        // Never publishable as it is (the header made it too big): the broker
        // dead-letters the original, with x-death.
        item.state = State::kConfirmed;
        consumer_.Reject(item.generation, item.tag, /*requeue=*/false);
        ++refused_;
        detail::Log("bus.router.refused", "detail=" + detail::Quoted(r.detail));
      } else if (r.status == PublishStatus::kStopped) {
        return;  // stopping: it stays unacked and goes back to the queue
      } else {
        item.state = State::kWaiting;
        if (!backing_off_) {
          backing_off_ = true;
          retry = true;
          detail::Log("bus.router.retrying", "status=" + std::string(PublishStatusName(r.status)) +
                                                 " detail=" + detail::Quoted(r.detail));
        }
      }
      while (!items_.empty() && items_.front().state == State::kConfirmed) items_.pop_front();
    }
    if (retry) cv_.notify_all();
  }

  void RetryLoop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait(lock, [&] { return stop_ || backing_off_; });
      if (stop_) break;
      cv_.wait_for(lock, backoff_.Next(), [&] { return stop_; });
      if (stop_) break;
      lock.unlock();
      {
        std::lock_guard send(send_mu_);
        std::vector<std::pair<uint64_t, Message>> out;
        {
          std::lock_guard again(mu_);
          backing_off_ = false;
          Take(out);
        }
        Send(out);
      }
      lock.lock();
    }
  }

  BusConfig config_;
  Publisher publisher_;
  Consumer consumer_;
  std::mutex send_mu_;  // Publish calls in item order
  std::mutex mu_;       // items_, backing_off_, stop_, backoff_
  std::condition_variable cv_;
  std::deque<Item> items_;  // unconfirmed deliveries, in delivery order
  uint64_t next_id_ = 0;
  bool backing_off_ = false;
  bool started_ = false;
  bool stop_ = false;
  detail::Backoff backoff_;
  std::thread retry_thread_;
  std::atomic<uint64_t> forwarded_{0}, resent_{0}, refused_{0};
};

Router::Router(BusConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Router::~Router() = default;
void Router::Start() { impl_->Start(); }
void Router::Stop() { impl_->Stop(); }
LinkStatus Router::ConsumerStatus() const { return impl_->ConsumerStatus(); }
LinkStatus Router::PublisherStatus() const { return impl_->PublisherStatus(); }
Router::Stats Router::GetStats() const { return impl_->GetStats(); }

}  // namespace payorch::bus
