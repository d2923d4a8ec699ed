// The broker goes away in the middle of a run and comes back (scripts/broker stop,
// start): payorchd says it is not ready meanwhile, then resumes consuming and
// publishing by itself; every order reaches its end, every committed event is
// confirmed by the broker, PayEx sees nothing twice. It takes the broker from every
// other test, hence RUN_SERIAL.
#include <array>
#include <cstdio>

#include "e2e/e2e_util.hpp"
#include "store/store.hpp"

namespace payorch::e2e {
namespace {

using K = EventKind;

int Shell(const std::string& command, std::string* out = nullptr) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), pipe))
    if (out) *out += buf.data();
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::string kBroker = std::string(PAYORCH_SOURCE_DIR) + "/scripts/broker";

// Publishes, retrying while the broker is away (the publisher reconnects by itself).
void PublishRetrying(kit::BusClient& bus, const domain::OrderEvent& e) {
  for (int attempt = 0;; ++attempt) {
    try {
      bus.Publish(e);
      return;
    } catch (const std::exception&) {
      if (attempt > 400) throw;
      std::this_thread::sleep_for(50ms);  // the publisher's reconnect, not a test wait
    }
  }
}

TEST(E2eBrokerRestart, PayorchdResumesConsumingAndPublishingAfterTheBrokerComesBack) {
  std::string status;
  ASSERT_EQ(Shell(kBroker + " status", &status), 0) << "scripts/broker status: " << status;
  ASSERT_NE(status.find(kit::BrokerUrl()), std::string::npos)
      << "the broker at " << kit::BrokerUrl() << " is not the one scripts/broker manages";
  struct Restore {
    ~Restore() {
      if (Shell(kBroker + " status") != 0) Shell(kBroker + " start");
    }
  } restore;

  World w;
  constexpr int kOrders = 40;
  auto order = [](int i) { return "br-" + std::to_string(i); };
  for (int i = 0; i < kOrders / 2; ++i) {
    w.Publish(Purchase(order(i), 1000 + i));
    w.Publish(Shipped(order(i), "s1", 1000 + i));
  }
  ASSERT_TRUE(kit::WaitFor([&] { return w.bus().Count() >= 6; }, 30s));

  ASSERT_EQ(Shell(kBroker + " stop", &status), 0) << status;
  EXPECT_TRUE(kit::WaitFor([&] { return w.daemon().Get("/readyz").status == 503; }, 30s))
      << "payorchd stayed ready without a broker";
  EXPECT_NE(w.daemon().Get("/readyz").body.find("not connected"), std::string::npos);
  EXPECT_EQ(w.daemon().Get("/healthz").status, 200);
  ASSERT_EQ(Shell(kBroker + " start", &status), 0) << status;
  ASSERT_TRUE(kit::WaitFor([&] { return w.daemon().Get("/readyz").status == 200; }, 60s))
      << w.daemon().Get("/readyz").body << w.daemon().LogTail();

  for (int i = kOrders / 2; i < kOrders; ++i) {
    PublishRetrying(w.bus(), Purchase(order(i), 1000 + i));
    PublishRetrying(w.bus(), Shipped(order(i), "s1", 1000 + i));
  }
  // Every payment ends captured in full, and every event was confirmed by the broker.
  // (The observer's own queue did not survive the restart: the store is the witness.)
  store::Options so;
  so.create_if_missing = false;
  so.quick_check = false;
  auto all_captured = [&] {
    store::Store s = store::Store::Open(w.daemon().store_path(), so);
    for (int i = 0; i < kOrders; ++i) {
      auto p = s.LoadPayment(order(i));
      if (!p || p->balance.captured != 1000 + i) return false;
    }
    return s.UnsentOutbox(10).empty();
  };
  ASSERT_TRUE(kit::WaitFor(all_captured, 90s)) << w.daemon().LogTail(30);
  store::Store s = store::Store::Open(w.daemon().store_path(), so);
  for (int i = 0; i < kOrders; ++i) {
    auto events = s.OutboxFor(order(i));
    ASSERT_EQ(events.size(), 2u) << order(i);
    EXPECT_EQ(events[0].event.kind, K::kAuthorized);
    EXPECT_EQ(events[1].event.kind, K::kCaptured);
  }
  EXPECT_EQ(w.daemon().Metric("payorch_outbox_backlog").value_or(-1), 0);
  EXPECT_TRUE(w.LedgerOk());
}

}  // namespace
}  // namespace payorch::e2e
