// The PayEx client against payex-sim over real HTTP on 127.0.0.1:0: every
// operation, every problem class, every fault; plus TLS verification against a stub.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <mutex>
#include <set>
#include <thread>

#include "payex/asio_client.hpp"
#include "payex/client.hpp"
#include "sim_harness.hpp"
#include "test_http.hpp"

namespace payorch::payex {
namespace {
using namespace std::chrono_literals;
using domain::OpKind;
using domain::PayexCall;
using domain::PayexResult;
using domain::PaymentState;
using domain::ResultClass;
using domain::TxState;
using domain::TxType;
using testing::TestSim;

constexpr const char* kPayee = "5cabf558-5283-482f-b252-4d58e06f6f3b";
constexpr const char* kToken = "payex-sim-token";

class ClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<TestSim> sim;
  std::unique_ptr<Client> client;
  std::mutex mu;
  std::vector<std::string> lines;
  uint64_t next_call = 1;

  ClientOptions Options() {
    ClientOptions o;
    o.base_url = sim->base();
    o.allow_plain_http = true;
    o.token = kToken;
    o.payee_id = kPayee;
    o.payee_name = "Test shop";
    o.user_agent = "payorch-test/1";
    o.request_timeout = 5s;
    o.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu);
      lines.emplace_back(line);
    };
    return o;
  }

  void Start(sim::SimConfig config = testing::FastSimConfig(),
             const std::function<void(ClientOptions&)>& tweak = {}) {
    client.reset();
    sim = std::make_unique<TestSim>(std::move(config));
    ClientOptions o = Options();
    if (tweak) tweak(o);
    client = std::make_unique<Client>(std::move(o));
  }

  PayexResult Run(PayexCall call) {
    if (call.call_id == 0) call.call_id = next_call++;
    if (call.order_id.empty()) call.order_id = "order-1";
    auto f = client->Execute(std::move(call));
    EXPECT_EQ(f.wait_for(30s), std::future_status::ready);
    return f.get();
  }

  static PayexCall CreateCall(const std::string& ref, int64_t amount = 1500) {
    PayexCall c;
    c.kind = OpKind::kCreate;
    c.payee_reference = ref;
    domain::PurchaseRequested p;
    p.amount = amount;
    p.vat_amount = 0;
    p.currency = "NOK";
    p.description = "Vipps Test";
    p.language = "nb-NO";
    c.purchase = p;
    return c;
  }
  static PayexCall On(OpKind kind, const std::string& pid) {
    PayexCall c;
    c.kind = kind;
    c.payment_id = pid;
    return c;
  }
  static PayexCall Money(OpKind kind, const std::string& pid, int64_t amount,
                         const std::string& ref) {
    PayexCall c = On(kind, pid);
    c.amount = amount;
    c.description = "ship";
    c.payee_reference = ref;
    return c;
  }
  static PayexCall Authorize(const std::string& pid, const std::string& msisdn = "+4798765432") {
    PayexCall c = On(OpKind::kAuthorize, pid);
    c.msisdn = msisdn;
    return c;
  }

  std::string Create(const std::string& ref = "P1", int64_t amount = 1500) {
    auto r = Run(CreateCall(ref, amount));
    EXPECT_EQ(r.result, ResultClass::kSuccess) << (r.problem ? r.problem->detail : "");
    return r.snapshot ? r.snapshot->payment_id : "";
  }

  domain::PaymentSnapshot Read(const std::string& pid) {
    auto r = Run(On(OpKind::kRead, pid));
    EXPECT_EQ(r.result, ResultClass::kSuccess)
        << (r.problem ? r.problem->type + " " + r.problem->detail : "");
    return r.snapshot.value_or(domain::PaymentSnapshot{});
  }

  static const domain::Transaction* Latest(const domain::PaymentSnapshot& s, TxType type) {
    const domain::Transaction* t = nullptr;
    for (const auto& x : s.transactions)
      if (x.type == type) t = &x;
    return t;
  }

  bool WaitAuthorizationState(const std::string& pid, TxState state) {
    return testing::WaitUntil([&] {
      auto s = Read(pid);
      auto* a = Latest(s, TxType::kAuthorization);
      return a && a->state == state;
    });
  }

  std::string Authorized(const std::string& ref = "P1", int64_t amount = 1500) {
    std::string pid = Create(ref, amount);
    auto r = Run(Authorize(pid));
    EXPECT_EQ(r.result, ResultClass::kSuccess);
    EXPECT_TRUE(WaitAuthorizationState(pid, TxState::kCompleted));
    return pid;
  }

  int RequestsOf(const std::string& endpoint) {
    auto v = sim->Get("/admin/requests");
    const auto& counts = v.at("counts").as_object();
    return counts.contains(endpoint) ? static_cast<int>(counts.at(endpoint).to_number<int64_t>())
                                     : 0;
  }

  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mu);
    return lines;
  }
};

