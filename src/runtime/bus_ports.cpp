#include "runtime/bus_ports.hpp"

#include "bus/consumer.hpp"
#include "bus/publisher.hpp"

namespace payorch::runtime {

BusSource::BusSource(const bus::BusConfig& config, engine::Clock& clock)
    : config_(config), clock_(clock) {}

BusSource::~BusSource() {
  Stop();
}

void BusSource::Start(std::function<void(engine::Delivery)> on_delivery) {
  on_delivery_ = std::move(on_delivery);
  consumer_ = std::make_unique<bus::Consumer>(config_, [this](bus::Delivery d) {
    engine::Delivery out{std::move(d.event), d.generation, d.delivery_tag};
    if (box_.Put(std::move(out)))
      clock_.Post([this] {
        for (auto& item : box_.Take()) on_delivery_(std::move(item));
      });
  });
  consumer_->Start();
}

void BusSource::Ack(uint64_t generation, uint64_t tag) {
  if (consumer_) consumer_->Ack(generation, tag);
}

void BusSource::Requeue(uint64_t generation, uint64_t tag) {
  if (consumer_) consumer_->Reject(generation, tag, /*requeue=*/true);
}

void BusSource::Stop() {
  if (consumer_) consumer_->Stop();
}

engine::LinkState BusSource::State() const {
  if (!consumer_) return {false, "not started"};
  bus::LinkStatus s = consumer_->Status();
  return {s.connected, s.last_error};
}

uint64_t BusSource::DeadLettered() const {
  return consumer_ ? consumer_->GetStats().dead_lettered : 0;
}

BusPublisher::BusPublisher(const bus::BusConfig& config, engine::Clock& clock)
    : config_(config), clock_(clock) {}

BusPublisher::~BusPublisher() {
  Stop();
}

void BusPublisher::Start(std::function<void()> on_connected) {
  // The bus adapter logs its own connects and losses; a new connection may send
  // what waited for it.
  publisher_ = std::make_unique<bus::Publisher>(
      config_, [this, on_connected = std::move(on_connected)](const bus::LinkStatus& s) {
        if (s.connected) clock_.Post(on_connected);
      });
  publisher_->Start();
}

void BusPublisher::Publish(const domain::PaymentEvent& event,
                           std::function<void(engine::PublishOutcome)> done) {
  publisher_->PublishPaymentEvent(event, [this, done = std::move(done)](bus::PublishResult r) {
    engine::PublishOutcome o{r.Ok(), bus::PublishStatusName(r.status), std::move(r.detail),
                             r.status == bus::PublishStatus::kRefused};
    if (box_.Put(Confirm{std::move(done), std::move(o)}))
      clock_.Post([this] {
        for (auto& c : box_.Take()) c.done(std::move(c.outcome));
      });
  });
}

void BusPublisher::Stop() {
  if (publisher_) publisher_->Stop();
}

engine::LinkState BusPublisher::State() const {
  if (!publisher_) return {false, "not started"};
  bus::LinkStatus s = publisher_->Status();
  return {s.connected, s.last_error};
}

}  // namespace payorch::runtime
