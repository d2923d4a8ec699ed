// The simulation's RabbitMQ: the orders queue (with deliveries, acks by tag and
// connection generation, requeues, redelivery after a lost connection, prefetch)
// and what consumers of payment events see. Faults: delayed deliveries, copies of
// an order event published twice, dropped connections, publishes nacked or whose
// confirm is lost after the broker took the message.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/ports.hpp"
#include "sim_loop.hpp"

namespace payorch::sim {

struct BusFaults {
  double duplicate = 0;        // an order event published a second time, later
  double drop_consumer = 0;    // per delivery: the consumer's connection drops
  double nack = 0;             // per publish: the broker refuses it
  double confirm_lost = 0;     // per publish: taken, but the confirm is lost (connection drops)
  double refuse = 0;           // per publish: refused for good (bus::PublishStatus::kRefused)
  Duration delivery_max = 5ms;  // delivery delay
  Duration reconnect_max = 2s;
};

class FakeBroker {
 public:
  FakeBroker(Loop& loop, std::mt19937_64& rng, BusFaults faults)
      : loop_(loop), rng_(rng), faults_(faults) {}

  void set_faults(BusFaults f) { faults_ = f; }
  void set_crash_hook(CrashHook h) { crash_ = std::move(h); }

  // ---- the order services' side ------------------------------------------------
  void PublishOrderEvent(const domain::OrderEvent& ev) {
    queue_.push_back(Msg{++next_id_, ev});
    if (Roll() < faults_.duplicate) {
      // The producer's retry: the same event again, a little later.
      loop_.After(Duration(static_cast<int64_t>(rng_() % 3000)), [this, ev] {
        queue_.push_back(Msg{++next_id_, ev});
        Kick();
      });
    }
    Kick();
  }

  // ---- the engine's source ------------------------------------------------------
  void Open(std::function<void(engine::Delivery)> deliver) {
    ++session_;
    deliver_ = std::move(deliver);
    consumer_up_ = true;
    ++generation_;
    Kick();
  }
  // The process is gone: its connection closes, unacked messages go back.
  void CloseConsumer() {
    ++session_;
    Disconnect();
  }
  void Disconnect() {
    consumer_up_ = false;
    deliver_ = nullptr;
    ++generation_;
    for (Msg& m : queue_) m.unacked = false;
    unacked_ = 0;
  }
  void Ack(uint64_t gen, uint64_t tag) {
    if (gen != generation_) return;  // stale: the message was put back already
    auto it = std::find_if(queue_.begin(), queue_.end(),
                           [&](const Msg& m) { return m.unacked && m.tag == tag; });
    if (it == queue_.end()) return;
    queue_.erase(it);
    --unacked_;
    if (crash_) crash_("right after an ack");
    Kick();
  }
  void Requeue(uint64_t gen, uint64_t tag) {
    if (gen != generation_) return;
    for (Msg& m : queue_)
      if (m.unacked && m.tag == tag) {
        m.unacked = false;
        --unacked_;
      }
    Kick();
  }
  engine::LinkState ConsumerState() const { return {consumer_up_ && deliver_ != nullptr, ""}; }

  // ---- the engine's publisher ---------------------------------------------------
  bool publisher_up() const { return publisher_up_; }
  void Publish(const domain::PaymentEvent& ev, std::function<void(engine::PublishOutcome)> done) {
    if (!publisher_up_) {
      loop_.ProcessAfter(0ms, [done] { done({false, "not_connected", "no connection"}); });
      return;
    }
    const Duration d(static_cast<int64_t>(rng_() % 5));
    const double r = Roll();
    const uint64_t link = publisher_link_;
    loop_.After(d, [this, ev, done, r, link] {
      if (link != publisher_link_) {
        // The connection went down meanwhile: the confirm never comes, whether
        // or not the broker took the message.
        if (r < 0.5) payment_events_.push_back(ev);
        done({false, "connection_lost", "connection lost"});
      } else if (r < faults_.nack) {
        done({false, "nacked", "broker refused"});
      } else if (faults_.refuse > 0 && (r > 1 - faults_.refuse || refused_.count(ev.event_id))) {
        // Too big, say, for this configuration: never taken, and refused again at
        // every attempt (a restart's, an operator's) until the faults stop.
        refused_.insert(ev.event_id);
        done({false, "refused", "refused: a body of 9999 bytes (bus.max_message_bytes is 1)",
              true});
      } else if (r < faults_.nack + faults_.confirm_lost) {
        payment_events_.push_back(ev);  // the broker has it; the confirm never comes
        DropPublisher();
        done({false, "connection_lost", "confirm lost"});
      } else {
        payment_events_.push_back(ev);
        if (crash_) crash_("after the broker took an event, before its confirm");
        done({true, "confirmed", ""});
      }
    });
  }
  void SetPublisherHandler(std::function<void()> on_connected) {
    ++publisher_session_;
    on_connected_ = std::move(on_connected);
    publisher_up_ = true;
    if (on_connected_) on_connected_();
  }
  void ClosePublisher() {
    ++publisher_session_;
    ++publisher_link_;
    on_connected_ = nullptr;
    publisher_up_ = false;
  }

