// Issue 11 end to end: what an adversary can send payorchd from the bus and the
// network, against payorchd, payex-sim and the real broker. Every hostile event is
// answered (rejected, with a code) or dead-lettered (with a reason and a detail
// that is masked and bounded); the log stays bounded; 4,000 idle connections on
// the public port lock neither callbacks nor intake out; and an ordinary order is
// still served from purchase to capture.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <fstream>

#include "codec/codec.hpp"
#include "domain/safe_text.hpp"
#include "e2e/e2e_util.hpp"

namespace payorch::e2e {
namespace {

using K = EventKind;

// Holds `n` TCP connections to 127.0.0.1:port open, sending nothing.
class IdleConnections {
 public:
  IdleConnections(uint16_t port, int n) {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < static_cast<rlim_t>(n) + 256) {
      lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(n) + 256);
      setrlimit(RLIMIT_NOFILE, &lim);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) {
        error_ = "socket() failed after " + std::to_string(i) + " connections (open-file limit " +
                 std::to_string(lim.rlim_cur) + ")";
        return;
      }
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        error_ = "connect() failed after " + std::to_string(i) + " connections";
        return;
      }
      fds_.push_back(fd);
    }
  }
  ~IdleConnections() {
    for (int fd : fds_) ::close(fd);
  }
  const std::string& error() const { return error_; }
  size_t size() const { return fds_.size(); }

 private:
  std::vector<int> fds_;
  std::string error_;
};

domain::OrderEvent PurchaseWith(const std::string& order,
                                const std::function<void(domain::PurchaseRequested&)>& change) {
  domain::OrderEvent e = Purchase(order, 1000);
  change(std::get<domain::PurchaseRequested>(e.kind));
  return e;
}

