// The callback endpoint and its token as plain functions: every refusal rule, and
// that on_hint runs only for authentic, well-formed callbacks.
#include "http/callbacks.hpp"

#include <gtest/gtest.h>

#include "http/callback_token.hpp"

namespace payorch::http {
namespace {

const std::string kSecret = "callback-secret-of-at-least-32-bytes";

Request Make(const std::string& method, const std::string& target, const std::string& body = "{}",
             const std::string& content_type = "application/json") {
  Request r;
  EXPECT_TRUE(ParseTarget(target, r)) << target;
  r.method = method;
  r.body = body;
  r.content_type = content_type;
  r.remote_address = "127.0.0.1";
  return r;
}

// The callbackUrl path the PayEx client builds (payex/mapping.cpp): unreserved
// characters kept, everything else %XX.
std::string Url(const std::string& order_id, const std::string& token) {
  return "/callbacks/payex/" + PercentEncode(order_id) + "?token=" + token;
}
std::string Url(const std::string& order_id) {
  return Url(order_id, CallbackToken(kSecret, order_id));
}

// HMAC-SHA256 as RFC 4231 (test case 2) and Python's hmac give it, base64url without
// padding; also after the key changed in between (the context is kept per secret).
TEST(CallbackTokenTest, IsHmacSha256OfTheOrderIdInBase64Url) {
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(CallbackToken("Jefe", "what do ya want for nothing?"),
              "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
    EXPECT_EQ(CallbackToken("Jefe", ""), "kjWYym1krypdunnc0CGooP5cX1V1Ga2q8K1TLUUG3TA");
    EXPECT_EQ(CallbackToken("k2", "order-1"), "TbTy6_KFhmyxhm_c9RMFd_ufTiGfj2ivT6e0t3lXK8A");
    EXPECT_EQ(CallbackToken("", ""), "thNnmggU2ex3L5XXeMNfxf8Wl8STcVZTxscSFEKSxa0");
  }
}

class CallbackTest : public ::testing::Test {
 protected:
  Response Call(const Request& r) {
    return HandleCallback(r, options_, [this](const std::string& id) {
      hints_.push_back(id);
      return elsewhere_ ? HintResult::kElsewhere
             : known_   ? HintResult::kAccepted
                        : HintResult::kUnknownPayment;
    });
  }
  // A refusal: the status, the reason in the body, and no hint.
  void ExpectRefused(const Request& r, int status, const std::string& reason) {
    Response out = Call(r);
    EXPECT_EQ(out.status, status) << r.target;
    EXPECT_NE(out.body.find(reason), std::string::npos) << out.body;
    EXPECT_TRUE(hints_.empty()) << r.target;
  }

  CallbackOptions options_{.secret = kSecret};
  bool known_ = true;
  bool elsewhere_ = false;
  std::vector<std::string> hints_;
};

TEST_F(CallbackTest, AuthenticCallbackIsAcceptedWithAnEmptyBody) {
  Response out = Call(Make("POST", Url("order-1"), R"({"paymentOrder":{"id":"/psp/po/1"}})"));
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.body, "");
  EXPECT_EQ(hints_, std::vector<std::string>{"order-1"});

