// Liberal parsing, request bodies and outcome classification, without sockets.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "payex/mapping.hpp"

namespace payorch::payex {
namespace {
namespace json = boost::json;
using domain::PaymentState;
using domain::ResultClass;
using domain::TxState;
using domain::TxType;

constexpr const char* kPayment = R"({
  "payment": {
    "id": "/psp/vipps/payments/84b9",
    "number": 72100003079,
    "state": "ready",
    "amount": "1500",
    "remainingCaptureAmount": 1500.0,
    "remainingCancellationAmount": 1500,
    "somethingNew": {"deep": [1, 2, 3]},
    "authorizations": {
      "id": "/psp/vipps/payments/84b9/authorizations",
      "authorizationList": [
        {"vippsTransactionId": "5619328800", "mobileNumber": "+4798765432",
         "id": "/psp/vipps/payments/84b9/authorizations/t2",
         "transaction": {"id": "/psp/vipps/payments/84b9/transactions/t2", "created": "2018-09-05T15:01:41.86Z",
                         "type": "Authorization", "state": "Completed", "number": 72100003091,
                         "amount": 1500, "vatAmount": 0, "payeeReference": "P1"}},
        {"id": "/psp/vipps/payments/84b9/transactions/t1", "created": "2018-09-05T15:01:39.8658084Z",
         "type": "Authorization", "state": "Failed", "number": 72100003090, "amount": 1500,
         "payeeReference": "P1", "failedReason": "declined",
         "problem": {"type": "https://api.payex.com/psp/errordetail/vipps/VIPPS_DECLINED", "title": "Declined",
                     "status": 400, "detail": "no", "problems": [{"name": "X", "description": "y"}]}}
      ]
    },
    "captures": {"id": "/psp/vipps/payments/84b9/captures", "captureList": [
      {"id": "/psp/vipps/payments/84b9/transactions/c1", "type": "Capture", "state": "Completed",
       "created": "2018-09-05T15:03:56.5180218Z", "amount": 9223372036854775807, "payeeReference": "C1"}]},
    "transactions": {"id": "/psp/vipps/payments/84b9/transactions", "transactionList": [
      {"id": "/psp/vipps/payments/84b9/transactions/c1", "type": "Capture", "state": "Completed",
       "created": "2018-09-05T15:03:56.5180218Z", "amount": 1, "payeeReference": "C1"},
      {"id": "/psp/vipps/payments/84b9/transactions/x9", "type": "Initialization", "state": "Initialized",
       "created": "2018-09-05T15:04:00Z"}]},
    "reversals": {"id": "/psp/vipps/payments/84b9/reversals"}
  },
  "operations": [
    {"method": "POST", "href": "https://api.example/psp/vipps/payments/84b9/captures", "rel": "Create-Capture"},
    {"method": "POST", "href": "https://api.example/psp/vipps/payments/84b9/authorizations", "rel": "direct-authorization"},
    {"method": "PATCH", "href": "https://api.example/psp/vipps/payments/84b9", "rel": "update-payment-abort"},
    {"rel": "weird-without-href"},
    "not an object"
  ]
})";

