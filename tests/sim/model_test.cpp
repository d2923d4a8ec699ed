// The simulator's rules, one test each, on the Model alone: no sockets, a
// simulated clock advanced by hand, so every case is deterministic.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "sim/config.hpp"
#include "sim/model.hpp"

namespace payorch::sim {
namespace {
namespace json = boost::json;

constexpr const char* kPayee = "5cabf558-5283-482f-b252-4d58e06f6f3b";

json::object BaseCreate(int64_t amount = 1500, const std::string& ref = "P1") {
  return json::object{
      {"payment",
       json::object{{"operation", "Purchase"},
                    {"intent", "Authorization"},
                    {"currency", "NOK"},
                    {"prices", json::array{json::object{
                                   {"type", "Vipps"}, {"amount", amount}, {"vatAmount", 0}}}},
                    {"description", "Vipps Test"},
                    {"payerReference", "AB1234"},
                    {"userAgent", "Mozilla/5.0"},
                    {"language", "nb-NO"},
                    {"urls", json::object{{"hostUrls", json::array{"https://example.com"}},
                                          {"completeUrl", "https://example.com/done"},
                                          {"callbackUrl", "http://127.0.0.1:9/cb"}}},
                    {"payeeInfo", json::object{{"payeeId", kPayee}, {"payeeReference", ref}}},
                    {"metadata", json::object{{"orderId", "o-1"}}}}}};
}

class ModelTest : public ::testing::Test {
 protected:
  SimConfig cfg;
  std::unique_ptr<Model> model;
  int64_t now = 1'700'000'000'000;
  std::vector<CallbackJob> jobs;

  void SetUp() override { cfg.log_level = 0; }

  Model& M() {
    if (!model) {
      model = std::make_unique<Model>(cfg, now);
      model->SetBases("http://sim.test", "");
    }
    return *model;
  }

  HttpResponse Req(const std::string& method, const std::string& target,
                   const std::string& body = {}, bool auth = true,
                   const std::string& content_type = "application/json") {
    HttpRequest r;
    r.method = method;
    r.target = target;
    if (auth) r.headers.emplace_back("authorization", "Bearer " + M().config().token);
    if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
    r.headers.emplace_back("user-agent", "model-test/1");
    r.body = body;
    FaultPlan plan = M().PlanFaults(r);
    return M().Handle(r, plan, now);
  }

  static json::value J(const HttpResponse& r) {
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }

  static std::string ProblemType(const HttpResponse& r) {
    auto v = J(r);
    return v.is_object() && v.as_object().contains("type") ? std::string(v.at("type").as_string())
                                                           : "";
  }
  static std::string FirstProblemName(const HttpResponse& r) {
    auto v = J(r);
    const auto& list = v.at("problems").as_array();
    return list.empty() ? "" : std::string(list[0].at("name").as_string());
  }

  std::string Create(int64_t amount = 1500, const std::string& ref = "P1") {
    auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(amount, ref)));
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(J(r).at("payment").at("id").as_string());
  }

  json::value Get(const std::string& id, const std::string& expand = "") {
    auto r = Req("GET", id + (expand.empty() ? "" : "?$expand=" + expand));
    EXPECT_EQ(r.status, 200) << r.body;
    return J(r);
  }

  // The payment's authorizations, from a GET that expands them.
  json::array Authorizations(const std::string& id) {
    return Get(id, "authorizations")
        .at("payment")
        .at("authorizations")
        .at("authorizationList")
        .as_array();
  }

  // How many authorizations GET {id}/authorizations lists.
  size_t AuthorizationCount(const std::string& id) {
    return J(Req("GET", id + "/authorizations"))
        .at("authorizations")
        .at("authorizationList")
        .as_array()
        .size();
  }

  std::vector<std::string> Rels(const std::string& id) {
    std::vector<std::string> out;
    auto v = Get(id);
    for (const auto& op : v.at("operations").as_array()) out.emplace_back(op.at("rel").as_string());
    return out;
  }
  bool Offers(const std::string& id, const std::string& rel) {
    auto r = Rels(id);
    return std::find(r.begin(), r.end(), rel) != r.end();
  }

  std::string State(const std::string& id) {
    return std::string(Get(id).at("payment").at("state").as_string());
  }

  HttpResponse Authorize(const std::string& id, const std::string& msisdn) {
    return Req("POST", id + "/authorizations",
               json::serialize(json::object{{"transaction", json::object{{"msisdn", msisdn}}}}));
  }

  void Advance(int64_t ms) {
    now += ms;
    auto due = M().Advance(now);
    jobs.insert(jobs.end(), due.begin(), due.end());
  }

  std::string Authorized(int64_t amount = 1500, const std::string& ref = "P1") {
    std::string id = Create(amount, ref);
    EXPECT_EQ(Authorize(id, "+4798765432").status, 200);
    Advance(cfg.approve_delay_ms);
    return id;
  }

  HttpResponse Money(const std::string& id, const std::string& kind, int64_t amount,
                     const std::string& ref, int64_t vat = 0) {
    json::object tx{{"description", "ship"}, {"payeeReference", ref}};
    if (kind != "cancellations") {
      tx["amount"] = amount;
      tx["vatAmount"] = vat;
    }
    return Req("POST", id + "/" + kind, json::serialize(json::object{{"transaction", tx}}));
  }

  int64_t Field(const std::string& id, const char* name) {
    auto v = Get(id);
    const auto& p = v.at("payment").as_object();
    return p.contains(name) ? p.at(name).as_int64() : -1;
  }

  json::value Admin(const std::string& method, const std::string& path,
                    const std::string& body = {}) {
    auto r = Req(method, path, body, false);
    EXPECT_EQ(r.status, 200) << path << " " << r.body;
    return J(r);
  }
};

// ---- create ----------------------------------------------------------------------------

TEST_F(ModelTest, CreateAnswersReadyPaymentWithAuthorizationOperations) {
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate()));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto v = J(r);
  const auto& p = v.at("payment").as_object();
  EXPECT_EQ(p.at("state").as_string(), "Ready");
  EXPECT_EQ(p.at("amount").as_int64(), 0);
  EXPECT_FALSE(p.contains("remainingCaptureAmount"));  // default: omitted before authorization
  EXPECT_EQ(p.at("initiatingSystemUserAgent").as_string(), "model-test/1");
  EXPECT_EQ(p.at("id").as_string().subview().substr(0, 20), "/psp/vipps/payments/");
  std::string id(p.at("id").as_string());
  auto rels = Rels(id);
  EXPECT_EQ(rels, (std::vector<std::string>{"create-authorization", "redirect-authorization",
                                            "view-payment", "update-payment-abort"}));
  // Operation hrefs are absolute, on the configured base.
  for (const auto& op : v.at("operations").as_array())
    EXPECT_EQ(std::string(op.at("href").as_string()).rfind("http://sim.test", 0), 0u);
}

