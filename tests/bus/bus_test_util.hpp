// Shared by the bus tests: the broker URL (PAYORCH_AMQP_URL, set by scripts/test),
// a fixture with a topology of unique names that is deleted afterwards, sample
// order events, and waiting for a condition with a bound (never a bare sleep).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bus/config.hpp"
#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "bus/topology.hpp"
#include "codec/codec.hpp"
#include "kit/kit.hpp"

namespace payorch::bus::testing {

// The broker URL, names and waiting come from payorch_kit, shared with the
// end-to-end tests: one place for PAYORCH_AMQP_URL and its build/broker/url fallback.
// Here a missing broker is "" (each test asserts it with its own message).
inline std::string BrokerUrl() {
  try {
    return kit::BrokerUrl();
  } catch (const std::runtime_error&) {
    return "";
  }
}

using kit::RandomSuffix;

// Polls `done` every few milliseconds until it holds or `bound` passes.
inline bool WaitFor(const std::function<bool()>& done,
                    std::chrono::milliseconds bound = std::chrono::seconds(20)) {
  return kit::WaitFor(done, bound);
}

// Quiet by default: the adapter's reconnect logs would drown the test output.
inline BusConfig TestConfig(const std::string& url, const std::string& suffix) {
  BusConfig c;
  c.url = url;
  c.topology.orders_exchange = "test.orders." + suffix;
  c.topology.orders_queue = "test.orders." + suffix;
  c.topology.dead_letter_exchange = "test.orders.dlx." + suffix;
  c.topology.dead_letter_queue = "test.orders.dead." + suffix;
  c.topology.payments_exchange = "test.payments." + suffix;
  c.consumer_tag = "test-" + suffix;
  c.reconnect_min = std::chrono::milliseconds(50);
  c.reconnect_max = std::chrono::milliseconds(1000);
  c.heartbeat_seconds = 10;
  return c;
}

class BusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = BrokerUrl();
    ASSERT_FALSE(url_.empty())
        << "broker not running: start it with scripts/broker start "
           "(PAYORCH_AMQP_URL is not set and build/broker/url does not exist)";
    suffix_ = RandomSuffix();
    config_ = TestConfig(url_, suffix_);
    try {
      admin_ = std::make_unique<Admin>(config_, "payorch test admin");
    } catch (const std::exception& e) {
      FAIL() << "broker not running: start it with scripts/broker start (cannot connect to " << url_
             << ": " << e.what() << ")";
    }
  }

  void TearDown() override {
    if (!admin_) return;
    try {
      for (const auto& q : extra_queues_) admin_->DeleteQueue(q);
      admin_->DeleteTopology(config_.topology);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleaning up: " << e.what();
    }
  }

  // A queue bound to the payments exchange, to see what the publisher sent.
  std::string PaymentsQueue() {
    std::string q = "test.payments.sink." + suffix_;
    admin_->DeclareQueue(q, true, {});
    admin_->Bind(q, config_.topology.payments_exchange, "#");
    extra_queues_.push_back(q);
    return q;
  }

  std::string url_;
  std::string suffix_;
  BusConfig config_;
  std::unique_ptr<Admin> admin_;
  std::vector<std::string> extra_queues_;
};

// One sample of each order event kind.
inline std::vector<domain::OrderEvent> OrderSamples(const std::string& tag) {
  domain::PurchaseRequested purchase;
  purchase.amount = 1500;
  purchase.vat_amount = 300;
  purchase.currency = "NOK";
  purchase.description = "Blåbærsyltetøy, 2 glass";
  purchase.msisdn = "+4798765432";
  purchase.metadata = {{"channel", "web"}};
  std::vector<domain::OrderEventKind> kinds = {
      purchase,
      domain::PayerMsisdnProvided{"+4798765432"},
      domain::OrderShipped{"ship-1", 1000, 200, "first box"},
      domain::OrderCancelled{"changed my mind"},
      domain::RefundRequested{"refund-1", 500, 100, "broken glass"},
  };
  std::vector<domain::OrderEvent> out;
  int n = 0;
  for (auto& kind : kinds) {
    domain::OrderEvent e;
    e.event_id = "evt-" + tag + "-" + std::to_string(++n);
    e.order_id = "order-" + tag;
    e.occurred_at = domain::FromMillis(1'717'171'717'000 + n);
    e.kind = kind;
    out.push_back(std::move(e));
  }
  return out;
}

// An order event as an order service publishes it (contract.md, "Inbound").
inline Message OrderMessage(const BusConfig& config, const domain::OrderEvent& e, bool json) {
  Message m;
  m.exchange = config.topology.orders_exchange;
  m.routing_key = codec::OrderRoutingKey(e.kind);
  m.body = json ? codec::EncodeOrderEventJson(e) : codec::EncodeOrderEvent(e);
  m.properties.content_type =
      std::string(json ? codec::kContentTypeJson : codec::kContentTypeProtobuf);
  m.properties.message_id = e.event_id;
  m.properties.type = std::string(codec::kOrderEventType);
  m.properties.delivery_mode = 2;
  m.mandatory = true;
  return m;
}

// Collects deliveries from the consumer thread.
class Inbox {
 public:
  void Add(Delivery d) {
    std::lock_guard lock(mutex_);
    deliveries_.push_back(std::move(d));
  }
  size_t Size() const {
    std::lock_guard lock(mutex_);
    return deliveries_.size();
  }
  std::vector<Delivery> All() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Delivery> deliveries_;
};

}  // namespace payorch::bus::testing