// ---- every operation ------------------------------------------------------------------

TEST_F(ClientTest, CreateAnswersTheSnapshotAndSendsTheMerchantFields) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) {
    o.callback_url_base = "http://127.0.0.1:9/payex/callback";
    o.callback_token = [](const std::string& order) { return "t-" + order; };
    o.host_urls = {"https://shop.example"};
  });
  auto r = Run(CreateCall("P1"));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->payment_id.rfind("/psp/vipps/payments/", 0), 0u);
  EXPECT_EQ(r.snapshot->state, PaymentState::kReady);
  EXPECT_EQ(r.snapshot->amount, 0);
  EXPECT_TRUE(r.snapshot->can_authorize);
  EXPECT_TRUE(r.snapshot->can_abort);
  EXPECT_EQ(r.call_id, 1u);
  auto p = sim->Get("/admin/payments").at("payments").as_array()[0];
  EXPECT_EQ(p.at("callbackUrl").as_string(),
            "http://127.0.0.1:9/payex/callback/order-1?token=t-order-1");
  EXPECT_EQ(p.at("payeeReference").as_string(), "P1");
}

TEST_F(ClientTest, AuthorizeThenReadUntilThePayerApproves) {
  Start();
  std::string pid = Create();
  auto r = Run(Authorize(pid));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  ASSERT_TRUE(r.transaction);
  EXPECT_EQ(r.transaction->type, TxType::kAuthorization);
  EXPECT_EQ(r.transaction->state, TxState::kAwaitingActivity);
  EXPECT_EQ(r.transaction->amount, 1500);
  EXPECT_NE(r.transaction->id.find("/transactions/"), std::string::npos);
  ASSERT_TRUE(WaitAuthorizationState(pid, TxState::kCompleted));
  auto s = Read(pid);
  EXPECT_EQ(s.state, PaymentState::kReady);
  EXPECT_EQ(s.amount, 1500);
  EXPECT_EQ(s.remaining_capture, 1500);
  EXPECT_EQ(s.remaining_cancellation, 1500);
  EXPECT_FALSE(s.can_authorize);
  EXPECT_FALSE(s.can_abort);
  EXPECT_EQ(Latest(s, TxType::kAuthorization)->id, r.transaction->id);
}

TEST_F(ClientTest, CaptureReverseCancelAndListTransactions) {
  Start();
  std::string pid = Authorized();
  auto cap = Run(Money(OpKind::kCapture, pid, 1000, "C1"));
  ASSERT_EQ(cap.result, ResultClass::kSuccess);
  ASSERT_TRUE(cap.transaction);
  EXPECT_EQ(cap.transaction->type, TxType::kCapture);
  EXPECT_EQ(cap.transaction->state, TxState::kCompleted);
  EXPECT_EQ(cap.transaction->amount, 1000);
  EXPECT_EQ(cap.transaction->payee_reference, "C1");
  auto rev = Run(Money(OpKind::kReverse, pid, 400, "R1"));
  ASSERT_EQ(rev.result, ResultClass::kSuccess);
  EXPECT_EQ(rev.transaction->type, TxType::kReversal);
  EXPECT_EQ(rev.transaction->amount, 400);
  auto can = Run(Money(OpKind::kCancel, pid, 500, "X1"));
  ASSERT_EQ(can.result, ResultClass::kSuccess);
  EXPECT_EQ(can.transaction->type, TxType::kCancellation);
  EXPECT_EQ(can.transaction->amount, 500);
  auto s = Read(pid);
  EXPECT_EQ(s.remaining_capture, 0);
  EXPECT_EQ(s.remaining_cancellation, 0);
  EXPECT_EQ(s.remaining_reversal, 600);
  ASSERT_EQ(s.transactions.size(), 4u);
  EXPECT_EQ(s.transactions[0].type, TxType::kAuthorization);
  EXPECT_EQ(s.transactions[1].type, TxType::kCapture);
  EXPECT_EQ(s.transactions[2].type, TxType::kReversal);
  EXPECT_EQ(s.transactions[3].type, TxType::kCancellation);
  auto list = client->ListTransactions(pid).get();
  ASSERT_EQ(list.result, ResultClass::kSuccess);
  EXPECT_EQ(list.transactions.size(), 4u);
  auto payment = client->GetPayment(pid, "captures").get();
  ASSERT_EQ(payment.result, ResultClass::kSuccess);
  EXPECT_NE(FindOperation(payment.payment->operations, {"create-reversal"}), nullptr);
  EXPECT_TRUE(sim->Ledger().at("ok").as_bool());
}

