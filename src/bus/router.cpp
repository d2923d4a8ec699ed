#include "bus/router.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

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
        consumer_(ConsumerConfig(config_), [this](Delivery d) { OnDelivery(std::move(d)); }) {}

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard lock(mu_);
    if (started_ || stop_) return;
    started_ = true;
    sender_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "payorch-router");
      SendLoop();
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
    if (sender_.joinable()) sender_.join();
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
  using Steady = std::chrono::steady_clock;
  enum class State { kWaiting, kSent, kConfirmed };
  struct Item {
    uint64_t id;
    std::string order_id;
    Message message;
    uint64_t generation;
    uint64_t tag;
    State state = State::kWaiting;
    int failures = 0;
    Steady::time_point not_before{};  // after a failure: when to try again
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

  // Consumer thread: queued for the sender thread.
  void OnDelivery(Delivery d) {
    Message m;
    m.exchange = config_.topology.partitions_exchange;
    m.routing_key = std::move(d.routing_key);
    m.body = std::move(d.body);
    m.properties = std::move(d.properties);
    m.properties.headers = std::move(d.headers);
    // The broker's own bookkeeping of the orders queue is not the partition queue's.
    m.properties.headers.erase("x-delivery-count");
    m.properties.headers.erase("x-death");
    m.properties.headers[kPartitionHeader] = FieldValue::String(
        std::to_string(domain::PartitionOf(d.event.order_id, config_.topology.partitions)));
    m.mandatory = true;  // a partition without its queue comes back, not lost
    {
      std::lock_guard lock(mu_);
      items_.push_back(Item{next_id_++, d.event.order_id, std::move(m), d.generation,
                            d.delivery_tag});
      dirty_ = true;
    }
    cv_.notify_all();
  }

  // Under mu_: what may be sent now, marked sent. One copy of an order in flight at
  // a time, so none of its events can overtake another, whatever the broker
  // answers (a nack or a return for one and a confirm for the next included); other
  // orders flow meanwhile. `wake`: the earliest retry still waiting.
  std::vector<std::pair<uint64_t, Message>> Take(Steady::time_point now,
                                                 Steady::time_point& wake) {
    std::vector<std::pair<uint64_t, Message>> out;
    std::unordered_set<std::string_view> busy;
    for (Item& item : items_) {
      if (item.state == State::kConfirmed) continue;
      if (!busy.insert(item.order_id).second) continue;  // an earlier one of its order
      if (item.state != State::kWaiting) continue;
      if (item.not_before > now) {
        wake = std::min(wake, item.not_before);
        continue;
      }
      item.state = State::kSent;
      if (item.failures > 0) ++resent_;
      out.emplace_back(item.id, item.message);
    }
    return out;
  }

  // Publisher thread (or the sender's, for a result known at once).
  void OnResult(uint64_t id, const PublishResult& r) {
    {
      std::lock_guard lock(mu_);
      if (items_.empty() || id < items_.front().id) return;
      Item& item = items_[id - items_.front().id];
      if (r.Ok()) {
        item.state = State::kConfirmed;
        consumer_.Ack(item.generation, item.tag);
        ++forwarded_;
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
        ++item.failures;
        // Capped exponential backoff per copy: a full partition does not hold up the others.
        auto delay = config_.reconnect_min * (1 << std::min(item.failures - 1, 16));
        item.not_before = Steady::now() + std::min(delay, config_.reconnect_max);
        if (item.failures == 1 || item.failures % 10 == 0)
          detail::Log("bus.router.retrying",
                      "status=" + std::string(PublishStatusName(r.status)) +
                          " failures=" + std::to_string(item.failures) +
                          " detail=" + detail::Quoted(r.detail));
      }
      while (!items_.empty() && items_.front().state == State::kConfirmed) items_.pop_front();
      dirty_ = true;
    }
    cv_.notify_all();
  }

  // The sender thread: the only one that publishes, so copies go out in item order.
  void SendLoop() {
    std::unique_lock lock(mu_);
    Steady::time_point wake = Steady::time_point::max();
    while (!stop_) {
      if (wake == Steady::time_point::max()) {
        cv_.wait(lock, [&] { return stop_ || dirty_; });
      } else {
        cv_.wait_until(lock, wake, [&] { return stop_ || dirty_; });
      }
      if (stop_) break;
      dirty_ = false;
      wake = Steady::time_point::max();
      auto out = Take(Steady::now(), wake);
      lock.unlock();
      for (auto& [id, message] : out)
        publisher_.Publish(std::move(message),
                           [this, id = id](PublishResult r) { OnResult(id, r); });
      lock.lock();
    }
  }

  BusConfig config_;
  Publisher publisher_;
  Consumer consumer_;
  std::mutex mu_;  // items_, dirty_, stop_, started_
  std::condition_variable cv_;
  std::deque<Item> items_;  // unconfirmed deliveries, in delivery order
  uint64_t next_id_ = 0;
  bool dirty_ = false;  // something to look at for the sender
  bool started_ = false;
  bool stop_ = false;
  std::thread sender_;
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