  // ---- faults and the end of a world ----------------------------------------------
  void DropConsumerConnection() {
    if (!consumer_up_) return;
    auto deliver = deliver_;
    Disconnect();
    const uint64_t session = session_;
    loop_.After(Duration(1 + static_cast<int64_t>(rng_() % faults_.reconnect_max.count())),
                [this, deliver, session] {
                  if (session_ == session && deliver) {
                    deliver_ = deliver;
                    consumer_up_ = true;
                    ++generation_;
                    Kick();
                  }
                });
  }
  void DropPublisher() {
    if (!publisher_up_) return;
    publisher_up_ = false;
    ++publisher_link_;
    const uint64_t session = publisher_session_;
    loop_.After(Duration(1 + static_cast<int64_t>(rng_() % faults_.reconnect_max.count())),
                [this, session] {
                  if (publisher_session_ == session && on_connected_) {
                    publisher_up_ = true;
                    on_connected_();
                  }
                });
  }

  size_t queued() const { return queue_.size(); }
  const std::vector<domain::PaymentEvent>& payment_events() const { return payment_events_; }

 private:
  struct Msg {
    uint64_t id = 0;
    domain::OrderEvent ev;
    bool unacked = false;
    uint64_t tag = 0;
  };

  double Roll() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  // Delivers ready messages in queue order, up to the prefetch, each a little later.
  void Kick() {
    if (!consumer_up_ || !deliver_) return;
    for (Msg& m : queue_) {
      if (unacked_ >= kPrefetch) break;
      if (m.unacked) continue;
      m.unacked = true;
      m.tag = ++next_tag_;
      ++unacked_;
      engine::Delivery d{m.ev, generation_, m.tag};
      deliver_at_ = std::max(deliver_at_, loop_.now()) +
                    Duration(static_cast<int64_t>(rng_() % (faults_.delivery_max.count() + 1)));
      const uint64_t gen = generation_;
      auto deliver = deliver_;
      const bool drop = Roll() < faults_.drop_consumer;
      loop_.At(deliver_at_, [this, d, gen, deliver, drop] {
        if (gen != generation_) return;  // the connection it came on is gone
        deliver(d);
        if (drop) DropConsumerConnection();
      });
    }
  }

  static constexpr size_t kPrefetch = 32;
  Loop& loop_;
  std::mt19937_64& rng_;
  BusFaults faults_;
  std::deque<Msg> queue_;
  uint64_t next_id_ = 0;
  uint64_t next_tag_ = 0;
  uint64_t generation_ = 0;
  size_t unacked_ = 0;
  Time deliver_at_{};
  bool consumer_up_ = false;
  uint64_t session_ = 0;            // bumps when a process opens or closes the consumer
  uint64_t publisher_session_ = 0;  // the same for the publisher
  uint64_t publisher_link_ = 0;     // bumps whenever the publisher's connection goes
  CrashHook crash_;
  std::function<void(engine::Delivery)> deliver_;
  bool publisher_up_ = false;
  std::function<void()> on_connected_;
  std::vector<domain::PaymentEvent> payment_events_;
  std::set<std::string> refused_;  // event ids refused for good while faults last
};

// The ports of one engine process on the broker.
class SimSource : public engine::OrderSource {
 public:
  SimSource(Loop& loop, FakeBroker& broker) : loop_(loop), broker_(broker) {}
  void Start(std::function<void(engine::Delivery)> on_delivery) override {
    broker_.Open(loop_.Guard(std::move(on_delivery)));
  }
  void Ack(uint64_t generation, uint64_t tag) override { broker_.Ack(generation, tag); }
  void Requeue(uint64_t generation, uint64_t tag) override { broker_.Requeue(generation, tag); }
  void Stop() override { broker_.CloseConsumer(); }
  engine::LinkState State() const override { return broker_.ConsumerState(); }
  uint64_t DeadLettered() const override { return 0; }

 private:
  Loop& loop_;
  FakeBroker& broker_;
};

class SimPublisher : public engine::EventPublisher {
 public:
  SimPublisher(Loop& loop, FakeBroker& broker) : loop_(loop), broker_(broker) {}
  void Start(std::function<void()> on_connected) override {
    broker_.SetPublisherHandler(loop_.Guard(std::move(on_connected)));
  }
  void Publish(const domain::PaymentEvent& event,
               std::function<void(engine::PublishOutcome)> done) override {
    broker_.Publish(event, loop_.Guard(std::move(done)));
  }
  void Stop() override { broker_.ClosePublisher(); }
  engine::LinkState State() const override { return {broker_.publisher_up(), ""}; }

 private:
  Loop& loop_;
  FakeBroker& broker_;
};

}  // namespace payorch::sim
