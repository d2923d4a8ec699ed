// Unit tests of the domain's helpers: MSISDN rules, masking, payeeReferences,
// event ids.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "domain/decide.hpp"

namespace payorch::domain {
namespace {

TEST(Msisdn, NormalizesNorwegianForms) {
  EXPECT_EQ(NormalizeMsisdn("+4798765432"), "+4798765432");
  EXPECT_EQ(NormalizeMsisdn("+47 987 65 432"), "+4798765432");
  EXPECT_EQ(NormalizeMsisdn("0047 98765432"), "+4798765432");
  EXPECT_EQ(NormalizeMsisdn("98765432"), "+4798765432");
  EXPECT_EQ(NormalizeMsisdn("987-65-432"), "+4798765432");
}

TEST(Msisdn, RefusesEverythingElse) {
  for (const char* bad : {"", "+46701234567", "+479876543", "+47987654321", "9876543",
                          "+47abcdefgh", "0046 98765432", "++4798765432", "4798765432"})
    EXPECT_FALSE(NormalizeMsisdn(bad)) << bad;
}

TEST(Msisdn, MaskedKeepsOnlyCountryAndLastFour) {
  EXPECT_EQ(MaskMsisdn("+4798765432"), "+47****5432");
  EXPECT_EQ(MaskMsisdn("12"), "****");
}

TEST(Utf8, CountsCodePointsAndRefusesInvalid) {
  EXPECT_EQ(Utf8Length("abc"), 3);
  EXPECT_EQ(Utf8Length("blåbærsyltetøy"), 14);
  EXPECT_EQ(Utf8Length("\xe2\x82\xac"), 1);
  EXPECT_EQ(Utf8Length("\xc3"), -1);
  EXPECT_EQ(Utf8Length("\x80"), -1);
}

TEST(PayeeReference, ThirtyAlphanumericsStableAndDistinct) {
  std::regex shape("^[A-Za-z0-9]{30}$");
  std::set<std::string> seen;
  for (int order = 0; order < 200; ++order)
    for (OpKind kind : {OpKind::kCreate, OpKind::kCapture, OpKind::kCancel, OpKind::kReverse})
      for (const char* ref : {"", "s1", "s2"})
        for (uint32_t attempt = 0; attempt < 3; ++attempt) {
          std::string r = PayeeReference("order-" + std::to_string(order), kind, ref, attempt);
          EXPECT_TRUE(std::regex_match(r, shape)) << r;
          EXPECT_TRUE(seen.insert(r).second) << "collision " << r;
          EXPECT_EQ(r, PayeeReference("order-" + std::to_string(order), kind, ref, attempt));
        }
  // Field boundaries matter: ("ab","c") is not ("a","bc").
  EXPECT_NE(PayeeReference("ab", OpKind::kCapture, "c", 0),
            PayeeReference("a", OpKind::kCapture, "bc", 0));
  // A known value pins the derivation: a change would orphan in-doubt operations
  // across an upgrade, so it must be deliberate.
  EXPECT_EQ(PayeeReference("order-1", OpKind::kCapture, "s1", 0).substr(0, 1), "C");
}

TEST(PaymentEventId, StablePerOrderAndSequence) {
  EXPECT_EQ(PaymentEventId("o-1", 3), "pe:o-1:3");
  EXPECT_NE(PaymentEventId("o-1", 3), PaymentEventId("o-1", 4));
}

TEST(Invariants, DetectBrokenMoneyRules) {
  Payment p;
  p.phase = Phase::kAuthorized;
  p.balance = {1000, 600, 400, 600};
  EXPECT_EQ(CheckInvariants(p), "");
  p.balance.captured = 1001;
  EXPECT_NE(CheckInvariants(p), "");
  p.balance = {1000, 600, 401, 0};
  EXPECT_NE(CheckInvariants(p), "");
  p.balance = {1000, 600, 0, 601};
  EXPECT_NE(CheckInvariants(p), "");
}

}  // namespace
}  // namespace payorch::domain