struct BadCreate {
  const char* name;
  std::function<void(json::object&)> mutate;
  const char* problem;
};

TEST_F(ModelTest, CreateValidatesEveryField) {
  std::vector<BadCreate> cases = {
      {"operation", [](json::object& p) { p["operation"] = "Verify"; }, "Payment.Operation"},
      {"intent", [](json::object& p) { p["intent"] = "AutoCapture"; }, "Payment.Intent"},
      {"currency", [](json::object& p) { p["currency"] = "SEK"; }, "Payment.Currency"},
      {"no prices", [](json::object& p) { p.erase("prices"); }, "Payment.Prices"},
      {"two prices",
       [](json::object& p) { p["prices"].as_array().push_back(p["prices"].as_array()[0]); },
       "Payment.Prices"},
      {"price type",
       [](json::object& p) { p["prices"].as_array()[0].as_object()["type"] = "CreditCard"; },
       "Payment.Prices.Type"},
      {"amount zero", [](json::object& p) { p["prices"].as_array()[0].as_object()["amount"] = 0; },
       "Payment.Prices.Amount"},
      {"amount decimal",
       [](json::object& p) { p["prices"].as_array()[0].as_object()["amount"] = 15.5; },
       "Payment.Prices.Amount"},
      {"vat above amount",
       [](json::object& p) { p["prices"].as_array()[0].as_object()["vatAmount"] = 2000; },
       "Payment.Prices.VatAmount"},
      {"empty description", [](json::object& p) { p["description"] = ""; }, "Payment.Description"},
      {"long description", [](json::object& p) { p["description"] = std::string(41, 'x'); },
       "Payment.Description"},
      {"no userAgent", [](json::object& p) { p.erase("userAgent"); }, "Payment.UserAgent"},
      {"language", [](json::object& p) { p["language"] = "de-DE"; }, "Payment.Language"},
      {"no urls", [](json::object& p) { p.erase("urls"); }, "Payment.Urls"},
      {"no completeUrl", [](json::object& p) { p["urls"].as_object().erase("completeUrl"); },
       "Payment.Urls.CompleteUrl"},
      {"http logoUrl",
       [](json::object& p) { p["urls"].as_object()["logoUrl"] = "http://x/logo.png"; },
       "Payment.Urls.LogoUrl"},
      {"bad callbackUrl",
       [](json::object& p) { p["urls"].as_object()["callbackUrl"] = "not a url"; },
       "Payment.Urls.CallbackUrl"},
      {"payeeId", [](json::object& p) { p["payeeInfo"].as_object()["payeeId"] = "someone-else"; },
       "Payment.PayeeInfo.PayeeId"},
      {"payeeReference dash",
       [](json::object& p) { p["payeeInfo"].as_object()["payeeReference"] = "AB-12"; },
       "Payment.PayeeInfo.PayeeReference"},
      {"payeeReference 31",
       [](json::object& p) { p["payeeInfo"].as_object()["payeeReference"] = std::string(31, 'a'); },
       "Payment.PayeeInfo.PayeeReference"},
      {"orderReference 51",
       [](json::object& p) { p["payeeInfo"].as_object()["orderReference"] = std::string(51, 'a'); },
       "Payment.PayeeInfo.OrderReference"},
      {"metadata array", [](json::object& p) { p["metadata"] = json::array{1}; },
       "Payment.Metadata"},
  };
  for (const auto& c : cases) {
    json::object body = BaseCreate();
    c.mutate(body["payment"].as_object());
    auto r = Req("POST", "/psp/vipps/payments", json::serialize(body));
    EXPECT_EQ(r.status, 400) << c.name;
    EXPECT_EQ(r.content_type, "application/problem+json") << c.name;
    auto v = J(r);
    EXPECT_EQ(v.at("type").as_string(), "https://api.payex.com/psp/errordetail/inputerror")
        << c.name;
    EXPECT_EQ(v.at("status").as_int64(), 400) << c.name;
    EXPECT_FALSE(v.at("instance").as_string().empty());
    bool named = false;
    for (const auto& p : v.at("problems").as_array())
      named |= p.at("name").as_string() == c.problem;
    EXPECT_TRUE(named) << c.name << ": " << r.body;
  }
  EXPECT_TRUE(Admin("GET", "/admin/payments").at("payments").as_array().empty());
}

TEST_F(ModelTest, PayerReferenceAcceptedAtTopLevelOrUnderPayer) {
  json::object body = BaseCreate();
  body["payment"].as_object().erase("payerReference");
  body["payment"].as_object()["payer"] = json::object{{"payerReference", "NESTED"}};
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(body));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(J(r).at("payment").at("payerReference").as_string(), "NESTED");
}

TEST_F(ModelTest, SettlementOptionBWantsDigitsOnly) {
  cfg.settlement = 'B';
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(1500, "ABC1")));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Payment.PayeeInfo.PayeeReference");
  EXPECT_EQ(
      Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(1500, "123456789012"))).status,
      200);
  EXPECT_EQ(
      Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(1500, "1234567890123"))).status,
      400);
}

TEST_F(ModelTest, RequestsWithoutTheTokenGet401) {
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate()), false);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/unauthorized");
  HttpRequest wrong;
  wrong.method = "GET";
  wrong.target = "/psp/vipps/payments/x";
  wrong.headers = {{"authorization", "Bearer nope"}};
  EXPECT_EQ(M().Handle(wrong, {}, now).status, 401);
}

TEST_F(ModelTest, UnknownPaymentOrPathIsNotFound) {
  auto r = Req("GET", "/psp/vipps/payments/2d5ad1a9-0000-4000-8000-000000000000");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/notfound");
  EXPECT_EQ(Req("GET", "/psp/creditcard/payments").status, 404);
  std::string id = Create();
  EXPECT_EQ(Req("GET", id + "/nonsense").status, 404);
  EXPECT_EQ(Req("GET", id + "/captures/00000000-0000-4000-8000-000000000000").status, 404);
  EXPECT_EQ(Req("DELETE", id).status, 405);
}

TEST_F(ModelTest, BodiesMustBeJson) {
  auto r = Req("POST", "/psp/vipps/payments", "{\"payment\":", true);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Body");
  r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate()), true, "text/plain");
  EXPECT_EQ(r.status, 415);
  // A version parameter on the media type is accepted and ignored (api §2.4).
  r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate()), true,
          "application/json;version=3.1; charset=utf-8");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Req("POST", "/psp/vipps/payments", "[1,2]").status, 400);
  EXPECT_EQ(Req("POST", "/psp/vipps/payments", "{}").status, 400);
}

// ---- payeeReference ---------------------------------------------------------------------

