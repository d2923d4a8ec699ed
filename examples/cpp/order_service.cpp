// An order service publishing order events to payorch with the bus library
// (the README's bus contract, "Inbound"). For each order: a PurchaseRequested with the payer's
// mobile number, then an OrderShipped for the whole amount. Each publish waits for
// the broker's confirm; one that is not confirmed is published again with the same
// event_id (payorch handles each event_id once).
//
//   order_service URL [ORDERS_EXCHANGE] [ORDERS] [PREFIX]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bus/publisher.hpp"
#include "codec/codec.hpp"

using namespace payorch;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: order_service URL [ORDERS_EXCHANGE] [ORDERS] [PREFIX]\n");
    return 2;
  }
  bus::BusConfig config;
  config.url = argv[1];
  const std::string exchange = argc > 2 ? argv[2] : "payorch.orders";
  const int orders = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::string prefix = argc > 4 ? argv[4] : "cpp-order-";

  bus::Publisher publisher(config);  // confirms on; reconnects by itself
  publisher.Start();

  auto publish = [&](const domain::OrderEvent& event) {
    bus::Message m;
    m.exchange = exchange;
    m.routing_key = codec::OrderRoutingKey(event.kind);
    m.body = codec::EncodeOrderEvent(event);  // protobuf; JSON works too
    m.properties.content_type = "application/x-protobuf";
    m.properties.message_id = event.event_id;  // the contract: message_id = event_id
    m.properties.type = "payorch.v1.OrderEvent";
    m.properties.delivery_mode = 2;  // persistent
    // Until the broker confirms: a failure (no route, a nack, a lost connection)
    // is published again; the same event_id makes a duplicate harmless.
    for (int attempt = 1;; ++attempt) {
      bus::PublishResult r = publisher.Publish(m).get();
      if (r.Ok()) break;
      std::fprintf(stderr, "publish %s failed (%s), attempt %d\n", event.event_id.c_str(),
                   r.detail.c_str(), attempt);
      if (attempt == 10) std::exit(1);
    }
    std::printf("published %s %s\n", m.routing_key.c_str(), event.event_id.c_str());
    std::fflush(stdout);
  };

  const domain::Time now =
      std::chrono::time_point_cast<domain::Duration>(std::chrono::system_clock::now());
  for (int i = 0; i < orders; ++i) {
    const std::string order = prefix + std::to_string(i);
    domain::PurchaseRequested purchase;
    purchase.amount = 15000;  // NOK 150.00, in øre
    purchase.vat_amount = 3000;
    purchase.currency = "NOK";
    purchase.description = "Example order";
    purchase.msisdn = "+4791234567";
    publish({order + ":purchase", order, now, purchase});
    domain::OrderShipped shipped;
    shipped.shipment_id = "1";
    shipped.amount = 15000;
    shipped.vat_amount = 3000;
    publish({order + ":ship-1", order, now, shipped});
  }
  publisher.Stop();
  return 0;
}
