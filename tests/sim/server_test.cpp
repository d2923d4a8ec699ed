// payex-sim over real sockets: bounded requests, faults at the connection level,
// callbacks with the retry schedule on a fast clock, the TOML file, and the
// executable itself (--help, start on port 0, SIGTERM).
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include "sim/config.hpp"
#include "sim_harness.hpp"
#include "test_http.hpp"

namespace payorch::testing {
namespace {
namespace json = boost::json;

constexpr const char* kPayee = "5cabf558-5283-482f-b252-4d58e06f6f3b";

std::string CreateBody(const std::string& ref, const std::string& callback = "") {
  json::object urls{{"completeUrl", "https://example.com/done"}};
  if (!callback.empty()) urls["callbackUrl"] = callback;
  return json::serialize(json::object{
      {"payment",
       json::object{{"operation", "Purchase"},
                    {"intent", "Authorization"},
                    {"currency", "NOK"},
                    {"prices", json::array{json::object{
                                   {"type", "Vipps"}, {"amount", 1500}, {"vatAmount", 0}}}},
                    {"description", "Test"},
                    {"userAgent", "Mozilla/5.0"},
                    {"language", "nb-NO"},
                    {"urls", urls},
                    {"payeeInfo", json::object{{"payeeId", kPayee}, {"payeeReference", ref}}}}}});
}

Headers Auth() {
  return {{"Authorization", "Bearer payex-sim-token"}, {"Content-Type", "application/json"}};
}

std::string CreatePayment(TestSim& sim, const std::string& ref, const std::string& callback = "") {
  HttpReply r = Fetch(sim.port(), "POST", "/psp/vipps/payments", CreateBody(ref, callback), Auth());
  EXPECT_EQ(r.status, 200) << r.body;
  return std::string(json::parse(r.body).at("payment").at("id").as_string());
}

HttpReply AuthorizePayment(TestSim& sim, const std::string& id,
                           const std::string& msisdn = "+4798765432") {
  return Fetch(sim.port(), "POST", id + "/authorizations",
               "{\"transaction\":{\"msisdn\":\"" + msisdn + "\"}}", Auth());
}

TEST(SimServerTest, OversizedBodyGets413Problem) {
  sim::SimConfig c = FastSimConfig();
  c.max_body_bytes = 1024;
  TestSim sim(c);
  HttpReply r = Fetch(sim.port(), "POST", "/psp/vipps/payments", std::string(4096, 'x'), Auth());
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_EQ(json::parse(r.body).at("type").as_string(),
            "https://api.payex.com/psp/errordetail/inputerror");
  EXPECT_EQ(Fetch(sim.port(), "GET", "/admin").status, 200);  // still serving
}

TEST(SimServerTest, MalformedRequestGets400AndClose) {
  TestSim sim;
  RawReply r = RawExchange(sim.port(), "GARBAGE\r\n\r\n", 5s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.data.rfind("HTTP/1.1 400", 0), 0u) << r.data;
  EXPECT_NE(r.data.find("application/problem+json"), std::string::npos);
  r = RawExchange(sim.port(), "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n", 5s);
  EXPECT_EQ(r.data.rfind("HTTP/1.1 400", 0), 0u) << r.data;
}

TEST(SimServerTest, OversizedHeaderGets431) {
  TestSim sim;
  RawReply r = RawExchange(
      sim.port(),
      "GET /admin HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 5s);
  EXPECT_EQ(r.data.rfind("HTTP/1.1 431", 0), 0u) << r.data.substr(0, 100);
}

TEST(SimServerTest, SilentAndSlowClientsAreDisconnected) {
  sim::SimConfig c = FastSimConfig();
  c.idle_timeout_ms = 100;
  c.read_timeout_ms = 100;
  TestSim sim(c);
  RawReply silent = RawExchange(sim.port(), "", 10s);
  EXPECT_FALSE(silent.timed_out);
  EXPECT_TRUE(silent.data.empty());
  RawReply slow = RawExchange(
      sim.port(),
      "POST /psp/vipps/payments HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pay", 10s);
  EXPECT_FALSE(slow.timed_out);
  EXPECT_TRUE(slow.data.empty());
}

TEST(SimServerTest, KeepAliveServesPipelinedRequests) {
  TestSim sim;
  RawReply r = RawExchange(sim.port(),
                           "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
                           "GET /admin/ledger HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           5s);
  EXPECT_TRUE(r.closed);
  size_t first = r.data.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(r.data.find("HTTP/1.1 200", first + 1), std::string::npos);
}

TEST(SimServerTest, ConnectionFaults) {
  TestSim sim;
  sim.Faults(R"(["create:drop_before,count=1"])");
  std::string req =
      "POST /psp/vipps/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer payex-sim-token\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(CreateBody("P1").size()) + "\r\n\r\n" + CreateBody("P1");
  RawReply dropped = RawExchange(sim.port(), req, 5s);
  EXPECT_TRUE(dropped.data.empty());
  EXPECT_TRUE(dropped.reset || dropped.closed);
  EXPECT_TRUE(sim.Get("/admin/payments").at("payments").as_array().empty());
  sim.Faults(R"(["create:truncated,count=1"])");
  RawReply truncated = RawExchange(sim.port(), req, 5s);
  EXPECT_TRUE(truncated.closed);
  size_t head_end = truncated.data.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  size_t cl = truncated.data.find("Content-Length: ");
  size_t declared = std::stoul(truncated.data.substr(cl + 16));
  EXPECT_LT(truncated.data.size() - head_end - 4, declared);
  EXPECT_EQ(sim.Get("/admin/payments").at("payments").as_array().size(), 1u);  // applied
  sim.Faults(R"(["any:drop_after,count=1"])");
  EXPECT_EQ(Fetch(sim.port(), "GET", "/admin/payments").status, 200);  // admin is never faulted
}

TEST(SimServerTest, LatencyFaultDelaysTheAnswer) {
  sim::SimConfig c = FastSimConfig();
  c.time_scale = 1.0;
  TestSim sim(c);
  std::string id = CreatePayment(sim, "P1");
  sim.Faults(R"(["get:latency,latency=300ms,count=1"])");
  EXPECT_EQ(Fetch(sim.port(), "GET", id, "", Auth()).status, 200);
  auto reqs = sim.Get("/admin/requests").at("requests").as_array();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_GE(reqs[1].at("atMs").as_int64() - reqs[0].at("atMs").as_int64(), 300);
}

TEST(SimServerTest, CallbacksRetryOnTheScaledSchedule) {
  CallbackReceiver receiver;
  receiver.SetStatuses({500, 503}, 200);
  TestSim sim;
  std::string id = CreatePayment(sim, "P1", receiver.Url("/cb/order-1"));
  ASSERT_EQ(AuthorizePayment(sim, id).status, 200);
  ASSERT_TRUE(receiver.WaitFor(3));
  ASSERT_TRUE(WaitUntil([&] {
    return sim.Get("/admin/callbacks").at("callbacks").as_array()[0].at("delivered").as_bool();
  }));
  auto cb = sim.Get("/admin/callbacks").at("callbacks").as_array()[0];
  const auto& attempts = cb.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].at("status").as_int64(), 500);
  EXPECT_EQ(attempts[1].at("status").as_int64(), 503);
  EXPECT_EQ(attempts[2].at("status").as_int64(), 200);
  int64_t t0 = attempts[0].at("atMs").as_int64();
  EXPECT_GE(attempts[1].at("atMs").as_int64() - t0, 30'000);  // simulated seconds
  EXPECT_GE(attempts[2].at("atMs").as_int64() - t0, 60'000);
  auto req = receiver.Requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/cb/order-1");
  EXPECT_EQ(req.content_type, "application/json");
  auto body = json::parse(req.body);
  EXPECT_EQ(body.at("payment").at("id").as_string(), id);
  EXPECT_TRUE(body.at("payment").at("number").is_int64());
  EXPECT_EQ(receiver.Count(), 3u);
}

TEST(SimServerTest, CallbacksToADeadEndpointGiveUpAfterMaxAttempts) {
  uint16_t dead;
  {
    CallbackReceiver r;
    dead = r.port();
  }
  sim::SimConfig c = FastSimConfig();
  c.callback_max_attempts = 3;
  TestSim sim(c);
  std::string id = CreatePayment(sim, "P1", "http://127.0.0.1:" + std::to_string(dead) + "/cb");
  ASSERT_EQ(AuthorizePayment(sim, id, "+4799999986").status, 200);
  ASSERT_TRUE(WaitUntil([&] {
    auto cbs = sim.Get("/admin/callbacks").at("callbacks").as_array();
    return !cbs.empty() && cbs[0].at("gaveUp").as_bool();
  }));
  auto cb = sim.Get("/admin/callbacks").at("callbacks").as_array()[0];
  EXPECT_EQ(cb.at("attempts").as_array().size(), 3u);
  EXPECT_FALSE(cb.at("attempts").as_array()[0].at("error").as_string().empty());
}

TEST(SimServerTest, UnusableCallbackUrlsFailTheirAttempts) {
  sim::SimConfig c = FastSimConfig();
  c.callback_max_attempts = 2;
  TestSim sim(c);
  for (const char* url : {"http://127.0.0.1:99999/cb", "https://127.0.0.1:1/cb"}) {
    std::string id = CreatePayment(sim, std::string("P") + (url[4] == 's' ? "S" : "H"), url);
    ASSERT_EQ(AuthorizePayment(sim, id, "+4799999986").status, 200);
  }
  ASSERT_TRUE(WaitUntil([&] {
    auto cbs = sim.Get("/admin/callbacks").at("callbacks").as_array();
    return cbs.size() == 2 && cbs[0].at("gaveUp").as_bool() && cbs[1].at("gaveUp").as_bool();
  }));
  EXPECT_EQ(Fetch(sim.port(), "GET", "/admin").status, 200);
}

TEST(SimServerTest, DuplicatedCallbacksArriveTwice) {
  CallbackReceiver receiver;
  sim::SimConfig c = FastSimConfig();
  c.callback_duplicate_rate = 1;
  TestSim sim(c);
  std::string id = CreatePayment(sim, "P1", receiver.Url());
  ASSERT_EQ(AuthorizePayment(sim, id, "+4799999986").status, 200);
  ASSERT_TRUE(receiver.WaitFor(2));
  auto reqs = receiver.Requests();
  EXPECT_EQ(reqs[0].body, reqs[1].body);
}

TEST(SimServerTest, PayerDecidesOnTheScaledClock) {
  TestSim sim;
  std::string id = CreatePayment(sim, "P1");
  ASSERT_EQ(AuthorizePayment(sim, id).status, 200);
  ASSERT_TRUE(WaitUntil([&] {
    HttpReply r = Fetch(sim.port(), "GET", id, "", Auth());
    return json::parse(r.body).at("payment").at("amount").as_int64() == 1500;
  }));
  EXPECT_TRUE(sim.Ledger().at("ok").as_bool());
}

TEST(SimServerTest, TomlFileConfiguresEverySection) {
  std::string path = WriteTempFile(R"(
[server]
time_scale = 0.5
max_body_bytes = 2048
[payer]
approve_delay = "250ms"
max_authorization_attempts = 5
[callbacks]
schedule = [1, 2, 3]
lost_rate = 0.25
[behaviour]
duplicate_payee_reference = "replay"
awaiting_payment_state = "Pending"
list_items = "flat"
[[faults]]
endpoint = "capture"
kind = "drop_after"
rate = 0.1
[[faults]]
endpoint = "get"
kind = "latency"
latency = "20ms"
)",
                                   ".toml");
  sim::SimConfig c;
  sim::LoadToml(c, path);
  EXPECT_DOUBLE_EQ(c.time_scale, 0.5);
  EXPECT_EQ(c.max_body_bytes, 2048);
  EXPECT_EQ(c.approve_delay_ms, 250);
  EXPECT_EQ(c.max_authorization_attempts, 5);
  EXPECT_EQ(c.callback_schedule_s, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_DOUBLE_EQ(c.callback_lost_rate, 0.25);
  EXPECT_EQ(c.duplicate_payee_reference, sim::DuplicateMode::kReplay);
  EXPECT_TRUE(c.awaiting_state_pending);
  EXPECT_EQ(c.list_items, sim::ListShape::kFlat);
  ASSERT_EQ(c.faults.size(), 2u);
  EXPECT_EQ(c.faults[0].kind, sim::FaultKind::kDropAfter);
  EXPECT_EQ(c.faults[1].latency_ms, 20);
  std::remove(path.c_str());
  std::string bad = WriteTempFile("[payer]\napprove_dely = \"1s\"\n", ".toml");
  try {
    sim::SimConfig d;
    sim::LoadToml(d, bad);
    ADD_FAILURE() << "unknown key accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("payer.approve_dely"), std::string::npos) << e.what();
  }
  std::remove(bad.c_str());
  std::string syntax = WriteTempFile("[payer\n", ".toml");
  sim::SimConfig d;
  EXPECT_THROW(sim::LoadToml(d, syntax), std::invalid_argument);
  std::remove(syntax.c_str());
}

TEST(SimServerTest, ShippedConfigFileLoads) {
  sim::SimConfig c;
  EXPECT_NO_THROW(sim::LoadToml(c, PAYORCH_SOURCE_DIR "/config/payex-sim.toml"));
}

// ---- the executable ---------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  int out = -1;
};

Child Spawn(const std::vector<std::string>& args) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  c.out = fds[0];
  return c;
}

std::string ReadAll(int fd, std::chrono::milliseconds bound, const std::string& until = "") {
  std::string out;
  auto end = std::chrono::steady_clock::now() + bound;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (!until.empty() && out.find(until) != std::string::npos) break;
  }
  return out;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SimExecutableTest, HelpExplainsEveryKnob) {
  Child c = Spawn({PAYEX_SIM_PATH, "--help"});
  std::string text = ReadAll(c.out, 10s);
  close(c.out);
  EXPECT_EQ(Wait(c.pid), 0);
  for (const sim::Knob& k : sim::Knobs()) EXPECT_NE(text.find(k.name), std::string::npos) << k.name;
  EXPECT_NE(text.find("ADMIN API"), std::string::npos);
  EXPECT_NE(text.find("+4799999989"), std::string::npos);
}

TEST(SimExecutableTest, StartsOnPortZeroAndStopsOnSigterm) {
  Child c = Spawn({PAYEX_SIM_PATH, "--port", "0", "--quiet", "--time-scale", "0.001"});
  std::string line = ReadAll(c.out, 20s, "\n");
  ASSERT_NE(line.find("payex-sim listening on http://127.0.0.1:"), std::string::npos) << line;
  uint16_t port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  EXPECT_EQ(Fetch(port, "GET", "/admin").status, 200);
  HttpReply r = Fetch(port, "POST", "/psp/vipps/payments", CreateBody("P1"), Auth());
  EXPECT_EQ(r.status, 200) << r.body;
  kill(c.pid, SIGTERM);
  EXPECT_EQ(Wait(c.pid), 0);
  close(c.out);
}

TEST(SimExecutableTest, BadArgumentsExitWithAMessage) {
  Child c = Spawn({PAYEX_SIM_PATH, "--set", "behaviour.list_items=round"});
  close(c.out);
  EXPECT_EQ(Wait(c.pid), 2);
}

}  // namespace
}  // namespace payorch::testing