TEST_F(ModelTest, DuplicatePayeeReferenceRejectedByDefault) {
  std::string id = Create(1500, "P1");
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(1500, "P1")));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Payment.PayeeInfo.PayeeReference");
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  Advance(cfg.approve_delay_ms);
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  r = Money(id, "captures", 100, "C1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Transaction.PayeeReference");
  r = Money(id, "captures", 100, "P1");  // the payment's reference is taken as well
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1400);
}

TEST_F(ModelTest, DuplicatePayeeReferenceReplayedWhenConfigured) {
  cfg.duplicate_payee_reference = DuplicateMode::kReplay;
  std::string id = Create(1500, "P1");
  auto again = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate(1500, "P1")));
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(J(again).at("payment").at("id").as_string(), id);
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  Advance(cfg.approve_delay_ms);
  auto first = Money(id, "captures", 100, "C1");
  auto second = Money(id, "captures", 100, "C1");
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(J(first).at("capture").at("id"), J(second).at("capture").at("id"));
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1400);  // one effect
  // A reference used by another kind is still refused.
  EXPECT_EQ(Money(id, "reversals", 100, "C1").status, 400);
  EXPECT_TRUE(Admin("GET", "/admin/ledger").at("ok").as_bool());
}

TEST_F(ModelTest, DuplicatePayeeReferenceAllowedShowsInLedger) {
  cfg.duplicate_payee_reference = DuplicateMode::kAllow;
  std::string id = Authorized();
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  auto ledger = Admin("GET", "/admin/ledger");
  EXPECT_FALSE(ledger.at("ok").as_bool());
  const auto& dups = ledger.at("duplicateReferences").as_array();
  ASSERT_EQ(dups.size(), 1u);
  EXPECT_EQ(dups[0].at("payeeReference").as_string(), "C1");
  EXPECT_EQ(dups[0].at("count").as_int64(), 2);
}

// ---- authorization ------------------------------------------------------------------------

TEST_F(ModelTest, AuthorizationAwaitsThePayerThenCompletes) {
  std::string id = Create();
  auto r = Authorize(id, "+4798765432");
  ASSERT_EQ(r.status, 200);
  auto v = J(r);
  EXPECT_EQ(v.at("payment").as_string(), id);
  const auto& a = v.at("authorization").as_object();
  EXPECT_EQ(a.at("msisdn").as_string(), "+4798765432");
  EXPECT_FALSE(a.at("vippsTransactionId").as_string().empty());
  const auto& tx = a.at("transaction").as_object();
  EXPECT_EQ(tx.at("state").as_string(), "AwaitingActivity");
  EXPECT_EQ(tx.at("type").as_string(), "Authorization");
  EXPECT_EQ(tx.at("amount").as_int64(), 1500);
  EXPECT_EQ(tx.at("payeeReference").as_string(), "P1");  // inherited from the payment
  EXPECT_TRUE(tx.at("isOperational").as_bool());
  // The authorization id and the transaction id share one GUID.
  std::string aid(a.at("id").as_string()), tid(tx.at("id").as_string());
  EXPECT_EQ(aid.substr(aid.rfind('/')), tid.substr(tid.rfind('/')));
  EXPECT_EQ(State(id), "Ready");
  EXPECT_EQ(Rels(id), (std::vector<std::string>{"update-payment-abort"}));
  Advance(cfg.approve_delay_ms - 1);
  EXPECT_EQ(Field(id, "amount"), 0);
  Advance(1);
  EXPECT_EQ(State(id), "Ready");  // a successful authorization keeps the payment Ready
  EXPECT_EQ(Field(id, "amount"), 1500);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1500);
  EXPECT_EQ(Field(id, "remainingCancellationAmount"), 1500);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 0);
  EXPECT_EQ(Rels(id),
            (std::vector<std::string>{"create-capture", "create-cancellation", "paid-payment"}));
  auto paid = Req("GET", id + "/paid");
  ASSERT_EQ(paid.status, 200);
  EXPECT_EQ(J(paid).at("paid").at("amount").as_int64(), 1500);
}

TEST_F(ModelTest, AuthorizationValidatesTheMsisdn) {
  std::string id = Create();
  for (const char* bad :
       {"98765432", "+46701234567", "+479876543", "+47987654321", "+47 9876543"}) {
    auto r = Authorize(id, bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(J(r).at("detail").as_string(), "Please correct the errors and retry the request");
    EXPECT_EQ(FirstProblemName(r), "Transaction.Msisdn") << bad;
    EXPECT_EQ(J(r).at("problems").as_array()[0].at("description").as_string(),
              "Msisdn is invalid.");
  }
  auto r = Req("POST", id + "/authorizations", "{\"transaction\":{}}");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Rels(id).front(), "create-authorization");  // nothing was created
}

TEST_F(ModelTest, MsisdnFieldSpellingsFollowTheKnobs) {
  cfg.msisdn_request_field = MsisdnSpelling::kMsisdn;
  cfg.msisdn_field = MsisdnSpelling::kMobileNumber;
  std::string id = Create();
  auto r =
      Req("POST", id + "/authorizations", "{\"transaction\":{\"mobileNumber\":\"+4798765432\"}}");
  EXPECT_EQ(r.status, 400);
  r = Authorize(id, "+4798765432");
  ASSERT_EQ(r.status, 200);
  auto v = J(r);
  const auto& a = v.at("authorization").as_object();
  EXPECT_FALSE(a.contains("msisdn"));
  EXPECT_EQ(a.at("mobileNumber").as_string(), "+4798765432");
}

TEST_F(ModelTest, MagicNumbersRefuseTheAuthorizationWithVippsError) {
  std::string id = Create();
  for (int n = 91; n <= 98; ++n) {
    auto r = Authorize(id, "+47999999" + std::to_string(n));
    EXPECT_EQ(r.status, 403) << n;
    EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/vipps/vipps_error");
    EXPECT_FALSE(J(r).at("detail").as_string().empty());
  }
  EXPECT_EQ(AuthorizationCount(id), 0u);
  EXPECT_EQ(J(Authorize(id, "+4799999991")).at("detail").as_string(), "Vipps internal error");
  EXPECT_TRUE(Offers(id, "create-authorization"));
}

TEST_F(ModelTest, DeclineNumberFailsAfterTheDeclineDelayAndAllowsAnotherAttempt) {
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4799999989").status, 200);
  Advance(cfg.decline_delay_ms);
  auto list = Authorizations(id);
  ASSERT_EQ(list.size(), 1u);
  const auto& tx = list[0].at("transaction").as_object();
  EXPECT_EQ(tx.at("state").as_string(), "Failed");
  EXPECT_EQ(tx.at("problem").at("type").as_string(),
            "https://api.payex.com/psp/errordetail/vipps/vipps_declined");
  EXPECT_EQ(tx.at("problem").at("status").as_int64(), 400);
  EXPECT_EQ(State(id), "Ready");
  EXPECT_TRUE(Offers(id, "create-authorization"));
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  Advance(cfg.approve_delay_ms);
  EXPECT_EQ(Field(id, "amount"), 1500);
}

