// The engine's bus ports on the bus library: order events from bus::Consumer,
// payment events through bus::Publisher. Work from the bus threads is queued under
// a lock and the engine thread is woken once per burst (Clock::Post), not once per
// message: each wake-up is a syscall.
// Thread: the bus library's threads hand over; the engine calls from its thread.
// Errors: the bus library reconnects by itself; link state is reported, not thrown.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "bus/config.hpp"
#include "engine/ports.hpp"

namespace payorch::bus {
class Consumer;
class Publisher;
}  // namespace payorch::bus

namespace payorch::runtime {

// Items handed from another thread to the engine thread in bursts.
template <typename T>
class Mailbox {
 public:
  // True when the box was empty: the caller wakes the engine thread.
  bool Put(T item) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(item));
    return items_.size() == 1;
  }
  std::vector<T> Take() {
    std::vector<T> items;
    std::lock_guard lock(mu_);
    items.swap(items_);
    return items;
  }

 private:
  std::mutex mu_;
  std::vector<T> items_;
};

class BusSource : public engine::OrderSource {
 public:
  BusSource(const bus::BusConfig& config, engine::Clock& clock);
  ~BusSource() override;
  void Start(std::function<void(engine::Delivery)> on_delivery) override;
  void Ack(uint64_t generation, uint64_t tag) override;
  void Requeue(uint64_t generation, uint64_t tag) override;
  void Stop() override;
  engine::LinkState State() const override;
  uint64_t DeadLettered() const override;

 private:
  bus::BusConfig config_;
  engine::Clock& clock_;
  std::function<void(engine::Delivery)> on_delivery_;
  Mailbox<engine::Delivery> box_;
  std::unique_ptr<bus::Consumer> consumer_;
};

class BusPublisher : public engine::EventPublisher {
 public:
  BusPublisher(const bus::BusConfig& config, engine::Clock& clock);
  ~BusPublisher() override;
  void Start(std::function<void()> on_connected) override;
  void Publish(const domain::PaymentEvent& event,
               std::function<void(engine::PublishOutcome)> done) override;
  void Stop() override;
  engine::LinkState State() const override;

 private:
  struct Confirm {
    std::function<void(engine::PublishOutcome)> done;
    engine::PublishOutcome outcome;
  };
  bus::BusConfig config_;
  engine::Clock& clock_;
  Mailbox<Confirm> box_;
  std::unique_ptr<bus::Publisher> publisher_;
};

}  // namespace payorch::runtime