TEST(PayexMappingTest, PaymentResourceParsesLiberally) {
  auto r = ParsePaymentResource(kPayment);
  ASSERT_TRUE(r) << r.error;
  const auto& s = r.value->snapshot;
  EXPECT_EQ(s.payment_id, "/psp/vipps/payments/84b9");
  EXPECT_EQ(s.state, PaymentState::kReady);  // case-insensitive
  EXPECT_EQ(s.amount, 1500);                 // from a string
  EXPECT_EQ(s.remaining_capture, 1500);      // from an integral double
  EXPECT_EQ(s.remaining_reversal, 0);        // missing reads as 0
  EXPECT_EQ(r.value->number, 72100003079);
  ASSERT_EQ(s.transactions.size(), 4u);
  // Oldest first (t1 before t2 by created; their list order was the reverse).
  EXPECT_EQ(s.transactions[0].id, "/psp/vipps/payments/84b9/transactions/t1");
  EXPECT_EQ(s.transactions[0].state, TxState::kFailed);
  ASSERT_TRUE(s.transactions[0].problem);
  EXPECT_EQ(s.transactions[0].problem->status, 400);
  EXPECT_EQ(s.transactions[0].problem->problems.size(), 1u);
  EXPECT_EQ(s.transactions[1].id, "/psp/vipps/payments/84b9/transactions/t2");
  EXPECT_EQ(s.transactions[1].type, TxType::kAuthorization);
  EXPECT_EQ(s.transactions[1].state, TxState::kCompleted);
  EXPECT_EQ(s.transactions[1].number, 72100003091);
  // The capture appears once (typed list wins over /transactions), amount int64 max.
  EXPECT_EQ(s.transactions[2].type, TxType::kCapture);
  EXPECT_EQ(s.transactions[2].amount, 9223372036854775807);
  EXPECT_EQ(s.transactions[3].type, TxType::kOther);  // unknown types are tolerated
  EXPECT_EQ(s.transactions[3].state, TxState::kInitialized);
  EXPECT_TRUE(s.can_authorize);  // direct-authorization counts
  EXPECT_TRUE(s.can_abort);
  EXPECT_EQ(r.value->operations.size(), 4u);
  const Operation* cap = FindOperation(r.value->operations, {"create-capture"});
  ASSERT_NE(cap, nullptr);
  EXPECT_EQ(cap->href, "https://api.example/psp/vipps/payments/84b9/captures");
  EXPECT_EQ(
      FindOperation(r.value->operations, {"create-authorization", "direct-authorization"})->rel,
      "direct-authorization");
  EXPECT_EQ(FindOperation(r.value->operations, {"create-reversal"}), nullptr);
}

TEST(PayexMappingTest, PaymentResourceErrorsAreValues) {
  for (const char* body : {"", "{", "[]", "{\"payment\":\"/psp/vipps/payments/1\"}",
                           "{\"payment\":{}}", "{\"payment\":{\"id\":7}}x", "\xff", "null"}) {
    auto r = ParsePaymentResource(body);
    EXPECT_FALSE(r) << body;
    EXPECT_FALSE(r.error.empty()) << body;
  }
  auto ok =
      ParsePaymentResource(R"({"payment":{"id":"/psp/vipps/payments/1","state":"Teleported"}})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.value->snapshot.state, PaymentState::kUnknown);
  EXPECT_FALSE(ok.value->snapshot.can_authorize);
}

TEST(PayexMappingTest, TransactionResourceWrappedOrFlat) {
  auto wrapped =
      ParseTransactionResource(R"({"payment":"/p/1","authorization":{"msisdn":"+4798765432",
     "id":"/p/1/authorizations/t","transaction":{"id":"/p/1/transactions/t","state":"AwaitingActivity",
     "type":"Authorization","amount":1000,"number":"1234567890"}}})");
  ASSERT_TRUE(wrapped) << wrapped.error;
  EXPECT_EQ(wrapped.value->id, "/p/1/transactions/t");
  EXPECT_EQ(wrapped.value->state, TxState::kAwaitingActivity);
  EXPECT_EQ(wrapped.value->number, 1234567890);  // "number" as a string (api §2.6)
  auto flat = ParseTransactionResource(R"({"payment":"/p/1","capture":{"id":"/p/1/captures/c",
     "state":"Completed","amount":500,"vatAmount":100,"payeeReference":"C1"}})");
  ASSERT_TRUE(flat) << flat.error;
  EXPECT_EQ(flat.value->id, "/p/1/captures/c");
  EXPECT_EQ(flat.value->type, TxType::kCapture);  // from the wrapper's name
  EXPECT_EQ(flat.value->vat_amount, 100);
  EXPECT_EQ(flat.value->payee_reference, "C1");
  auto failed = ParseTransactionResource(
      R"({"reversal":{"transaction":{"id":"/r","state":"Failed","failedReason":"nope"}}})");
  ASSERT_TRUE(failed);
  ASSERT_TRUE(failed.value->problem);
  EXPECT_EQ(failed.value->problem->title, "nope");
  EXPECT_FALSE(ParseTransactionResource(R"({"payment":"/p/1"})"));
  EXPECT_FALSE(ParseTransactionResource(R"({"capture":{"state":"Completed"}})"));  // no id
}