TEST_F(ModelTest, TimeoutNumberFailsAfterTheIgnoreTimeout) {
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4799999990").status, 200);
  Advance(cfg.ignore_timeout_ms - 1);
  EXPECT_EQ(Authorizations(id)[0].at("transaction").at("state").as_string(), "AwaitingActivity");
  Advance(1);
  EXPECT_EQ(Authorizations(id)[0].at("transaction").at("state").as_string(), "Failed");
}

TEST_F(ModelTest, SimulatorNumbersInitializedAcquirerAndInstant) {
  std::string a = Create(1500, "PA");
  auto r = Authorize(a, "+4799999986");
  EXPECT_EQ(J(r).at("authorization").at("transaction").at("state").as_string(), "Completed");
  std::string b = Create(1500, "PB");
  r = Authorize(b, "+4799999988");
  EXPECT_EQ(J(r).at("authorization").at("transaction").at("state").as_string(), "Initialized");
  EXPECT_EQ(State(b), "Pending");
  std::string c = Create(1500, "PC");
  ASSERT_EQ(Authorize(c, "+4799999987").status, 200);
  Advance(cfg.approve_delay_ms);
  auto tx = Authorizations(c)[0].at("transaction");
  EXPECT_EQ(tx.at("problem").at("type").as_string(),
            "https://api.payex.com/psp/errordetail/vipps/acquirer_insufficient_funds");
  EXPECT_EQ(tx.at("problem").at("status").as_int64(), 403);
}

TEST_F(ModelTest, SecondAuthorizationWhilePendingOrAfterCompletedIsForbidden) {
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  auto r = Authorize(id, "+4798765432");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/forbidden");
  Advance(cfg.approve_delay_ms);
  EXPECT_EQ(Authorize(id, "+4798765432").status, 403);
  EXPECT_EQ(AuthorizationCount(id), 1u);
}

TEST_F(ModelTest, AttemptsExhaustedFailThePayment) {
  cfg.max_authorization_attempts = 2;
  std::string id = Create();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(Authorize(id, "+4799999989").status, 200);
    Advance(cfg.decline_delay_ms);
  }
  EXPECT_EQ(State(id), "Failed");
  EXPECT_EQ(Rels(id), (std::vector<std::string>{"failed-payment"}));
  EXPECT_EQ(Authorize(id, "+4798765432").status, 403);
  auto failed = Req("GET", id + "/failed");
  ASSERT_EQ(failed.status, 200);
  EXPECT_EQ(J(failed).at("problem").at("type").as_string(),
            "https://api.payex.com/psp/errordetail/vipps/vipps_declined");
}

TEST_F(ModelTest, PaymentStateWhileAwaitingFollowsTheKnob) {
  cfg.awaiting_state_pending = true;
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  EXPECT_EQ(State(id), "Pending");
  Advance(cfg.approve_delay_ms);
  EXPECT_EQ(State(id), "Ready");
}

TEST_F(ModelTest, DirectAuthorizationRelAndAvailabilityAreKnobs) {
  cfg.authorization_rel = "direct-authorization";
  std::string id = Create();
  EXPECT_TRUE(Offers(id, "direct-authorization"));
  EXPECT_FALSE(Offers(id, "create-authorization"));
  model.reset();
  cfg.direct_authorization = false;
  id = Create();
  EXPECT_FALSE(Offers(id, "direct-authorization"));
  EXPECT_TRUE(Offers(id, "redirect-authorization"));
  EXPECT_EQ(Authorize(id, "+4798765432").status, 403);
}

TEST_F(ModelTest, RemainingAmountsBeforeAuthorizationFollowTheKnob) {
  cfg.remaining_before_authorization = RemainingBeforeAuth::kFull;
  std::string id = Create();
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1500);
  EXPECT_EQ(Field(id, "amount"), 0);
  model.reset();
  cfg.remaining_before_authorization = RemainingBeforeAuth::kZero;
  id = Create();
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 0);
}

// ---- capture, cancellation, reversal ------------------------------------------------------

TEST_F(ModelTest, CaptureBeforeAuthorizationIsForbidden) {
  std::string id = Create();
  auto r = Money(id, "captures", 100, "C1");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/forbidden");
  EXPECT_FALSE(Offers(id, "create-capture"));
}

TEST_F(ModelTest, CaptureAboveTheRemainingAmountIsAnInputError) {
  std::string id = Authorized();
  auto r = Money(id, "captures", 1501, "C1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Transaction.Amount");
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1500);
}

TEST_F(ModelTest, CaptureValidatesItsFields) {
  std::string id = Authorized();
  EXPECT_EQ(Money(id, "captures", 0, "C1").status, 400);
  EXPECT_EQ(Money(id, "captures", 100, "C1", 101).status, 400);
  EXPECT_EQ(Money(id, "captures", 100, "has space").status, 400);
  EXPECT_EQ(Req("POST", id + "/captures",
                "{\"transaction\":{\"amount\":100,\"vatAmount\":0,\"payeeReference\":\"C1\"}}")
                .status,
            400);
  EXPECT_EQ(Req("POST", id + "/captures", "{}").status, 400);
}

TEST_F(ModelTest, PartialCapturesMoveTheRemainingAmounts) {
  std::string id = Authorized();
  auto r = Money(id, "captures", 1000, "C1", 200);
  ASSERT_EQ(r.status, 200);
  auto tx = J(r).at("capture").at("transaction");
  EXPECT_EQ(tx.at("state").as_string(), "Completed");
  EXPECT_EQ(tx.at("type").as_string(), "Capture");
  EXPECT_EQ(tx.at("amount").as_int64(), 1000);
  EXPECT_EQ(tx.at("vatAmount").as_int64(), 200);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 500);
  EXPECT_EQ(Field(id, "remainingCancellationAmount"), 500);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 1000);
  ASSERT_EQ(Money(id, "captures", 500, "C2").status, 200);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 0);
  EXPECT_EQ(Rels(id), (std::vector<std::string>{"create-reversal", "paid-payment"}));
  EXPECT_EQ(Money(id, "captures", 1, "C3").status, 403);
  EXPECT_EQ(Money(id, "cancellations", 0, "X1").status, 403);  // a cancel after a full capture
  EXPECT_EQ(State(id), "Ready");  // a full capture does not change the state
}

