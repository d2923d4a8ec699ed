// payorchctl payment show/list against a store populated the way payorchd does
// (domain::Decide, Store::CommitOne), and payment resolve/republish against a fake
// admin endpoint on 127.0.0.1:0 and against nothing at all (payorchd not running).
#include <gmock/gmock.h>
#include <netinet/in.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>

#include "ctl/admin_client.hpp"
#include "domain/partition.hpp"
#include "ctl_test_util.hpp"

namespace payorch::ctl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace json = boost::json;


class PaymentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = fixture_.OpenStore();
    // A: purchase with MSISDN (creating, create call in flight), then a shipment
    // that waits for the authorization.
    DecideAndCommit(store, Purchase("order-a", "evt-a1", 1500), kNow);
    DecideAndCommit(store, Shipped("order-a", "evt-a2", 500), kNow + 1s);
    // B: purchase without MSISDN; later, and put in doubt by hand.
    DecideAndCommit(store, Purchase("order-b", "evt-b1", 700, ""), kNow + 2h);
    auto b = *store.LoadPayment("order-b");
    store::Commit c;
    c.phase_before = b.phase;
    c.after = b;
    c.after.doubt_since = kNow + 2h;
    c.after.updated_at = kNow + 2h;
    c.input_name = "payex_result";
    c.note = "create in doubt";
    c.at = kNow + 2h;
    ASSERT_TRUE(store.CommitOne(c));
    // C: an event for an unknown order (rejected; the payment stays new).
    DecideAndCommit(store, Shipped("order-c", "evt-c1", 100), kNow + 3h);
  }

  CtlFixture fixture_;
};