TEST_F(ClientTest, AbortBeforeAuthorizationAndRefusedAfter) {
  Start();
  std::string pid = Create("P1");
  PayexCall abort = On(OpKind::kAbort, pid);
  abort.abort_reason = "CancelledByConsumer";
  auto r = Run(abort);
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->state, PaymentState::kAborted);
  EXPECT_FALSE(r.snapshot->can_authorize);
  std::string authorized = Authorized("P2");
  r = Run(On(OpKind::kAbort, authorized));
  EXPECT_EQ(r.result, ResultClass::kDefiniteFailure);
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->type, problem_type::kOperationNotOffered);
}

TEST_F(ClientTest, AsioClientOnTheCallersIoContext) {
  Start();
  std::string pid = Create();
  boost::asio::io_context io;
  ClientOptions o = Options();
  AsioClient asio_client(io.get_executor(), o);
  std::optional<PayexResult> got;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        PayexCall c = On(OpKind::kRead, pid);
        c.call_id = 77;
        got = co_await asio_client.Execute(c);
      },
      [](std::exception_ptr e) { ASSERT_FALSE(e); });
  io.run_for(10s);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->call_id, 77u);
  EXPECT_EQ(got->result, ResultClass::kSuccess);
  EXPECT_EQ(got->snapshot->payment_id, pid);
}

TEST_F(ClientTest, Int64AmountsSurviveTheRoundTrip) {
  Start();
  const int64_t big = 900719925474099301;  // not representable as a double
  std::string pid = Create("P1", big);
  ASSERT_EQ(Run(Authorize(pid, "+4799999986")).result, ResultClass::kSuccess);  // instant approval
  auto s = Read(pid);
  EXPECT_EQ(s.amount, big);
  auto cap = Run(Money(OpKind::kCapture, pid, big - 1, "C1"));
  ASSERT_EQ(cap.result, ResultClass::kSuccess);
  EXPECT_EQ(cap.transaction->amount, big - 1);
  EXPECT_EQ(Read(pid).remaining_capture, 1);
}

// ---- definite failures --------------------------------------------------------------------