TEST_F(ModelTest, CancellationReleasesEverythingRemaining) {
  std::string id = Authorized();
  ASSERT_EQ(Money(id, "captures", 400, "C1").status, 200);
  auto r = Money(id, "cancellations", 0, "X1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(J(r).at("cancellation").at("transaction").at("amount").as_int64(), 1100);
  EXPECT_EQ(J(r).at("cancellation").at("transaction").at("type").as_string(), "Cancellation");
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 0);
  EXPECT_EQ(Field(id, "remainingCancellationAmount"), 0);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 400);
  EXPECT_EQ(Money(id, "cancellations", 0, "X2").status, 403);
  EXPECT_EQ(Money(id, "captures", 1, "C2").status, 403);
}

TEST_F(ModelTest, ReversalOnlyOfCapturedMoney) {
  std::string id = Authorized();
  EXPECT_EQ(Money(id, "reversals", 100, "R0").status, 403);
  ASSERT_EQ(Money(id, "captures", 1000, "C1").status, 200);
  auto r = Money(id, "reversals", 1001, "R1");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FirstProblemName(r), "Transaction.Amount");
  ASSERT_EQ(Money(id, "reversals", 600, "R2").status, 200);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 400);
  ASSERT_EQ(Money(id, "reversals", 400, "R3").status, 200);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 0);
  EXPECT_FALSE(Offers(id, "create-reversal"));
  EXPECT_EQ(Money(id, "reversals", 1, "R4").status, 403);
  EXPECT_TRUE(Admin("GET", "/admin/ledger").at("ok").as_bool());
}

TEST_F(ModelTest, FiveFailedReversalsInARowLockThePayment) {
  std::string id = Authorized();
  ASSERT_EQ(Money(id, "captures", 1000, "C1").status, 200);
  cfg.faults.clear();
  Admin("POST", "/admin/faults", "{\"faults\":[\"reverse:tx_failed,count=5\"]}");
  for (int i = 0; i < 5; ++i) {
    auto r = Money(id, "reversals", 100, "R" + std::to_string(i));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(J(r).at("reversal").at("transaction").at("state").as_string(), "Failed");
  }
  EXPECT_FALSE(Offers(id, "create-reversal"));
  auto r = Money(id, "reversals", 100, "R9");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Field(id, "remainingReversalAmount"), 1000);
}

TEST_F(ModelTest, CaptureLockOnlyWhenConfigured) {
  cfg.lock_captures = true;
  cfg.lock_after_failures = 2;
  std::string id = Authorized();
  Admin("POST", "/admin/faults", "{\"faults\":[\"capture:tx_failed,count=2\"]}");
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  ASSERT_EQ(Money(id, "captures", 100, "C2").status, 200);
  EXPECT_FALSE(Offers(id, "create-capture"));
  EXPECT_EQ(Money(id, "captures", 100, "C3").status, 403);
}

// ---- Initialized ---------------------------------------------------------------------------

TEST_F(ModelTest, InitializedTransactionMakesThePaymentPendingUntilResolved) {
  std::string id = Authorized();
  Admin("POST", "/admin/faults", "{\"faults\":[\"capture:initialized,count=1\"]}");
  auto r = Money(id, "captures", 500, "C1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(J(r).at("capture").at("transaction").at("state").as_string(), "Initialized");
  EXPECT_EQ(State(id), "Pending");
  EXPECT_TRUE(Rels(id).empty());
  EXPECT_EQ(Money(id, "captures", 100, "C2").status, 403);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1500);
  std::string guid = std::string(J(r).at("capture").at("id").as_string());
  guid = guid.substr(guid.rfind('/') + 1);
  auto forced = Admin("POST", "/admin/payments/" + id.substr(id.rfind('/') + 1) + "/force",
                      "{\"outcome\":\"Completed\",\"transaction\":\"" + guid + "\"}");
  EXPECT_EQ(forced.at("state").as_string(), "Ready");
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1000);
}

// ---- abort ------------------------------------------------------------------------------------

TEST_F(ModelTest, AbortBeforeAuthorization) {
  std::string id = Create();
  auto r = Req("PATCH", id,
               "{\"payment\":{\"operation\":\"Abort\",\"abortReason\":\"CancelledByConsumer\"}}");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(J(r).at("payment").at("state").as_string(), "Aborted");
  EXPECT_TRUE(J(r).at("operations").as_array().empty());
  EXPECT_EQ(Authorize(id, "+4798765432").status, 403);
  auto again =
      Req("PATCH", id,
          "{\"payment\":{\"operation\":\"Abort\",\"abortReason\":\"CancelledByCustomer\"}}");
  EXPECT_EQ(again.status, 403);
  auto aborted = Req("GET", id + "/aborted");
  ASSERT_EQ(aborted.status, 200);
  EXPECT_EQ(J(aborted).at("aborted").at("abortReason").as_string(), "CancelledByConsumer");
}

TEST_F(ModelTest, AbortAfterAuthorizationIsForbidden) {
  std::string id = Authorized();
  auto r = Req("PATCH", id,
               "{\"payment\":{\"operation\":\"Abort\",\"abortReason\":\"CancelledByConsumer\"}}");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(State(id), "Ready");
  EXPECT_EQ(Req("PATCH", id, "{\"payment\":{\"operation\":\"Cancel\"}}").status, 400);
}

TEST_F(ModelTest, AbortWhileAwaitingFailsTheAuthorization) {
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  auto r = Req("PATCH", id,
               "{\"payment\":{\"operation\":\"Abort\",\"abortReason\":\"CancelledByConsumer\"}}");
  ASSERT_EQ(r.status, 200);
  Advance(cfg.approve_delay_ms);  // the payer's approval comes too late
  auto list = Authorizations(id);
  EXPECT_EQ(list[0].at("transaction").at("state").as_string(), "Failed");
  EXPECT_EQ(State(id), "Aborted");
  EXPECT_EQ(Field(id, "amount"), 0);
}

TEST_F(ModelTest, AbortWhileAwaitingRefusedWhenConfigured) {
  cfg.abort_during_awaiting = false;
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  EXPECT_FALSE(Offers(id, "update-payment-abort"));
  EXPECT_EQ(Req("PATCH", id, "{\"payment\":{\"operation\":\"Abort\"}}").status, 403);
}

// ---- reading
// -------------------------------------------------------------------------------------