TEST(E2eHostile, EveryHostileEventIsAnsweredOrDeadLetteredAndOrdersStillFlow) {
  World w;
  // Dead-lettered: ids no header or log line can carry, bodies no parser takes.
  domain::OrderEvent huge_order = Purchase(std::string(100 * 1024, 'o'), 1000);
  huge_order.event_id = "h-huge-order:purchase";
  w.bus().PublishRaw("order.purchase_requested", codec::EncodeOrderEvent(huge_order),
                     "application/x-protobuf", "m-huge-order");
  domain::OrderEvent huge_event = Purchase("h-huge-event", 1000);
  huge_event.event_id = std::string(100 * 1024, 'e');
  w.bus().PublishRaw("order.purchase_requested", codec::EncodeOrderEventJson(huge_event),
                     "application/json", "m-huge-event");
  w.bus().PublishRaw("order.purchase_requested", std::string(100'000, '[') + std::string(100'000, ']'),
                     "application/json", "m-deep");
  w.bus().PublishRaw("order.purchase_requested",
                     "{\"eventId\":\"h-json\",\"orderId\":\"h-json\",\"call +4791234567\":1}",
                     "application/json", "m-msisdn");

  // Rejected with a code: fields PayEx must never see.
  w.Publish(PurchaseWith("h-escape", [](auto& p) { p.description = "Books \x1b[2J\x1b[31mred"; }));
  w.Publish(PurchaseWith("h-agent", [](auto& p) { p.user_agent = std::string(1 << 20, 'a'); }));
  w.Publish(PurchaseWith("h-description", [](auto& p) { p.description = std::string(1 << 20, 'd'); }));
  w.Publish(PurchaseWith("h-metadata", [](auto& p) { p.metadata["k"] = std::string(1 << 20, 'm'); }));
  w.Publish(PurchaseWith("h-max", [](auto& p) {
    p.amount = INT64_MAX;
    p.vat_amount = 0;
  }));
  for (const char* order : {"h-escape", "h-agent", "h-description", "h-metadata", "h-max"})
    ASSERT_TRUE(w.Expect(order, {K::kRejected}));
  EXPECT_EQ(w.Distinct("h-escape")[0].event.failure.code, "invalid_description");
  EXPECT_EQ(w.Distinct("h-agent")[0].event.failure.code, "invalid_user_agent");
  EXPECT_EQ(w.Distinct("h-description")[0].event.failure.code, "invalid_description");
  EXPECT_EQ(w.Distinct("h-metadata")[0].event.failure.code, "invalid_metadata");
  EXPECT_EQ(w.Distinct("h-max")[0].event.failure.code, "invalid_amount");

  bus::Admin admin(w.bus_config(), "e2e hostile dlq");
  const std::string& dlq = w.bus_config().topology.dead_letter_queue;
  ASSERT_TRUE(kit::WaitFor([&] { return admin.QueueDepth(dlq).value_or(0) >= 4; }, 30s));
  std::map<std::string, std::string> reasons;  // message id -> reason
  for (int i = 0; i < 4; ++i) {
    auto m = admin.Take(dlq);
    ASSERT_TRUE(m);
    const std::string reason = bus::HeaderString(m->properties.headers, "x-payorch-error").value_or("");
    const std::string detail = bus::HeaderString(m->properties.headers, "x-payorch-detail").value_or("");
    EXPECT_TRUE(domain::IsSafeDetail(detail)) << detail.substr(0, 500);
    EXPECT_EQ(detail.find("91234567"), std::string::npos) << detail;
    reasons[m->properties.message_id.value_or("")] = reason;
    if (m->properties.message_id == "m-msisdn") {  // protobuf's message quotes the field
      EXPECT_NE(detail.find("+47****4567"), std::string::npos) << detail;
    }
  }
  EXPECT_EQ(reasons["m-huge-order"], "invalid_order_id");
  EXPECT_EQ(reasons["m-huge-event"], "invalid_event_id");
  EXPECT_EQ(reasons["m-deep"], "malformed_body");
  EXPECT_EQ(reasons["m-msisdn"], "malformed_body");

  // The flood: 4,000 idle connections on the public port (http.max_connections is
  // 1024), held while an ordinary order runs its course through PayEx callbacks.
  const double callbacks_before =
      w.daemon().Metric("payorch_callbacks_total{status=\"200\"}").value_or(0);
  IdleConnections flood(w.daemon().http_port(), 4000);
  ASSERT_TRUE(flood.error().empty()) << flood.error();
  w.Publish(Purchase("h-ok", 1000));
  ASSERT_TRUE(w.Expect("h-ok", {K::kAuthorized}));
  // Sums near INT64_MAX, during the flood: rejected, the payment untouched.
  w.Publish(Shipped("h-ok", "s-max", INT64_MAX));
  w.Publish(Refund("h-ok", "r-max", LLONG_MAX - 1));
  w.Publish(Shipped("h-ok", "s1", 1000));
  ASSERT_TRUE(w.WaitCount("h-ok", 4));
  std::map<std::string, std::string> by_cause;
  for (const auto& r : w.Distinct("h-ok"))
    by_cause[r.event.caused_by_event_id] =
        std::string(domain::EventKindName(r.event.kind)) + "/" + r.event.failure.code;
  EXPECT_EQ(by_cause["h-ok:ship-s-max"], "rejected/invalid_amount");
  EXPECT_EQ(by_cause["h-ok:refund-r-max"], "rejected/invalid_amount");
  EXPECT_EQ(by_cause["h-ok:ship-s1"], "captured/");
  ASSERT_TRUE(kit::WaitFor([&] {
    return w.daemon().Metric("payorch_callbacks_total{status=\"200\"}").value_or(0) >
           callbacks_before;
  }, 30s)) << "no PayEx callback got through the flood";
  EXPECT_GT(w.daemon().Metric("payorch_http_connections_evicted_total{server=\"public\"}")
                .value_or(0),
            2900);
  EXPECT_LE(w.daemon().Metric("payorch_http_open_connections{server=\"public\"}").value_or(1e9),
            1024);
  EXPECT_EQ(w.daemon().Get("/readyz").status, 200);
  EXPECT_TRUE(w.SequencesSound());
  EXPECT_TRUE(w.LedgerOk());

  // The log stayed small: no line carries a 100 KB id or a 1 MB field.
  std::ifstream log(w.daemon().log_path());
  std::string line;
  size_t total = 0, longest = 0;
  while (std::getline(log, line)) {
    total += line.size() + 1;
    longest = std::max(longest, line.size());
  }
  EXPECT_LT(longest, 9000u);
  EXPECT_LT(total, 2u << 20) << "payorchd.log grew to " << total << " bytes";
}

}  // namespace
}  // namespace payorch::e2e