TEST_F(ClientTest, ProblemsAreDefiniteFailuresWithTheirDetails) {
  Start();
  std::string pid = Authorized();
  auto r = Run(Money(OpKind::kCapture, pid, 1501, "C1"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->type, "https://api.payex.com/psp/errordetail/inputerror");
  EXPECT_EQ(r.problem->status, 400);
  EXPECT_FALSE(r.problem->title.empty());
  EXPECT_FALSE(r.problem->detail.empty());
  ASSERT_EQ(r.problem->problems.size(), 1u);
  EXPECT_EQ(r.problem->problems[0].first, "Transaction.Amount");
  // A reused reference.
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C2")).result, ResultClass::kSuccess);
  r = Run(Money(OpKind::kCapture, pid, 100, "C2"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->problems[0].first, "Transaction.PayeeReference");
  r = Run(CreateCall("P1"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->problems[0].first, "Payment.PayeeInfo.PayeeReference");
}

TEST_F(ClientTest, VippsErrorAndInvalidMsisdnAreDefinite) {
  Start();
  std::string pid = Create();
  auto r = Run(Authorize(pid, "+4799999997"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->type, "https://api.payex.com/psp/errordetail/vipps/vipps_error");
  EXPECT_EQ(r.problem->status, 403);
  EXPECT_EQ(r.problem->detail, "User not registered with Vipps");
  r = Run(Authorize(pid, "+46701234567"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->problems[0].first, "Transaction.Msisdn");
}

TEST_F(ClientTest, WrongTokenIsDefinite) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.token = "not-the-token"; });
  auto r = Run(CreateCall("P1"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->status, 401);
  EXPECT_EQ(r.problem->type, "https://api.payex.com/psp/errordetail/unauthorized");
  for (const auto& line : Lines()) EXPECT_EQ(line.find("not-the-token"), std::string::npos);
  EXPECT_EQ(r.problem->detail.find("not-the-token"), std::string::npos);
}

TEST_F(ClientTest, MissingOperationIsADefiniteFailureWithoutAPost) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.operations_cache_ttl = 0ms; });
  std::string pid = Create();
  auto r = Run(Money(OpKind::kCapture, pid, 100, "C1"));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->type, problem_type::kOperationNotOffered);
  EXPECT_NE(r.problem->detail.find("create-capture"), std::string::npos);
  EXPECT_NE(r.problem->detail.find("create-authorization"), std::string::npos);  // what is offered
  EXPECT_EQ(RequestsOf("capture"), 0);
}

TEST_F(ClientTest, DirectAuthorizationRelIsAcceptedAndItsAbsenceReported) {
  sim::SimConfig c = testing::FastSimConfig();
  c.authorization_rel = "direct-authorization";
  Start(c);
  std::string pid = Create();
  auto r = Run(Authorize(pid));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  sim->Set("behaviour.direct_authorization", "false");
  pid = Create("P2");
  r = Run(Authorize(pid));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->type, problem_type::kOperationNotOffered);
  EXPECT_EQ(RequestsOf("authorize"), 1);
}

TEST_F(ClientTest, MsisdnFieldSpellings) {
  sim::SimConfig c = testing::FastSimConfig();
  c.msisdn_request_field = sim::MsisdnSpelling::kMsisdn;
  c.msisdn_field = sim::MsisdnSpelling::kMobileNumber;
  Start(c, [](ClientOptions& o) { o.msisdn_field = MsisdnField::kMobileNumber; });
  std::string pid = Create();
  auto r = Run(Authorize(pid));
  EXPECT_EQ(r.result, ResultClass::kDefiniteFailure);
  Start(c, [](ClientOptions& o) { o.msisdn_field = MsisdnField::kBoth; });
  pid = Create();
  r = Run(Authorize(pid));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  EXPECT_EQ(r.transaction->state, TxState::kAwaitingActivity);
}

TEST_F(ClientTest, FlatAndWrappedListItems) {
  sim::SimConfig c = testing::FastSimConfig();
  c.list_items = sim::ListShape::kFlat;
  c.transaction_list_items = sim::ListShape::kWrapped;
  Start(c);
  std::string pid = Authorized();
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C1")).result, ResultClass::kSuccess);
  auto s = Read(pid);
  ASSERT_EQ(s.transactions.size(), 2u);
  EXPECT_EQ(s.transactions[1].payee_reference, "C1");
  auto list = client->ListTransactions(pid).get();
  ASSERT_EQ(list.result, ResultClass::kSuccess);
  ASSERT_EQ(list.transactions.size(), 2u);
  EXPECT_EQ(list.transactions[1].type, TxType::kCapture);
}

TEST_F(ClientTest, PayerOutcomesReachTheSnapshot) {
  Start();
  std::string declined = Create("P1");
  ASSERT_EQ(Run(Authorize(declined, "+4799999989")).result, ResultClass::kSuccess);
  ASSERT_TRUE(WaitAuthorizationState(declined, TxState::kFailed));
  auto s = Read(declined);
  auto* a = Latest(s, TxType::kAuthorization);
  ASSERT_TRUE(a->problem);
  EXPECT_EQ(a->problem->type, "https://api.payex.com/psp/errordetail/vipps/vipps_declined");
  EXPECT_TRUE(s.can_authorize);  // another attempt is offered
  std::string pending = Create("P2");
  auto r = Run(Authorize(pending, "+4799999988"));
  EXPECT_EQ(r.transaction->state, TxState::kInitialized);
  EXPECT_EQ(Read(pending).state, PaymentState::kPending);
}