TEST_F(ModelTest, ExpandInlinesListsAndShapesFollowTheKnobs) {
  std::string id = Authorized();
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  auto plain = Get(id);
  EXPECT_EQ(plain.at("payment").at("captures").as_object().size(), 1u);  // just {id}
  auto v = Get(id, "captures,transactions,prices,payeeinfo,urls,metadata");
  const auto& p = v.at("payment").as_object();
  auto caps = p.at("captures").at("captureList").as_array();
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_TRUE(caps[0].as_object().contains("transaction"));  // wrapped by default
  auto all = p.at("transactions").at("transactionList").as_array();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].at("type").as_string(), "Authorization");  // flat by default
  EXPECT_EQ(p.at("prices").at("priceList").as_array()[0].at("amount").as_int64(), 1500);
  EXPECT_EQ(p.at("payeeInfo").at("payeeReference").as_string(), "P1");
  EXPECT_EQ(p.at("urls").at("completeUrl").as_string(), "https://example.com/done");
  EXPECT_EQ(p.at("metadata").at("orderId").as_string(), "o-1");
  // %24expand and mixed case work too.
  auto r = Req("GET", id + "?%24expand=Captures");
  EXPECT_TRUE(J(r).at("payment").at("captures").as_object().contains("captureList"));

  model.reset();
  cfg.list_items = ListShape::kFlat;
  cfg.transaction_list_items = ListShape::kWrapped;
  id = Authorized();
  v = Get(id, "authorizations,transactions");
  auto auths = v.at("payment").at("authorizations").at("authorizationList").as_array();
  EXPECT_EQ(auths[0].at("state").as_string(), "Completed");
  EXPECT_EQ(auths[0].at("msisdn").as_string(), "+4798765432");
  EXPECT_TRUE(v.at("payment")
                  .at("transactions")
                  .at("transactionList")
                  .as_array()[0]
                  .as_object()
                  .contains("transaction"));
}

TEST_F(ModelTest, SubResourcesAndSingleItems) {
  std::string id = Authorized();
  auto cap = J(Money(id, "captures", 100, "C1"));
  std::string cid(cap.at("capture").at("id").as_string());
  auto one = Req("GET", cid);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(J(one).at("capture").at("transaction").at("amount").as_int64(), 100);
  std::string tid(cap.at("capture").at("transaction").at("id").as_string());
  auto tx = Req("GET", tid);
  ASSERT_EQ(tx.status, 200);
  EXPECT_EQ(J(tx).at("transaction").at("type").as_string(), "Capture");
  for (const char* sub :
       {"prices", "payeeInfo", "payeeinfo", "urls", "metadata", "payers", "settings",
        "transactions", "authorizations", "captures", "cancellations", "reversals"}) {
    auto r = Req("GET", id + "/" + sub);
    EXPECT_EQ(r.status, 200) << sub;
    EXPECT_EQ(J(r).at("payment").as_string(), id) << sub;
  }
  EXPECT_EQ(Req("GET", id + "/").status, 200);  // trailing slash
}

// ---- callbacks
// -----------------------------------------------------------------------------------

TEST_F(ModelTest, CallbackWhenAuthorizationEndsAndRetriesOnTheSchedule) {
  std::string id = Create();
  ASSERT_EQ(Authorize(id, "+4798765432").status, 200);
  EXPECT_TRUE(jobs.empty());  // none while AwaitingActivity
  Advance(cfg.approve_delay_ms);
  ASSERT_EQ(jobs.size(), 1u);
  auto body = json::parse(jobs[0].body);
  EXPECT_EQ(body.at("payment").at("id").as_string(), id);
  EXPECT_NE(std::string(body.at("transaction").at("id").as_string()).find("/authorizations/"),
            std::string::npos);
  EXPECT_EQ(jobs[0].url, "http://127.0.0.1:9/cb");
  int64_t first = now;
  // Cumulative offsets 30, 60, 360, 432, 864, 1265 s after the first attempt.
  std::vector<int64_t> offsets = {30, 60, 360, 432, 864, 1265};
  for (size_t i = 0; i < offsets.size(); ++i) {
    uint64_t attempt = jobs.back().id;
    jobs.clear();
    M().CallbackDone(attempt, 500, "", now);
    ASSERT_TRUE(M().NextDue().has_value());
    EXPECT_EQ(*M().NextDue(), first + offsets[i] * 1000) << i;
    Advance(*M().NextDue() - now - 1);
    EXPECT_TRUE(jobs.empty());
    Advance(1);
    ASSERT_EQ(jobs.size(), 1u) << i;
  }
  M().CallbackDone(jobs.back().id, 0, "refused", now);
  EXPECT_FALSE(M().NextDue().has_value());  // 7 attempts, then PayEx gives up
  auto cbs = Admin("GET", "/admin/callbacks").at("callbacks").as_array();
  ASSERT_EQ(cbs.size(), 1u);
  EXPECT_EQ(cbs[0].at("attempts").as_array().size(), 7u);
  EXPECT_TRUE(cbs[0].at("gaveUp").as_bool());
}

TEST_F(ModelTest, CallbackStopsAfterA2xxAndMaxAttemptsIsAKnob) {
  cfg.callback_max_attempts = 2;
  std::string id = Authorized();
  ASSERT_EQ(jobs.size(), 1u);
  M().CallbackDone(jobs[0].id, 503, "", now);
  jobs.clear();
  Advance(30'000);
  ASSERT_EQ(jobs.size(), 1u);
  M().CallbackDone(jobs[0].id, 503, "", now);
  EXPECT_FALSE(M().NextDue().has_value());
  jobs.clear();
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);  // a capture notifies too
  Advance(0);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_NE(jobs[0].body.find("/captures/"), std::string::npos);
  M().CallbackDone(jobs[0].id, 200, "", now);
  EXPECT_FALSE(M().NextDue().has_value());
}

TEST_F(ModelTest, NoCallbackWithoutCallbackUrl) {
  json::object body = BaseCreate();
  body["payment"].as_object()["urls"].as_object().erase("callbackUrl");
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(body));
  std::string id(J(r).at("payment").at("id").as_string());
  ASSERT_EQ(Authorize(id, "+4799999986").status, 200);
  Advance(0);
  EXPECT_TRUE(jobs.empty());
}