  // The older payment/transaction shape is as good.
  Response older = Call(Make("POST", Url("order-2"),
                             R"({"payment":{"id":"/psp/vipps/payments/9","number":123},)"
                             R"("transaction":{"id":"/psp/vipps/payments/9/transactions/1",)"
                             R"("number":456}})"));
  EXPECT_EQ(older.status, 200);
  EXPECT_EQ(hints_, (std::vector<std::string>{"order-1", "order-2"}));
}

TEST_F(CallbackTest, ContentTypeIsNotCheckedStrictly) {
  for (std::string ct : {"application/json", "application/json; charset=utf-8", "", "text/plain"}) {
    EXPECT_EQ(Call(Make("POST", Url("o"), "{}", ct)).status, 200) << ct;
  }
  EXPECT_EQ(hints_.size(), 4u);
}

TEST_F(CallbackTest, WrongMethodIs405WithAllow) {
  for (std::string method : {"GET", "PUT", "HEAD", "DELETE", "post"}) {
    Response out = Call(Make(method, Url("order-1")));
    EXPECT_EQ(out.status, 405) << method;
    ASSERT_EQ(out.headers.size(), 1u);
    EXPECT_EQ(out.headers[0].first, "Allow");
    EXPECT_EQ(out.headers[0].second, "POST");
    EXPECT_NE(out.body.find("method_not_allowed"), std::string::npos);
  }
  EXPECT_TRUE(hints_.empty());
}

TEST_F(CallbackTest, PathWithoutExactlyOneOrderIdIs404) {
  std::string token = "?token=" + CallbackToken(kSecret, "a");
  for (std::string target :
       {"/callbacks/payex/" + token, "/callbacks/payex" + token, "/callbacks/payex/a/" + token,
        "/callbacks/payex/a/b" + token, "/callbacks/payex//a" + token, "/other/a" + token,
        "/callbacks/payexa" + token, "/" + token}) {
    ExpectRefused(Make("POST", target), 404, "not_found");
  }
  // A bad escape in the id (the server answers 400 before; the function alone 404).
  Request bad_escape = Make("POST", "/callbacks/payex/a" + token);
  bad_escape.target = "/callbacks/payex/%zz" + token;
  ExpectRefused(bad_escape, 404, "not_found");
}

TEST_F(CallbackTest, MissingOrBadTokenIs401WithOneAnswer) {
  Response missing = Call(Make("POST", "/callbacks/payex/order-1"));
  Response bad = Call(Make("POST", Url("order-1", "not-a-token")));
  Response other_order = Call(Make("POST", Url("order-1", CallbackToken(kSecret, "order-2"))));
  Response other_secret = Call(Make("POST", Url("order-1", CallbackToken("other", "order-1"))));
  std::string good = CallbackToken(kSecret, "order-1");
  std::string flipped = good;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  Response one_char = Call(Make("POST", Url("order-1", flipped)));
  Response truncated = Call(Make("POST", Url("order-1", good.substr(0, 42))));
  Response twice = Call(Make("POST", Url("order-1", good) + "&token=" + good));
  Response empty = Call(Make("POST", Url("order-1", "")));
  Response other_name = Call(Make("POST", "/callbacks/payex/order-1?Token=" + good));
  for (const Response* r : {&missing, &bad, &other_order, &other_secret, &one_char, &truncated,
                            &twice, &empty, &other_name}) {
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->body, missing.body);  // nothing tells the cases apart
    EXPECT_EQ(r->content_type, missing.content_type);
  }
  EXPECT_NE(missing.body.find("bad_token"), std::string::npos);
  EXPECT_TRUE(hints_.empty());
  // The good token, for contrast.
  EXPECT_EQ(Call(Make("POST", Url("order-1", good))).status, 200);
}

TEST_F(CallbackTest, TokenIsCheckedBeforeTheBodyAndTheOrder) {
  known_ = false;
  // A forger with a bad body or an unknown order learns only "bad token".
  ExpectRefused(Make("POST", Url("order-1", "forged"), "not json"), 401, "bad_token");
  ExpectRefused(Make("POST", Url("no-such-order", "forged")), 401, "bad_token");
  ExpectRefused(Make("POST", Url("order-1", "forged"), std::string(100000, 'x')), 401, "bad_token");
}

TEST_F(CallbackTest, EmptySecretRefusesEverything) {
  options_.secret.clear();
  ExpectRefused(Make("POST", Url("order-1", CallbackToken("", "order-1"))), 401, "bad_token");
}

TEST_F(CallbackTest, BodyMustBeAJsonObject) {
  for (std::string body :
       {"", "not json", "{", "[1,2]", "\"text\"", "42", "null", "{\"a\":1} trailing", "{\"a\":}"}) {
    ExpectRefused(Make("POST", Url("order-1"), body), 400, "malformed_body");
  }
  options_.max_body_bytes = 32;
  ExpectRefused(Make("POST", Url("order-1"), "{\"pad\":\"" + std::string(40, 'p') + "\"}"), 413,
                "body_too_large");
}

TEST_F(CallbackTest, UnknownOrderIs404AfterTheHint) {
  known_ = false;
  Response out = Call(Make("POST", Url("order-9")));
  EXPECT_EQ(out.status, 404);
  EXPECT_NE(out.body.find("unknown_payment"), std::string::npos);
  EXPECT_EQ(hints_, std::vector<std::string>{"order-9"});
}

TEST_F(CallbackTest, OrderOfAPartitionServedElsewhereIs503WithRetryAfter) {
  elsewhere_ = true;
  Response out = Call(Make("POST", Url("order-7")));
  EXPECT_EQ(out.status, 503);
  EXPECT_NE(out.body.find("partition_elsewhere"), std::string::npos);
  bool retry_after = false;
  for (const auto& [name, value] : out.headers) retry_after |= name == "Retry-After" && value == "1";
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(hints_, std::vector<std::string>{"order-7"});
}