TEST_F(PaymentTest, ShowHasStateAmountsOperationsTimelineAndOutbox) {
  Result r = fixture_.Ctl({"payment", "show", "order-a"}, {.now = kNow + 10s});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("phase:          creating"));
  EXPECT_THAT(r.out, HasSubstr("msisdn:         +47****5432"));
  EXPECT_THAT(r.out, Not(HasSubstr("98765432")));
  EXPECT_THAT(r.out, HasSubstr("authorized 0, captured 0"));
  EXPECT_THAT(r.out, HasSubstr("operations:"));
  EXPECT_THAT(r.out, HasSubstr("create"));
  EXPECT_THAT(r.out, HasSubstr("capture"));
  EXPECT_THAT(r.out, HasSubstr("PayEx calls:"));
  EXPECT_THAT(r.out, HasSubstr("in_flight"));
  EXPECT_THAT(r.out, HasSubstr("timeline:"));
  EXPECT_THAT(r.out, HasSubstr("- -> creating"));
  EXPECT_THAT(r.out, HasSubstr("next action:"));

  Result j = fixture_.Ctl({"payment", "show", "order-a", "-o", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  json::value v = Json(j);
  EXPECT_EQ(v.at("phase").as_string(), "creating");
  EXPECT_EQ(v.at("msisdn").as_string(), "+47****5432");
  EXPECT_EQ(v.at("purchase").at("amount").as_int64(), 1500);
  EXPECT_EQ(v.at("ops").as_array().size(), 2u);
  EXPECT_EQ(v.at("ops").as_array()[1].at("kind").as_string(), "capture");
  EXPECT_EQ(v.at("ops").as_array()[1].at("status").as_string(), "waiting");
  EXPECT_EQ(v.at("operations").as_array().size(), 1u);
  EXPECT_EQ(v.at("operations").as_array()[0].at("status").as_string(), "in_flight");
  EXPECT_EQ(v.at("history").as_array().size(), 2u);
  EXPECT_FALSE(v.at("due_at").is_null());
  EXPECT_THAT(j.out, Not(HasSubstr("98765432")));

  // An order whose event was refused: its rejected event waits in the outbox.
  Result c = fixture_.Ctl({"payment", "show", "order-c", "-o", "json"});
  ASSERT_EQ(c.code, 0) << c.err;
  json::value cv = Json(c);
  ASSERT_EQ(cv.at("outbox").as_array().size(), 1u);
  EXPECT_EQ(cv.at("outbox").as_array()[0].at("kind").as_string(), "rejected");
  EXPECT_EQ(cv.at("outbox").as_array()[0].at("failure_code").as_string(), "unknown_order");
  EXPECT_FALSE(cv.at("outbox").as_array()[0].at("published").as_bool());

  Result missing = fixture_.Process({"payment", "show", "order-none"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no payment for order order-none"));
}

TEST_F(PaymentTest, ListFiltersByStateAgeAndDoubt) {
  auto orders = [&](std::vector<std::string> args, domain::Time now = kNow + 4h) {
    args.insert(args.begin(), {"payment", "list", "-o", "json"});
    Result r = fixture_.Ctl(args, {.now = now});
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::string> out;
    const json::value v = Json(r);
    for (const auto& p : v.at("payments").as_array())
      out.push_back(std::string(p.at("order_id").as_string()));
    return out;
  };
  EXPECT_EQ(orders({}), (std::vector<std::string>{"order-a", "order-b", "order-c"}));
  EXPECT_EQ(orders({"--state", "creating"}), (std::vector<std::string>{"order-a", "order-b"}));
  EXPECT_EQ(orders({"--state", "new"}), (std::vector<std::string>{"order-c"}));
  EXPECT_EQ(orders({"--older-than", "3h"}), (std::vector<std::string>{"order-a"}));
  EXPECT_EQ(orders({"--older-than", "90m"}), (std::vector<std::string>{"order-a", "order-b"}));
  EXPECT_EQ(orders({"--in-doubt"}), (std::vector<std::string>{"order-b"}));
  EXPECT_EQ(orders({"--limit", "1"}), (std::vector<std::string>{"order-a"}));

  Result table = fixture_.Process({"payment", "list", "--state", "creating"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("ORDER"));
  EXPECT_THAT(table.out, HasSubstr("order-b"));
  EXPECT_THAT(table.out, Not(HasSubstr("order-c")));
  EXPECT_THAT(table.out, HasSubstr("2 payments"));

  Result bad = fixture_.Process({"payment", "list", "--state", "paid"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("awaiting_payer"));
  EXPECT_EQ(fixture_.Process({"payment", "list", "--older-than", "soon"}).code, 2);
}

// Partitioned (issue 13): show finds an order in its partition's store, list merges
// every partition's payments in one order, and a partition without a store yet is
// named.
TEST(PartitionedPaymentTest, ShowFindsTheOrdersPartitionAndListMergesThemAll) {
  CtlFixture fixture;
  fixture.UsePartitions(3);
  std::map<uint32_t, std::vector<std::string>> by_partition;
  for (int i = 0; by_partition.size() < 3 || i < 6; ++i) {
    const std::string order = "order-" + std::to_string(i);
    const uint32_t p = domain::PartitionOf(order, 3);
    by_partition[p].push_back(order);
    auto store = fixture.OpenStore(p);
    DecideAndCommit(store, Purchase(order, "evt-" + std::to_string(i), 1000 + i),
                    kNow + std::chrono::minutes(i));
  }
  const int orders = static_cast<int>(by_partition[0].size() + by_partition[1].size() +
                                      by_partition[2].size());
  for (const auto& [p, list] : by_partition) {
    for (const auto& order : list) {
      Result r = fixture.Ctl({"payment", "show", order, "-o", "json"});
      ASSERT_EQ(r.code, 0) << r.err;
      const json::value v = Json(r);
      EXPECT_EQ(v.at("order_id").as_string(), order);
      EXPECT_EQ(v.at("partition").as_int64(), p);
    }
  }
  Result list = fixture.Ctl({"payment", "list", "-o", "json"}, {.now = kNow + 1h});
  ASSERT_EQ(list.code, 0) << list.err;
  std::vector<std::string> listed;
  const json::value listed_json = Json(list);
  for (const auto& p : listed_json.at("payments").as_array())
    listed.push_back(std::string(p.at("order_id").as_string()));
  std::vector<std::string> expected;
  for (int i = 0; i < orders; ++i) expected.push_back("order-" + std::to_string(i));
  EXPECT_EQ(listed, expected);  // least recently updated first, across partitions
  Result limited = fixture.Ctl({"payment", "list", "--limit", "2", "-o", "json"});
  ASSERT_EQ(limited.code, 0) << limited.err;
  const json::value limited_json = Json(limited);
  EXPECT_EQ(limited_json.at("payments").as_array().size(), 2u);
  EXPECT_TRUE(limited_json.at("truncated").as_bool());

  // A partition no payorchd has served yet has no store: said so.
  std::filesystem::remove(config::PartitionStorePath(fixture.store_path(), 2));
  Result gone = fixture.Process({"payment", "show", by_partition[2].front()});
  EXPECT_EQ(gone.code, 1);
  EXPECT_THAT(gone.err, HasSubstr("partition 2 has none yet"));
  // list shows the partitions it can read, names the one it cannot, and exits 1.
  Result partial = fixture.Ctl({"payment", "list", "-o", "json"});
  EXPECT_EQ(partial.code, 1);
  EXPECT_THAT(partial.err, HasSubstr("partition 2 not listed"));
  const json::value partial_json = Json(partial);
  EXPECT_EQ(partial_json.at("payments").as_array().size(),
            by_partition[0].size() + by_partition[1].size());
  EXPECT_EQ(partial_json.at("unread_partitions").as_array().at(0).at("partition").as_int64(), 2);
  Result table = fixture.Ctl({"payment", "list"});
  EXPECT_EQ(table.code, 1);
  EXPECT_THAT(table.out, HasSubstr("1 of 3 partitions could not be read"));
}

TEST(PaymentAdminTest, SaysPlainlyWhenPayorchdIsNotRunning) {
  DeadPort port;
  CtlFixture fixture(bus::BusConfig{}, port.port());
  const std::string expected =
      "payorchd is not running (nothing listens on 127.0.0.1:" + std::to_string(port.port()) +
      "): start it, or check admin.port";
  for (const char* verb : {"resolve", "republish"}) {
    Result r = fixture.Process({"payment", verb, "order-1"});
    EXPECT_EQ(r.code, 1) << verb;
    EXPECT_THAT(r.err, HasSubstr(expected)) << verb;
    Result in_process = fixture.Ctl({"payment", verb, "order-1"});
    EXPECT_EQ(in_process.code, 1);
    EXPECT_THAT(in_process.err, HasSubstr(expected));
  }
}

// A one-request-at-a-time HTTP server on 127.0.0.1:0 with canned answers, standing
// in for payorchd's admin endpoint.
class FakeAdmin {
 public:
  FakeAdmin() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 8);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeAdmin() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      std::string line = request.substr(0, request.find("\r\n"));
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(line);
      }
      std::string status = "404 Not Found", body = R"({"error":"unknown_order"})";
      bool chunked = false;
      if (line == "POST /admin/payments/order-1/resolve HTTP/1.1") {
        status = "202 Accepted";
        body = R"({"order_id":"order-1","accepted":true})";
      } else if (line == "POST /admin/payments/order%2F2/republish HTTP/1.1") {
        status = "200 OK";
        body = R"({"order_id":"order/2","events":3})";
        chunked = true;
      } else if (line == "POST /admin/payments/boom/resolve HTTP/1.1") {
        status = "500 Internal Server Error";
        body = "engine stopped";
      }
      std::string response = "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\n";
      if (chunked) {
        response += "Transfer-Encoding: chunked\r\n\r\n";
        response += "a\r\n" + body.substr(0, 10) + "\r\n";
        char size[16];
        std::snprintf(size, sizeof size, "%zx", body.size() - 10);
        response += std::string(size) + "\r\n" + body.substr(10) + "\r\n0\r\n\r\n";
      } else {
        response += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      [[maybe_unused]] ssize_t n = write(c, response.data(), response.size());
      close(c);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

TEST(PaymentAdminTest, ResolveAndRepublishAskTheAdminEndpoint) {
  FakeAdmin admin;
  CtlFixture fixture(bus::BusConfig{}, admin.port());

  Result resolve = fixture.Process({"payment", "resolve", "order-1"});
  EXPECT_EQ(resolve.code, 0) << resolve.err;
  EXPECT_THAT(resolve.out, HasSubstr("payorchd accepted"));
  Result resolve_json = fixture.Ctl({"payment", "resolve", "order-1", "-o", "json"});
  EXPECT_EQ(resolve_json.code, 0) << resolve_json.err;
  EXPECT_TRUE(Json(resolve_json).at("accepted").as_bool());

  Result republish = fixture.Ctl({"payment", "republish", "order/2"});
  EXPECT_EQ(republish.code, 0) << republish.err;
  EXPECT_THAT(republish.out, HasSubstr("republishes 3 events of order order/2"));

  Result unknown = fixture.Process({"payment", "resolve", "order-9"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no payment for order order-9 (unknown_order)"));
  Result failing = fixture.Ctl({"payment", "resolve", "boom"});
  EXPECT_EQ(failing.code, 1);
  EXPECT_THAT(failing.err, HasSubstr("HTTP 500"));
  EXPECT_THAT(failing.err, HasSubstr("engine stopped"));

  EXPECT_THAT(admin.requests(),
              ::testing::Contains("POST /admin/payments/order%2F2/republish HTTP/1.1"));
}

TEST(AdminClientTest, EncodesPathSegments) {
  EXPECT_EQ(PathSegment("order-1_a.b~c"), "order-1_a.b~c");
  EXPECT_EQ(PathSegment("a/b c?d"), "a%2Fb%20c%3Fd");
  EXPECT_EQ(PathSegment("æ"), "%C3%A6");
}

}  // namespace
}  // namespace payorch::ctl::testing