TEST_F(ModelTest, CallbackFaultsLostDuplicatedDelayedReordered) {
  cfg.callback_lost_rate = 1;
  std::string a = Authorized(1500, "PA");
  Advance(0);
  EXPECT_TRUE(jobs.empty());
  model.reset();
  cfg.callback_lost_rate = 0;
  cfg.callback_duplicate_rate = 1;
  a = Authorized(1500, "PA");
  Advance(1);
  EXPECT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].body, jobs[1].body);
  model.reset();
  jobs.clear();
  cfg.callback_duplicate_rate = 0;
  cfg.callback_delay_rate = 1;
  cfg.callback_delay_ms = 5'000;
  a = Authorized(1500, "PA");
  EXPECT_TRUE(jobs.empty());
  Advance(4'999);
  EXPECT_TRUE(jobs.empty());
  Advance(1);
  EXPECT_EQ(jobs.size(), 1u);
  // Reordered: the authorization's callback is held until the capture's has gone.
  model.reset();
  jobs.clear();
  cfg.callback_delay_rate = 0;
  cfg.callback_reorder_rate = 1;
  cfg.callback_delay_ms = 60'000;
  a = Authorized(1500, "PA");
  EXPECT_TRUE(jobs.empty());
  ASSERT_EQ(Money(a, "captures", 100, "C1").status, 200);
  Advance(10);  // the capture's (held too) released the authorization's
  ASSERT_EQ(jobs.size(), 1u);
  Advance(60'000);  // the capture's goes when its hold ends
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_NE(jobs[0].body.find("/authorizations/"), std::string::npos);
  EXPECT_NE(jobs[1].body.find("/captures/"), std::string::npos);
}

TEST_F(ModelTest, ReorderedCallbackOvertakenByTheNextOne) {
  cfg.callback_reorder_rate = 1;
  cfg.callback_delay_ms = 600'000;
  std::string id = Authorized();  // the authorization's callback is held back
  EXPECT_TRUE(jobs.empty());
  Admin("POST", "/admin/config", "{\"callbacks.reorder_rate\":\"0\"}");
  ASSERT_EQ(Money(id, "captures", 100, "C1").status, 200);
  Advance(1);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_NE(jobs[0].body.find("/captures/"), std::string::npos);  // the later event first
  EXPECT_NE(jobs[1].body.find("/authorizations/"), std::string::npos);
  auto cbs = Admin("GET", "/admin/callbacks").at("callbacks").as_array();
  EXPECT_TRUE(cbs[0].at("reordered").as_bool());
}

// ---- faults -------------------------------------------------------------------------------------

TEST_F(ModelTest, FaultsApplyPerEndpointWithCountAndRate) {
  cfg.faults = {ParseFault("capture:drop_after,count=1"), ParseFault("get:error,status=503,rate=0"),
                ParseFault("create:error,status=429,count=1")};
  auto r = Req("POST", "/psp/vipps/payments", json::serialize(BaseCreate()));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(ProblemType(r), "https://api.payex.com/psp/errordetail/toomanyrequests");
  EXPECT_TRUE(Admin("GET", "/admin/payments").at("payments").as_array().empty());  // no effect
  std::string id = Authorized();
  EXPECT_EQ(Req("GET", id).status, 200);  // rate 0 never fires
  r = Money(id, "captures", 100, "C1");
  EXPECT_EQ(r.disposition, Disposition::kDrop);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), 1400);  // the effect happened
  r = Money(id, "captures", 100, "C2");
  EXPECT_EQ(r.disposition, Disposition::kNormal);  // count used up
  EXPECT_EQ(r.status, 200);
}

TEST_F(ModelTest, ResponseFaultsKeepTheEffect) {
  std::string id = Authorized();
  struct Case {
    const char* spec;
    Disposition disposition;
    int status;
    const char* content_type;
  };
  std::vector<Case> cases = {
      {"capture:error_after,count=1", Disposition::kNormal, 500, "application/problem+json"},
      {"capture:bad_json,count=1", Disposition::kNormal, 200, "application/json"},
      {"capture:wrong_content_type,count=1", Disposition::kNormal, 200, "text/html"},
      {"capture:truncated,count=1", Disposition::kTruncate, 200, "application/json"},
      {"capture:hang,count=1,latency=5s", Disposition::kHang, 200, "application/json"},
  };
  int64_t remaining = 1500;
  int n = 0;
  for (const auto& c : cases) {
    Admin("POST", "/admin/faults", std::string("{\"faults\":[\"") + c.spec + "\"]}");
    auto r = Money(id, "captures", 100, "C" + std::to_string(n++));
    EXPECT_EQ(r.disposition, c.disposition) << c.spec;
    EXPECT_EQ(r.status, c.status) << c.spec;
    EXPECT_EQ(r.content_type, c.content_type) << c.spec;
    remaining -= 100;
    EXPECT_EQ(Field(id, "remainingCaptureAmount"), remaining) << c.spec;
  }
  Admin("POST", "/admin/faults",
        "{\"faults\":[\"capture:error,count=1\",\"capture:drop_before,count=1\"]}");
  EXPECT_EQ(Money(id, "captures", 100, "E1").status, 500);
  EXPECT_EQ(Money(id, "captures", 100, "E2").disposition, Disposition::kDrop);
  EXPECT_EQ(Field(id, "remainingCaptureAmount"), remaining);  // before-faults: no effect
}

TEST_F(ModelTest, InitializedFaultOnAuthorization) {
  cfg.faults = {ParseFault("authorize:initialized")};
  std::string id = Create();
  auto r = Authorize(id, "+4798765432");
  EXPECT_EQ(J(r).at("authorization").at("transaction").at("state").as_string(), "Initialized");
  EXPECT_EQ(State(id), "Pending");
  Advance(cfg.approve_delay_ms);
  EXPECT_EQ(State(id), "Pending");  // the payer cannot settle an Initialized transaction
}

// ---- admin
// -----------------------------------------------------------------------------------------

TEST_F(ModelTest, AdminForceOutcomesAndTheLedger) {
  std::string id = Create();
  std::string guid = id.substr(id.rfind('/') + 1);
  ASSERT_EQ(Authorize(id, "+4799999985").status, 200);  // never decides
  auto v = Admin("POST", "/admin/payments/" + guid + "/force",
                 "{\"outcome\":\"Failed\",\"problem\":\"acquirer_card_stolen\"}");
  EXPECT_EQ(v.at("transactions").as_array()[0].at("problem").at("type").as_string(),
            "https://api.payex.com/psp/errordetail/vipps/acquirer_card_stolen");
  ASSERT_EQ(Authorize(id, "+4799999985").status, 200);
  Admin("POST", "/admin/payments" + id.substr(std::string("/psp/vipps/payments").size()) + "/force",
        "{\"outcome\":\"Completed\"}");
  EXPECT_EQ(Field(id, "amount"), 1500);
  EXPECT_TRUE(Admin("GET", "/admin/ledger").at("ok").as_bool());
  // Forcing the failed first authorization Completed too breaks a money rule.
  auto list = Admin("GET", "/admin/payments/" + guid).at("transactions").as_array();
  std::string first(list[0].at("id").as_string());
  Admin("POST", "/admin/payments/" + guid + "/force",
        "{\"outcome\":\"Completed\",\"transaction\":\"" + first + "\"}");
  auto ledger = Admin("GET", "/admin/ledger");
  EXPECT_FALSE(ledger.at("ok").as_bool());
  EXPECT_EQ(ledger.at("violations").as_array()[0].at("rule").as_string(), "one-authorization");
  auto bad = Req("POST", "/admin/payments/" + guid + "/force", "{\"outcome\":\"Maybe\"}", false);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Req("POST", "/admin/payments/nope/force", "{\"outcome\":\"Completed\"}", false).status,
            404);
}