// ---- transient --------------------------------------------------------------------------------

TEST_F(ClientTest, ConnectFailureIsTransient) {
  Start();
  uint16_t dead;
  {
    testing::CallbackReceiver r;  // take a free port, then free it
    dead = r.port();
  }
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(dead);
  Client c(o);
  PayexCall call = CreateCall("P1");
  call.call_id = 5;
  auto r = c.Execute(call).get();
  EXPECT_EQ(r.result, ResultClass::kTransient);
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->type, problem_type::kConnect);
  EXPECT_EQ(r.call_id, 5u);
}

TEST_F(ClientTest, TooManyRequestsAnd5xxOnReadsAreTransient) {
  Start();
  sim->Faults(R"(["create:error,status=429,count=1"])");
  auto r = Run(CreateCall("P1"));
  EXPECT_EQ(r.result, ResultClass::kTransient);
  EXPECT_EQ(r.problem->status, 429);
  std::string pid = Create("P1");  // nothing happened the first time
  sim->Faults(R"(["get:error,status=503,count=1"])");
  r = Run(On(OpKind::kRead, pid));
  EXPECT_EQ(r.result, ResultClass::kTransient);
  EXPECT_EQ(r.problem->status, 503);
  sim->Faults(R"(["get:bad_json,count=1"])");
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kTransient);
  sim->Faults(R"(["get:wrong_content_type,count=1"])");
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kTransient);
  sim->Faults(R"(["get:truncated,count=1"])");
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kTransient);
  sim->Faults(R"(["get:drop_after,count=1"])");
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kTransient);
  r = Run(On(OpKind::kRead, "/psp/vipps/payments/00000000-0000-4000-8000-000000000000"));
  EXPECT_EQ(r.result, ResultClass::kTransient);  // notfound may be available later
  EXPECT_EQ(r.problem->status, 404);
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kSuccess);
}

TEST_F(ClientTest, AFailedOperationLookupIsTransientAndSendsNothing) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.operations_cache_ttl = 0ms; });
  std::string pid = Authorized();
  sim->Faults(R"(["get:error,status=502,count=1"])");
  auto r = Run(Money(OpKind::kCapture, pid, 100, "C1"));
  EXPECT_EQ(r.result, ResultClass::kTransient);
  EXPECT_EQ(RequestsOf("capture"), 0);
}

// ---- in doubt -----------------------------------------------------------------------------------

struct DoubtCase {
  const char* fault;
  bool effect;  // whether the simulator applied the capture
};

TEST_F(ClientTest, MoneyPostFaultsAreInDoubtAndTheReadTellsTheTruth) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.request_timeout = 1s; });
  std::string pid = Authorized("P1", 100000);
  std::vector<DoubtCase> cases = {
      {"capture:error,status=500,count=1", false},  {"capture:error,status=502,count=1", false},
      {"capture:error_after,count=1", true},        {"capture:drop_before,count=1", false},
      {"capture:drop_after,count=1", true},         {"capture:hang,latency=3s,count=1", true},
      {"capture:truncated,count=1", true},          {"capture:bad_json,count=1", true},
      {"capture:wrong_content_type,count=1", true},
  };
  int n = 0;
  for (const auto& c : cases) {
    std::string ref = "D" + std::to_string(n++);
    sim->Faults(std::string("[\"") + c.fault + "\"]");
    auto r = Run(Money(OpKind::kCapture, pid, 100, ref));
    EXPECT_EQ(r.result, ResultClass::kInDoubt) << c.fault;
    ASSERT_TRUE(r.problem) << c.fault;
    auto s = Read(pid);
    bool found = false;
    for (const auto& t : s.transactions)
      found |= t.payee_reference == ref && t.type == TxType::kCapture;
    EXPECT_EQ(found, c.effect) << c.fault;
  }
  EXPECT_TRUE(sim->Ledger().at("ok").as_bool());
}

