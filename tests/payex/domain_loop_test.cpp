// The state machine (domain::Decide) driving the real client against payex-sim:
// proves the client's PayexResult mapping is the one the state machine consumes,
// also when faults make outcomes in doubt. Domain time is virtual (jumps to the
// next due time); only the simulated payer runs in (fast) real time.
#include <gtest/gtest.h>

#include <deque>

#include "domain/decide.hpp"
#include "payex/client.hpp"
#include "sim_harness.hpp"

namespace payorch::payex {
namespace {
using namespace std::chrono_literals;
using namespace payorch::domain;

class Loop {
 public:
  Loop(Client& client, const std::string& order_id) : client_(client) {
    pay.order_id = order_id;
    now = FromMillis(1'700'000'000'000);
  }

  void Feed(Input input) {
    std::deque<Input> queue{std::move(input)};
    while (!queue.empty()) {
      Decision d = Decide(policy, pay, queue.front(), now);
      queue.pop_front();
      EXPECT_EQ(CheckInvariants(d.next), "") << d.note;
      pay = d.next;
      for (auto& e : d.events) events.push_back(e);
      for (const PayexCall& call : d.calls) {
        ++calls;
        PayexResult result = client_.Execute(call).get();
        queue.emplace_back(std::in_place_type<PayexResult>, std::move(result));
      }
    }
  }

  void Event(OrderEventKind kind) {
    OrderEvent ev;
    ev.event_id = pay.order_id + "-e" + std::to_string(++n_);
    ev.order_id = pay.order_id;
    ev.occurred_at = now;
    ev.kind = std::move(kind);
    Feed(ev);
  }

  // Ticks (jumping virtual time to each due time) until `done` or the bound.
  bool RunUntil(const std::function<bool()>& done) {
    return testing::WaitUntil([&] {
      if (done()) return true;
      if (pay.due_at != Time{} && pay.due_at > now) now = pay.due_at;
      Feed(Tick{});
      return done();
    });
  }

  bool Has(EventKind kind) const {
    for (const auto& e : events)
      if (e.kind == kind) return true;
    return false;
  }
  int Count(EventKind kind) const {
    int c = 0;
    for (const auto& e : events) c += e.kind == kind;
    return c;
  }

  Policy policy;
  Payment pay;
  Time now;
  std::vector<PaymentEvent> events;
  int calls = 0;

 private:
  Client& client_;
  int n_ = 0;
};

PurchaseRequested Purchase() {
  PurchaseRequested p;
  p.amount = 1500;
  p.vat_amount = 300;
  p.currency = "NOK";
  p.description = "Sykkel";
  p.msisdn = "+47 987 65 432";
  p.language = "nb-NO";
  return p;
}

class DomainLoopTest : public ::testing::Test {
 protected:
  testing::TestSim sim;
  std::unique_ptr<Client> client;

  void SetUp() override {
    ClientOptions o;
    o.base_url = sim.base();
    o.allow_plain_http = true;
    o.token = "payex-sim-token";
    o.payee_id = "5cabf558-5283-482f-b252-4d58e06f6f3b";
    o.request_timeout = 2s;
    client = std::make_unique<Client>(o);
  }
};

TEST_F(DomainLoopTest, PurchaseShipRefundCancel) {
  Loop loop(*client, "order-happy");
  loop.Event(Purchase());
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kAuthorized); }));
  loop.Event(OrderShipped{"ship-1", 1000, 200, "first parcel"});
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kCaptured); }));
  loop.Event(RefundRequested{"refund-1", 400, 80, "returned"});
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kReversed); }));
  loop.Event(OrderCancelled{"rest not delivered"});
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kCancelled); }));
  EXPECT_EQ(loop.pay.balance.authorized, 1500);
  EXPECT_EQ(loop.pay.balance.captured, 1000);
  EXPECT_EQ(loop.pay.balance.reversed, 400);
  EXPECT_EQ(loop.pay.balance.cancelled, 500);
  auto ledger = sim.Ledger();
  EXPECT_TRUE(ledger.at("ok").as_bool());
  EXPECT_EQ(ledger.at("totals").at("captured").as_int64(), 1000);
  EXPECT_EQ(ledger.at("totals").at("reversed").as_int64(), 400);
  EXPECT_EQ(ledger.at("totals").at("cancelled").as_int64(), 500);
}

TEST_F(DomainLoopTest, InDoubtOutcomesResolveWithoutDoubleEffects) {
  // Every effectful call loses its answer once after taking effect.
  sim.Faults(R"(["create:drop_after,count=1", "authorize:drop_after,count=1",
                 "capture:drop_after,count=1", "reverse:error_after,count=1",
                 "get:error,status=503,count=2"])");
  Loop loop(*client, "order-doubt");
  loop.Event(Purchase());
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kAuthorized); }));
  loop.Event(OrderShipped{"ship-1", 1500, 300, "all of it"});
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kCaptured); }));
  loop.Event(RefundRequested{"refund-1", 500, 100, "returned"});
  ASSERT_TRUE(loop.RunUntil([&] { return loop.Has(EventKind::kReversed); }));
  EXPECT_EQ(loop.Count(EventKind::kCaptured), 1);
  EXPECT_EQ(loop.Count(EventKind::kReversed), 1);
  EXPECT_EQ(loop.pay.balance.captured, 1500);
  EXPECT_EQ(loop.pay.balance.reversed, 500);
  auto ledger = sim.Ledger();
  EXPECT_TRUE(ledger.at("ok").as_bool()) << boost::json::serialize(ledger);
  EXPECT_EQ(ledger.at("totals").at("captured").as_int64(), 1500);
  EXPECT_EQ(ledger.at("totals").at("reversed").as_int64(), 500);
  EXPECT_EQ(ledger.at("payments").as_int64(), 2);  // the lost create stays unauthorized
  EXPECT_EQ(ledger.at("totals").at("authorized").as_int64(), 1500);
}

TEST_F(DomainLoopTest, DeclinedAndVippsErrorEndTheAuthorization) {
  Loop declined(*client, "order-declined");
  PurchaseRequested p = Purchase();
  p.msisdn = "+4799999989";
  declined.Event(p);
  ASSERT_TRUE(declined.RunUntil([&] { return declined.Has(EventKind::kAuthorizationFailed); }));
  EXPECT_EQ(declined.events.back().failure.code, code::kDeclined);
  Loop refused(*client, "order-refused");
  p.msisdn = "+4799999997";
  refused.Event(p);
  ASSERT_TRUE(refused.RunUntil([&] { return refused.Has(EventKind::kAuthorizationFailed); }));
  EXPECT_EQ(refused.events.back().failure.code, code::kPayexProblem);
  EXPECT_NE(refused.events.back().failure.payex_problem_type.find("vipps_error"),
            std::string::npos);
}

}  // namespace
}  // namespace payorch::payex