TEST(PayexMappingTest, TransactionListBothShapes) {
  auto flat = ParseTransactionList(R"({"payment":"/p","transactions":{"transactionList":[
      {"id":"/p/transactions/a","type":"Authorization","state":"Completed","number":2},
      {"id":"/p/transactions/b","type":"Capture","state":"Completed","number":3}]}})");
  ASSERT_TRUE(flat) << flat.error;
  ASSERT_EQ(flat.value->size(), 2u);
  EXPECT_EQ((*flat.value)[1].type, TxType::kCapture);
  auto wrapped = ParseTransactionList(R"({"payment":"/p","reversals":{"reversalList":[
      {"id":"/p/reversals/r","transaction":{"id":"/p/transactions/r","state":"Completed","amount":5}}]}})");
  ASSERT_TRUE(wrapped);
  EXPECT_EQ((*wrapped.value)[0].type, TxType::kReversal);
  EXPECT_EQ((*wrapped.value)[0].amount, 5);
  EXPECT_FALSE(ParseTransactionList(R"({"payment":"/p"})"));
}

TEST(PayexMappingTest, ProblemsBareOrWrapped) {
  auto bare =
      ParseProblem(R"({"type":"https://api.payex.com/psp/errordetail/inputerror","title":"t",
      "status":400,"detail":"d","instance":"i","action":"RetryNewData",
      "problems":[{"name":"Transaction.Amount","description":"too much"}]})");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare.value->type, "https://api.payex.com/psp/errordetail/inputerror");
  ASSERT_EQ(bare.value->problems.size(), 1u);
  EXPECT_EQ(bare.value->problems[0].first, "Transaction.Amount");
  auto wrapped = ParseProblem(
      R"({"problem":{"type":"x/acquirererror","title":"Operation failed","status":403}})");
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(wrapped.value->status, 403);
  EXPECT_FALSE(ParseProblem("{}"));
  EXPECT_FALSE(ParseProblem("<html>"));
}

TEST(PayexMappingTest, RequestBodies) {
  domain::PayexCall call;
  call.kind = domain::OpKind::kCreate;
  call.order_id = "order-1";
  call.payee_reference = "P123";
  domain::PurchaseRequested p;
  p.amount = 1500;
  p.vat_amount = 300;
  p.currency = "NOK";
  p.description = "Vipps Test";
  p.payer_reference = "AB1234";
  p.metadata = {{"k", "v"}};
  call.purchase = p;
  ClientOptions o;
  o.payee_id = "5cabf558-5283-482f-b252-4d58e06f6f3b";
  o.payee_name = "Shop";
  o.host_urls = {"https://shop.example"};
  o.callback_url_base = "https://cb.example/payex/callback";
  o.callback_token = [](const std::string& order) { return "tok+" + order; };
  std::string url = CallbackUrlFor(o, call.order_id);
  EXPECT_EQ(url, "https://cb.example/payex/callback/order-1?token=tok%2Border-1");
  auto v = json::parse(BuildCreateBody(call, o, url));
  const auto& pay = v.at("payment");
  EXPECT_EQ(pay.at("operation").as_string(), "Purchase");
  EXPECT_EQ(pay.at("intent").as_string(), "Authorization");
  EXPECT_EQ(pay.at("currency").as_string(), "NOK");
  EXPECT_EQ(pay.at("prices").as_array()[0].at("type").as_string(), "Vipps");
  EXPECT_EQ(pay.at("prices").as_array()[0].at("amount").as_int64(), 1500);
  EXPECT_EQ(pay.at("prices").as_array()[0].at("vatAmount").as_int64(), 300);
  EXPECT_EQ(pay.at("payerReference").as_string(), "AB1234");
  EXPECT_EQ(pay.at("userAgent").as_string(), o.default_payer_user_agent);
  EXPECT_EQ(pay.at("language").as_string(), "nb-NO");
  EXPECT_EQ(pay.at("urls").at("callbackUrl").as_string(), url);
  EXPECT_EQ(pay.at("urls").at("hostUrls").as_array()[0].as_string(), "https://shop.example");
  EXPECT_EQ(pay.at("payeeInfo").at("payeeId").as_string(), o.payee_id);
  EXPECT_EQ(pay.at("payeeInfo").at("payeeReference").as_string(), "P123");
  EXPECT_EQ(pay.at("payeeInfo").at("orderReference").as_string(), "order-1");
  EXPECT_EQ(pay.at("metadata").at("k").as_string(), "v");
  o.payer_reference_in_payer = true;
  v = json::parse(BuildCreateBody(call, o, ""));
  EXPECT_EQ(v.at("payment").at("payer").at("payerReference").as_string(), "AB1234");
  EXPECT_FALSE(v.at("payment").at("urls").as_object().contains("callbackUrl"));

  EXPECT_EQ(BuildAuthorizeBody("+4798765432", MsisdnField::kMsisdn),
            R"({"transaction":{"msisdn":"+4798765432"}})");
  EXPECT_EQ(BuildAuthorizeBody("+4798765432", MsisdnField::kMobileNumber),
            R"({"transaction":{"mobileNumber":"+4798765432"}})");
  EXPECT_EQ(json::parse(BuildAuthorizeBody("+4798765432", MsisdnField::kBoth))
                .at("transaction")
                .as_object()
                .size(),
            2u);
  domain::PayexCall cap;
  cap.amount = 9007199254740993;  // beyond double precision: must stay exact
  cap.vat_amount = 0;
  cap.description = "ship";
  cap.payee_reference = "C1";
  EXPECT_NE(BuildCaptureBody(cap).find("9007199254740993"), std::string::npos);
  EXPECT_EQ(json::parse(BuildCancelBody(cap)).at("transaction").as_object().size(), 2u);
  EXPECT_EQ(BuildAbortBody(""),
            R"({"payment":{"operation":"Abort","abortReason":"CancelledByConsumer"}})");
}

