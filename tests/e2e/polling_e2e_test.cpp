// Without a public callback endpoint (issue 14): http.callback_base_url empty. PayEx
// gets no callbackUrl, polling alone drives each payment to its end, and the test
// prints what that costs in PayEx reads per payment beside a run with callbacks.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

#include "e2e/e2e_util.hpp"

namespace payorch::e2e {
namespace {

using kit::Purchase;
using kit::Shipped;
using K = domain::EventKind;
namespace json = boost::json;

struct Cost {
  double reads_per_payment = 0;
  double median_authorized_ms = 0;  // purchase published to authorized received
  size_t callbacks_urls = 0;        // payments that carried a callbackUrl
};

// Runs `orders` purchases and their shipments to captured; PayEx reads per payment.
Cost RunOrders(World& w, const std::string& tag, int orders) {
  std::vector<std::chrono::steady_clock::time_point> sent;
  for (int i = 0; i < orders; ++i) {
    sent.push_back(std::chrono::steady_clock::now());
    w.Publish(Purchase(tag + std::to_string(i), 1000 + i));
  }
  std::vector<double> latencies;
  for (int i = 0; i < orders; ++i) {
    EXPECT_TRUE(w.Expect(tag + std::to_string(i), {K::kAuthorized}));
    const auto got = w.Distinct(tag + std::to_string(i));
    if (!got.empty())
      latencies.push_back(std::chrono::duration<double, std::milli>(got[0].at - sent[i]).count());
    w.Publish(Shipped(tag + std::to_string(i), "s1", 1000 + i));
  }
  for (int i = 0; i < orders; ++i)
    EXPECT_TRUE(w.Expect(tag + std::to_string(i), {K::kAuthorized, K::kCaptured}));
  Cost cost;
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) cost.median_authorized_ms = latencies[latencies.size() / 2];
  const json::value requests = json::parse(w.sim().Admin("GET", "/admin/requests").body);
  size_t reads = 0;
  for (const auto& r : requests.at("requests").as_array())
    if (r.at("method") == "GET") ++reads;
  cost.reads_per_payment = static_cast<double>(reads) / orders;
  const json::value payments = json::parse(w.sim().Admin("GET", "/admin/payments").body);
  const json::array& list =
      payments.is_array() ? payments.as_array() : payments.at("payments").as_array();
  for (const auto& p : list)
    if (!p.at("callbackUrl").as_string().empty()) ++cost.callbacks_urls;
  return cost;
}

TEST(E2ePolling, WithoutACallbackUrlPollingAloneDrivesEveryPayment) {
  constexpr int kOrders = 10;
  // The simulator in real time: its payer confirms 2 s after the authorization, and
  // its callback comes then; payorchd polls at 200 ms, then doubling up to 500 ms.
  const std::vector<std::string> real_time = {"--time-scale", "1"};
  Cost polling, called;
  {
    World w(real_time, {"http.callback_base_url="});
    polling = RunOrders(w, "o-poll-", kOrders);
    EXPECT_EQ(polling.callbacks_urls, 0u);  // PayEx was given no callbackUrl
    // And none came: payorchd serves no callback path.
    EXPECT_EQ(w.daemon().Metric("payorch_callbacks_total{status=\"200\"}"), std::nullopt);
    EXPECT_TRUE(w.SequencesSound());
    EXPECT_TRUE(w.LedgerOk());
  }
  {
    World w(real_time);
    called = RunOrders(w, "o-call-", kOrders);
    EXPECT_EQ(called.callbacks_urls, static_cast<size_t>(kOrders));
    EXPECT_TRUE(w.LedgerOk());
  }
  std::printf(
      "purchase to captured, payer after 2 s, polls 200 ms doubling to 500 ms:\n"
      "  polling alone:  %.1f PayEx reads per payment, authorized after %.0f ms "
      "(median)\n"
      "  with callbacks: %.1f PayEx reads per payment, authorized after %.0f ms "
      "(median)\n",
      polling.reads_per_payment, polling.median_authorized_ms, called.reads_per_payment,
      called.median_authorized_ms);
}

}  // namespace
}  // namespace payorch::e2e
