// A consumer of payorch's payment events with the bus library (the README's bus
// contract, "Outbound"). payorch publishes at least once, so the consumer
//  - deduplicates by event_id (a real service records the ids it handled in its
//    own database, in the same transaction as its effect);
//  - orders each order's events by sequence (1, 2, 3, ... without gaps), holding
//    an early one until the ones before it arrived.
// bus::Subscriber watches through a private queue that lives with its connection:
// fine for this example and for tools. A service that must not miss an event while
// it is down consumes a durable queue of its own, acking after handling (see the
// Python example).
//
//   payment_consumer URL [PAYMENTS_EXCHANGE] [EXPECT]
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "bus/subscriber.hpp"
#include "codec/codec.hpp"
#include "domain/types.hpp"

using namespace payorch;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: payment_consumer URL [PAYMENTS_EXCHANGE] [EXPECT]\n");
    return 2;
  }
  bus::BusConfig config;
  config.url = argv[1];
  const std::string exchange = argc > 2 ? argv[2] : "payorch.payments";
  const size_t expect = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 0;

  std::mutex mu;
  std::condition_variable done;
  std::set<std::string> seen;                                            // event_ids handled
  std::map<std::string, uint64_t> next_seq;                              // per order
  std::map<std::string, std::map<uint64_t, domain::PaymentEvent>> held;  // early ones
  size_t handled = 0;

  std::unique_ptr<bus::Subscriber> subscription;
  try {
    subscription =
        std::make_unique<bus::Subscriber>(config, exchange, "payment.#", [&](bus::Observed m) {
          std::optional<domain::PaymentEvent> event = codec::DecodePaymentEvent(m.body);
          if (!event) return;  // not a payment event of this contract version: skip it
          std::lock_guard lock(mu);
          if (!seen.insert(event->event_id).second) return;  // a duplicate
          const std::string order = event->order_id;
          held[order][event->sequence] = *event;
          uint64_t& next = next_seq.try_emplace(order, 1).first->second;
          for (auto it = held[order].find(next); it != held[order].end();
               it = held[order].find(next)) {
            const domain::PaymentEvent& e = it->second;
            std::printf("%s #%llu %s authorized=%lld captured=%lld\n", order.c_str(),
                        static_cast<unsigned long long>(e.sequence), domain::EventKindName(e.kind),
                        static_cast<long long>(e.balance.authorized),
                        static_cast<long long>(e.balance.captured));
            std::fflush(stdout);
            held[order].erase(it);
            ++next;
            ++handled;
          }
          if (expect && handled >= expect) done.notify_all();
        });
  } catch (const std::exception& e) {  // the broker unreachable, a bad URL
    std::fprintf(stderr, "cannot subscribe: %s\n", e.what());
    return 1;
  }
  bus::Subscriber& subscriber = *subscription;
  std::printf("ready: consuming %s\n", subscriber.queue().c_str());
  std::fflush(stdout);
  std::unique_lock lock(mu);
  // Woken by the handler; also looks every half second whether the connection went.
  while (!(expect && handled >= expect)) {
    done.wait_for(lock, std::chrono::milliseconds(500));
    if (!subscriber.Failed().empty()) {
      std::fprintf(stderr, "subscription ended: %s\n", subscriber.Failed().c_str());
      return 1;
    }
  }
  return 0;
}