Exchange Answered(int status, bool effectful, const std::string& ct = "application/problem+json",
                  const std::string& body = R"({"type":"t","title":"x","status":0})") {
  Exchange e;
  e.transport = Transport::kAnswered;
  e.status = status;
  e.effectful = effectful;
  e.content_type = ct;
  e.body = body;
  return e;
}

TEST(PayexMappingTest, ClassificationFollowsDesign4) {
  EXPECT_EQ(Classify(Answered(200, true)).result, ResultClass::kSuccess);
  EXPECT_EQ(Classify(Answered(400, true)).result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(Classify(Answered(403, false)).result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(Classify(Answered(401, false)).result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(Classify(Answered(404, false)).result, ResultClass::kTransient);  // notfound on a read
  EXPECT_EQ(Classify(Answered(404, true)).result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(Classify(Answered(429, true)).result, ResultClass::kTransient);
  EXPECT_EQ(Classify(Answered(500, true)).result, ResultClass::kInDoubt);
  EXPECT_EQ(Classify(Answered(502, true)).result, ResultClass::kInDoubt);
  EXPECT_EQ(Classify(Answered(503, false)).result, ResultClass::kTransient);
  auto c = Classify(Answered(
      400, true, "application/json",
      R"({"type":"https://api.payex.com/psp/errordetail/inputerror","title":"t","detail":"d",
                                 "problems":[{"name":"Transaction.Amount","description":"x"}]})"));
  ASSERT_TRUE(c.problem);
  EXPECT_EQ(c.problem->type, "https://api.payex.com/psp/errordetail/inputerror");
  EXPECT_EQ(c.problem->status, 400);  // filled from HTTP when the body has none
  EXPECT_EQ(c.problem->problems.size(), 1u);
  c = Classify(Answered(403, true, "text/html", "<html>denied</html>"));
  EXPECT_EQ(c.result, ResultClass::kDefiniteFailure);
  EXPECT_EQ(c.problem->type, problem_type::kHttpStatus);
  for (Transport t :
       {Transport::kLostAfterSend, Transport::kTimeoutAfterSend, Transport::kBadResponse}) {
    Exchange e;
    e.transport = t;
    e.effectful = true;
    EXPECT_EQ(Classify(e).result, ResultClass::kInDoubt);
    e.effectful = false;
    EXPECT_EQ(Classify(e).result, ResultClass::kTransient);
  }
  Exchange e;
  e.transport = Transport::kNotSent;
  e.effectful = true;
  EXPECT_EQ(Classify(e).result, ResultClass::kTransient);
  EXPECT_EQ(ClassifyUnusableBody(Answered(200, true), "x").result, ResultClass::kInDoubt);
  EXPECT_EQ(ClassifyUnusableBody(Answered(200, false), "x").result, ResultClass::kTransient);
}

TEST(PayexMappingTest, ContentTypesAndSessionIds) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("application/problem+json"));
  EXPECT_TRUE(IsJsonContentType("application/json;version=3.1"));
  EXPECT_FALSE(IsJsonContentType("text/html"));
  EXPECT_FALSE(IsJsonContentType(""));
  std::string a = NewSessionId(), b = NewSessionId();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
}

}  // namespace
}  // namespace payorch::payex