TEST_F(CallbackTest, PercentEncodedOrderIdsAreDecodedOnce) {
  // '/' and '%' and '+' and non-ASCII inside an id: one segment, decoded exactly once.
  for (std::string id : {"shop/order/1", "50%off", "a+b c", "ordre-\xC3\xB8", "~._-"}) {
    hints_.clear();
    Response out = Call(Make("POST", Url(id)));
    EXPECT_EQ(out.status, 200) << id;
    EXPECT_EQ(hints_, std::vector<std::string>{id});
  }
  // Escapes in lower case decode the same.
  hints_.clear();
  EXPECT_EQ(
      Call(Make("POST", "/callbacks/payex/a%2fb?token=" + CallbackToken(kSecret, "a/b"))).status,
      200);
  EXPECT_EQ(hints_, std::vector<std::string>{"a/b"});
  // The token is over the decoded id, not its encoding.
  hints_.clear();
  ExpectRefused(Make("POST", Url("a/b", CallbackToken(kSecret, "a%2Fb"))), 401, "bad_token");
}

TEST_F(CallbackTest, PrefixIsConfigurable) {
  options_.path_prefix = "/cb/";
  EXPECT_EQ(Call(Make("POST", "/cb/o1?token=" + CallbackToken(kSecret, "o1"))).status, 200);
  EXPECT_EQ(hints_, std::vector<std::string>{"o1"});
  hints_.clear();
  ExpectRefused(Make("POST", "/callbacks/payex/o2?token=" + CallbackToken(kSecret, "o2")), 404,
                "not_found");
}

// RFC 4231 HMAC-SHA256 test cases; the expected values are the RFC's hex digests
// written in base64url without padding (computed outside this code).
TEST(CallbackToken, MatchesRfc4231Vectors) {
  // Test case 2: 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
  EXPECT_EQ(CallbackToken("Jefe", "what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
  // Test case 1: b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7
  EXPECT_EQ(CallbackToken(std::string(20, '\x0b'), "Hi There"),
            "sDRMYdjbOFNcqK_OrwvxK4gdwgDJgz2nJuk3bC4yz_c");
}

TEST(CallbackToken, IsUrlSafeAndVerifies) {
  std::string token = CallbackToken(kSecret, "order-1");
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_"),
            std::string::npos);
  EXPECT_EQ(CallbackToken(kSecret, "order-1"), token);  // deterministic
  EXPECT_NE(CallbackToken(kSecret, "order-2"), token);
  EXPECT_TRUE(VerifyCallbackToken(kSecret, "order-1", token));
  EXPECT_FALSE(VerifyCallbackToken(kSecret, "order-2", token));
  EXPECT_FALSE(VerifyCallbackToken("other-secret", "order-1", token));
  EXPECT_FALSE(VerifyCallbackToken(kSecret, "order-1", token + "A"));
  EXPECT_FALSE(VerifyCallbackToken(kSecret, "order-1", token.substr(1)));
  EXPECT_FALSE(VerifyCallbackToken(kSecret, "order-1", ""));
  std::string last_changed = token;
  last_changed.back() = last_changed.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyCallbackToken(kSecret, "order-1", last_changed));
  EXPECT_FALSE(VerifyCallbackToken("", "order-1", CallbackToken("", "order-1")));
}

TEST(Message, ParseTargetDecodesPathAndQuery) {
  Request r;
  ASSERT_TRUE(ParseTarget("/a%2Fb/c+d?k=v+w&k=%26&e&=x", r));
  EXPECT_EQ(r.path, "/a/b/c+d");
  EXPECT_EQ(r.target, "/a%2Fb/c+d?k=v+w&k=%26&e&=x");
  EXPECT_EQ(r.query, (std::multimap<std::string, std::string>{
                         {"k", "v w"}, {"k", "&"}, {"e", ""}, {"", "x"}}));
  EXPECT_FALSE(ParseTarget("*", r));
  EXPECT_FALSE(ParseTarget("", r));
  EXPECT_FALSE(ParseTarget("/%", r));
  EXPECT_FALSE(ParseTarget("/%4", r));
  EXPECT_FALSE(ParseTarget("/a%00b", r));
  EXPECT_FALSE(ParseTarget("/?q=%G1", r));
  ASSERT_TRUE(ParseTarget("HTTP://host:8080/x/y?z=1", r));
  EXPECT_EQ(r.path, "/x/y");
  ASSERT_TRUE(ParseTarget("http://host", r));
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(PercentEncode("a b/c~\xC3\xA6"), "a%20b%2Fc~%C3%A6");
  EXPECT_EQ(PercentDecode(PercentEncode("any \x01 thing%")), "any \x01 thing%");
}

}  // namespace
}  // namespace payorch::http