TEST_F(ModelTest, AdminConfigFaultsResetAndRequests) {
  auto v = Admin("POST", "/admin/config",
                 "{\"behaviour.list_items\":\"flat\",\"payer.approve_delay\":\"5s\"}");
  EXPECT_EQ(v.at("knobs").at("behaviour.list_items").as_string(), "flat");
  EXPECT_EQ(M().config().approve_delay_ms, 5000);
  EXPECT_FALSE(v.at("knobs").as_object().contains("merchant.token"));
  auto bad = Req("POST", "/admin/config", "{\"behaviour.list_items\":\"round\"}", false);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Req("POST", "/admin/config", "{\"nope.knob\":\"1\"}", false).status, 400);
  v = Admin("POST", "/admin/faults", "{\"faults\":[\"capture:drop_after,rate=0.5\"]}");
  EXPECT_EQ(v.at("faults").as_array().size(), 1u);
  v = Admin("POST", "/admin/faults", "{\"add\":[\"get:latency,latency=10ms\"]}");
  EXPECT_EQ(v.at("faults").as_array().size(), 2u);
  EXPECT_EQ(Req("POST", "/admin/faults", "{\"faults\":[\"teleport:drop\"]}", false).status, 400);
  Create();
  auto reqs = Admin("GET", "/admin/requests");
  ASSERT_EQ(reqs.at("requests").as_array().size(), 1u);
  EXPECT_EQ(reqs.at("requests").as_array()[0].at("endpoint").as_string(), "create");
  EXPECT_TRUE(reqs.at("requests").as_array()[0].at("authorized").as_bool());
  Admin("POST", "/admin/reset", "{\"config\":true}");
  EXPECT_TRUE(Admin("GET", "/admin/payments").at("payments").as_array().empty());
  EXPECT_EQ(M().config().approve_delay_ms, cfg.approve_delay_ms);
  EXPECT_TRUE(M().config().faults.empty());
  EXPECT_EQ(Req("GET", "/admin/nothing", "", false).status, 404);
}

TEST_F(ModelTest, NothingThrowsOnHostileInput) {
  std::string id = Authorized();
  const char* bodies[] = {"",
                          "null",
                          "{\"transaction\":null}",
                          "{\"transaction\":{\"amount\":\"100\"}}",
                          "{\"transaction\":{\"amount\":1e400}}",
                          "{\"payment\":[]}",
                          "{\"transaction\":{\"amount\":-9223372036854775808,\"vatAmount\":0}}",
                          "\xff\xfe",
                          "{\"transaction\":{\"amount\":18446744073709551615}}"};
  for (const char* b : bodies) {
    for (const char* path : {"/captures", "/reversals", "/cancellations", "/authorizations", ""}) {
      auto r = Req(*path ? "POST" : "PATCH", id + path, b);
      EXPECT_GE(r.status, 400) << path << " " << b;
      EXPECT_LT(r.status, 500) << path << " " << b;
    }
  }
  EXPECT_EQ(Req("POST", "/psp/vipps/payments", "{\"payment\":{\"prices\":[null]}}").status, 400);
  EXPECT_EQ(Req("GET", "/psp/vipps/payments/%00%ff?$expand=%2C%2C").status, 404);
  EXPECT_TRUE(Admin("GET", "/admin/ledger").at("ok").as_bool());
}

// ---- configuration
// ------------------------------------------------------------------------------------

TEST(SimConfigTest, FaultSpecsAndDurations) {
  FaultRule r = ParseFault("capture:error_after,rate=0.25,count=3,status=503");
  EXPECT_EQ(r.endpoint, "capture");
  EXPECT_EQ(r.kind, FaultKind::kErrorAfter);
  EXPECT_DOUBLE_EQ(r.rate, 0.25);
  EXPECT_EQ(r.count, 3);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ParseFault(FormatFault(r)).status, 503);
  EXPECT_EQ(ParseFault("any:latency,latency=250ms").latency_ms, 250);
  EXPECT_THROW(ParseFault("capture"), std::invalid_argument);
  EXPECT_THROW(ParseFault("capture:explode"), std::invalid_argument);
  EXPECT_THROW(ParseFault("capture:error,rate=2"), std::invalid_argument);
  EXPECT_THROW(ParseFault("capture:error,status=99"), std::invalid_argument);
  EXPECT_EQ(ParseDurationMs("2s"), 2000);
  EXPECT_EQ(ParseDurationMs("150ms"), 150);
  EXPECT_EQ(ParseDurationMs("10m"), 600000);
  EXPECT_EQ(ParseDurationMs("1.5"), 1500);
  EXPECT_THROW(ParseDurationMs("soon"), std::invalid_argument);
}

TEST(SimConfigTest, EveryKnobRoundTripsAndIsInTheHelp) {
  SimConfig c;
  std::string help = HelpText();
  for (const Knob& k : Knobs()) {
    EXPECT_NE(help.find(k.name), std::string::npos) << k.name;
    std::string v = k.get(c);
    SimConfig copy;
    EXPECT_NO_THROW(k.set(copy, v)) << k.name << "=" << v;
    EXPECT_EQ(k.get(copy), v) << k.name;
  }
  for (const char* kind :
       {"latency", "error", "drop_before", "drop_after", "error_after", "hang", "initialized",
        "tx_failed", "bad_json", "wrong_content_type", "truncated"})
    EXPECT_NE(help.find(kind), std::string::npos) << kind;
  EXPECT_THROW(SetKnob(c, "server.time_scale", "0"), std::invalid_argument);
  EXPECT_THROW(SetKnob(c, "callbacks.lost_rate", "1.5"), std::invalid_argument);
  EXPECT_THROW(SetKnob(c, "behaviour.settlement", "C"), std::invalid_argument);
  EXPECT_THROW(SetKnob(c, "server.nope", "1"), std::invalid_argument);
}

TEST(SimConfigTest, ArgumentsOverrideAndRejectUnknowns) {
  SimConfig c;
  std::string out;
  const char* argv[] = {"payex-sim",
                        "--port",
                        "0",
                        "--time-scale",
                        "0.01",
                        "--set",
                        "behaviour.duplicate_payee_reference=replay",
                        "--fault",
                        "capture:drop_after,rate=0.1",
                        "--quiet"};
  ASSERT_TRUE(ParseArgs(c, 10, const_cast<char**>(argv), out));
  EXPECT_DOUBLE_EQ(c.time_scale, 0.01);
  EXPECT_EQ(c.duplicate_payee_reference, DuplicateMode::kReplay);
  ASSERT_EQ(c.faults.size(), 1u);
  EXPECT_EQ(c.log_level, 0);
  const char* help[] = {"payex-sim", "--help"};
  EXPECT_FALSE(ParseArgs(c, 2, const_cast<char**>(help), out));
  EXPECT_NE(out.find("KNOBS"), std::string::npos);
  const char* bad[] = {"payex-sim", "--frobnicate"};
  EXPECT_THROW(ParseArgs(c, 2, const_cast<char**>(bad), out), std::invalid_argument);
}

}  // namespace
}  // namespace payorch::sim