TEST_F(ClientTest, InDoubtOnEveryEffectfulCall) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.operations_cache_ttl = 0ms; });
  std::string pid = Authorized("P1");
  sim->Faults(
      R"(["reverse:drop_after", "cancel:drop_after", "abort:drop_after", "create:drop_after", "authorize:drop_after"])");
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C1")).result, ResultClass::kSuccess);
  EXPECT_EQ(Run(Money(OpKind::kReverse, pid, 100, "R1")).result, ResultClass::kInDoubt);
  EXPECT_EQ(Run(Money(OpKind::kCancel, pid, 0, "X1")).result, ResultClass::kInDoubt);
  auto created = Run(CreateCall("P2"));
  EXPECT_EQ(created.result, ResultClass::kInDoubt);
  sim->Faults(R"(["authorize:drop_after"])");
  std::string p3 = Create("P3");
  EXPECT_EQ(Run(Authorize(p3)).result, ResultClass::kInDoubt);
  sim->Faults(R"(["abort:drop_after"])");
  std::string p4 = Create("P4");
  EXPECT_EQ(Run(On(OpKind::kAbort, p4)).result, ResultClass::kInDoubt);
  EXPECT_EQ(Read(p4).state, PaymentState::kAborted);
}

TEST_F(ClientTest, LatencyWithinAndBeyondTheDeadline) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.request_timeout = 400ms; });
  std::string pid = Authorized("P1");
  sim->Faults(R"(["get:latency,latency=50ms,count=1"])");
  EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kSuccess);
  sim->Faults(R"(["get:latency,latency=2s,count=1"])");
  auto r = Run(On(OpKind::kRead, pid));
  EXPECT_EQ(r.result, ResultClass::kTransient);
  EXPECT_EQ(r.problem->type, problem_type::kTimeout);
  // A slow capture: the client gives up, PayEx applies it later. In doubt, and
  // the reads that resolve it must keep looking until it shows.
  sim->Faults(R"(["capture:latency,latency=1s,count=1"])");
  r = Run(Money(OpKind::kCapture, pid, 100, "SLOW1"));
  EXPECT_EQ(r.result, ResultClass::kInDoubt);
  EXPECT_EQ(r.problem->type, problem_type::kTimeout);
  EXPECT_TRUE(testing::WaitUntil([&] {
    for (const auto& t : Read(pid).transactions)
      if (t.payee_reference == "SLOW1") return true;
    return false;
  }));
}

TEST_F(ClientTest, AFailedTransactionIsASuccessfulCallWithTheProblem) {
  Start();
  std::string pid = Authorized();
  sim->Faults(R"(["capture:tx_failed,count=1,problem=acquirer_insufficient_funds"])");
  auto r = Run(Money(OpKind::kCapture, pid, 100, "C1"));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  EXPECT_EQ(r.transaction->state, TxState::kFailed);
  ASSERT_TRUE(r.transaction->problem);
  EXPECT_EQ(r.transaction->problem->type,
            "https://api.payex.com/psp/errordetail/vipps/acquirer_insufficient_funds");
  EXPECT_EQ(Read(pid).remaining_capture, 1500);
}

TEST_F(ClientTest, InitializedTransactionIsASuccessThatLeavesThePaymentPending) {
  Start();
  std::string pid = Authorized();
  sim->Faults(R"(["capture:initialized,count=1"])");
  auto r = Run(Money(OpKind::kCapture, pid, 100, "C1"));
  ASSERT_EQ(r.result, ResultClass::kSuccess);
  EXPECT_EQ(r.transaction->state, TxState::kInitialized);
  auto s = Read(pid);
  EXPECT_EQ(s.state, PaymentState::kPending);
  // Nothing new while Pending: the operation is gone (fresh GET after the cached one fails).
  auto again = Run(Money(OpKind::kCapture, pid, 100, "C2"));
  EXPECT_EQ(again.result, ResultClass::kDefiniteFailure);
}

// ---- headers, logs, pool
// ---------------------------------------------------------------------------

TEST_F(ClientTest, HeadersOfTheReference) {
  Start();
  std::string pid = Authorized();
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C1")).result, ResultClass::kSuccess);
  auto v = sim->Get("/admin/requests");
  std::set<std::string> sessions;
  const auto& reqs = v.at("requests").as_array();
  ASSERT_GE(reqs.size(), 4u);
  for (const auto& r : reqs) {
    EXPECT_TRUE(r.at("authorized").as_bool());
    EXPECT_EQ(r.at("userAgent").as_string(), "payorch-test/1");
    EXPECT_NE(r.at("accept").as_string().find("application/problem+json"), std::string::npos);
    std::string sid(r.at("sessionId").as_string());
    EXPECT_EQ(sid.size(), 36u);
    sessions.insert(sid);
    if (r.at("method").as_string() != "GET") {
      EXPECT_EQ(r.at("contentType").as_string().subview().substr(0, 16), "application/json");
    }
  }
  EXPECT_EQ(sessions.size(), reqs.size());  // a fresh Session-Id per request
}

TEST_F(ClientTest, LogsMaskTheMsisdnAndNeverShowTheToken) {
  Start();
  std::string pid = Create();
  ASSERT_EQ(Run(Authorize(pid, "+4798765432")).result, ResultClass::kSuccess);
  bool masked = false;
  for (const auto& line : Lines()) {
    EXPECT_EQ(line.find(kToken), std::string::npos) << line;
    EXPECT_EQ(line.find("98765432"), std::string::npos) << line;
    masked |= line.find("msisdn=+47****5432") != std::string::npos;
    EXPECT_NE(line.find("event=payex.call"), std::string::npos);
    EXPECT_NE(line.find("order_id=order-1"), std::string::npos);
  }
  EXPECT_TRUE(masked);
}

TEST_F(ClientTest, PoolIsBoundedAndKeepsConnectionsAlive) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.max_connections = 2; });
  std::string pid = Create();
  std::vector<std::future<PayexResult>> futures;
  for (int i = 0; i < 40; ++i) {
    PayexCall c = On(OpKind::kRead, pid);
    c.call_id = 100 + i;
    futures.push_back(client->Execute(c));
  }
  for (auto& f : futures) EXPECT_EQ(f.get().result, ResultClass::kSuccess);
  PoolStats st = client->Stats();
  EXPECT_LE(st.connects, 2u);
  EXPECT_LE(st.open, 2u);
  EXPECT_GE(st.reuses, 38u);
  EXPECT_EQ(st.requests, 41u);
}

TEST_F(ClientTest, WaitingForTheFullPoolEndsAtTheDeadline) {
  Start(testing::FastSimConfig(), [](ClientOptions& o) {
    o.max_connections = 1;
    o.request_timeout = 300ms;
  });
  std::string pid = Create();
  sim->Faults(R"(["get:hang,latency=5s,count=2"])");
  auto a = client->Execute(On(OpKind::kRead, pid));
  auto b = client->Execute(On(OpKind::kRead, pid));
  EXPECT_EQ(a.get().result, ResultClass::kTransient);
  EXPECT_EQ(b.get().result, ResultClass::kTransient);
  EXPECT_LE(client->Stats().open, 1u);
}

TEST_F(ClientTest, ReadSurvivesAKeepAliveConnectionTheServerClosed) {
  sim::SimConfig c = testing::FastSimConfig();
  c.idle_timeout_ms = 30;
  Start(c);
  std::string pid = Create();
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(100ms);  // let the server drop the idle connection
    EXPECT_EQ(Run(On(OpKind::kRead, pid)).result, ResultClass::kSuccess);
  }
}

TEST_F(ClientTest, OperationHrefsComeFromTheLatestPaymentResource) {
  Start();
  std::string pid = Authorized();
  int gets = RequestsOf("get");
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C1")).result, ResultClass::kSuccess);
  EXPECT_EQ(RequestsOf("get"), gets);  // the cached resource of the last read had the href
  Start(testing::FastSimConfig(), [](ClientOptions& o) { o.operations_cache_ttl = 0ms; });
  pid = Authorized();
  gets = RequestsOf("get");
  ASSERT_EQ(Run(Money(OpKind::kCapture, pid, 100, "C1")).result, ResultClass::kSuccess);
  EXPECT_EQ(RequestsOf("get"), gets + 1);  // a fresh GET first
}

TEST_F(ClientTest, HrefsOutsideTheConfiguredOriginAreRefused) {
  sim::SimConfig c = testing::FastSimConfig();
  c.api_base = "http://127.0.0.1:1";
  Start(c);
  std::string pid = Create();
  auto r = Run(Authorize(pid));
  ASSERT_EQ(r.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(r.problem->type, problem_type::kForeignHref);
}

TEST_F(ClientTest, CallbackArrivesAtTheConfiguredUrl) {
  testing::CallbackReceiver receiver;
  Start(testing::FastSimConfig(), [&](ClientOptions& o) {
    o.callback_url_base = receiver.Url("/payex/callback");
    o.callback_token = [](const std::string&) { return "secret-token"; };
  });
  std::string pid = Create();
  ASSERT_EQ(Run(Authorize(pid)).result, ResultClass::kSuccess);
  ASSERT_TRUE(receiver.WaitFor(1));
  auto req = receiver.Requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/payex/callback/order-1?token=secret-token");
  auto body = boost::json::parse(req.body);
  EXPECT_EQ(body.at("payment").at("id").as_string(), pid);
}

TEST_F(ClientTest, BadConfigurationIsAStartupError) {
  Start();
  ClientOptions o = Options();
  o.allow_plain_http = false;
  EXPECT_THROW(Client{o}, std::invalid_argument);
  o = Options();
  o.base_url = "ftp://example.com";
  EXPECT_THROW(Client{o}, std::invalid_argument);
  o = Options();
  o.max_connections = 0;
  EXPECT_THROW(Client{o}, std::invalid_argument);
  o = Options();
  o.token = "a\r\nX-Evil: 1";
  EXPECT_THROW(Client{o}, std::invalid_argument);
  o = Options();
  o.base_url = "https://127.0.0.1:1";
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(Client{o}, std::invalid_argument);
}

// ---- TLS
// --------------------------------------------------------------------------------------------

constexpr const char* kStubPayment =
    R"({"payment":{"id":"/psp/vipps/payments/tls-1","state":"Ready","amount":0},"operations":[]})";

ClientOptions TlsOptions(const testing::TlsStub& stub, const std::string& ca_file) {
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(stub.port());
  o.token = kToken;
  o.ca_file = ca_file;
  return o;
}

PayexCall ReadStubPayment() {
  PayexCall call;
  call.kind = OpKind::kRead;
  call.payment_id = "/psp/vipps/payments/tls-1";
  return call;
}

TEST(PayexTlsTest, VerifiesTheServerCertificate) {
  auto cert = testing::MakeSelfSigned("localhost", "127.0.0.1");
  testing::TlsStub stub(cert, kStubPayment);
  std::string ca = testing::WriteTempFile(cert.cert_pem, ".pem");
  ClientOptions o = TlsOptions(stub, ca);
  {
    Client c(o);
    PayexCall call = ReadStubPayment();
    auto r = c.Execute(call).get();
    ASSERT_EQ(r.result, ResultClass::kSuccess) << (r.problem ? r.problem->detail : "");
    EXPECT_EQ(r.snapshot->payment_id, "/psp/vipps/payments/tls-1");
    EXPECT_EQ(c.Execute(call).get().result, ResultClass::kSuccess);
    EXPECT_EQ(c.Stats().connects, 1u);  // kept alive over TLS
  }
  o.ca_file.clear();  // untrusted issuer
  {
    Client c(o);
    PayexCall call = ReadStubPayment();
    auto r = c.Execute(call).get();
    EXPECT_EQ(r.result, ResultClass::kTransient);
    EXPECT_EQ(r.problem->type, problem_type::kConnect);
    EXPECT_NE(r.problem->detail.find("TLS"), std::string::npos);
  }
  std::remove(ca.c_str());
}

TEST(PayexTlsTest, RejectsACertificateForAnotherHost) {
  auto cert = testing::MakeSelfSigned("other.example");
  testing::TlsStub stub(cert, kStubPayment);
  std::string ca = testing::WriteTempFile(cert.cert_pem, ".pem");
  ClientOptions o = TlsOptions(stub, ca);
  Client c(o);
  auto r = c.Execute(ReadStubPayment()).get();
  EXPECT_EQ(r.result, ResultClass::kTransient);
  EXPECT_EQ(stub.Served(), 0u);  // the request (and its token) never left
  std::remove(ca.c_str());
}

}  // namespace
}  // namespace payorch::payex
