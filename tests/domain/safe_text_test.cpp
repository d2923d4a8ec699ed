// domain::SafeDetail: what outsiders write (parser messages, PayEx problems, dead
// letters' headers) reaches logs, headers and terminals only masked, on one line,
// bounded, as valid UTF-8.
#include <gtest/gtest.h>

#include <string>

#include "domain/order_rules.hpp"
#include "domain/safe_text.hpp"

namespace payorch::domain {
namespace {

TEST(SafeDetail, MasksNumbersEvenWhenANewlineSplitsThem) {
  EXPECT_EQ(SafeDetail("call +4798765432"), "call +47****5432");
  // The newline becomes a space first, so the two halves are one number.
  EXPECT_EQ(SafeDetail("4798\n765432"), "****5432");
  EXPECT_TRUE(IsSafeDetail(SafeDetail("4798\n765432")));
  EXPECT_FALSE(IsSafeDetail("4798 765432"));
}

TEST(SafeDetail, ControlCharactersAndBrokenUtf8NeverPass) {
  EXPECT_EQ(SafeDetail("red \x1b[31mtext\x7f"), "red  [31mtext ");
  EXPECT_EQ(SafeDetail("8-bit CSI \xc2\x9b" "2J"), "8-bit CSI  2J");
  EXPECT_EQ(SafeDetail("bad \xff\xfe utf8 \xe2\x82"), "bad ?? utf8 ??");
  EXPECT_EQ(SafeDetail("kroner \xc3\xb8re \xe2\x82\xac"), "kroner \xc3\xb8re \xe2\x82\xac");
  EXPECT_EQ(SafeDetail("overlong \xc0\xaf surrogate \xed\xa0\x80"), "overlong ?? surrogate ???");
  for (const char* bad : {"a\nb", "\x1b", "\xff", "\xc2\x85"}) EXPECT_FALSE(IsSafeDetail(bad)) << bad;
}

TEST(SafeDetail, OneMegabyteIsCutOnACharacterBoundaryAndSaysItsSize) {
  std::string big(1 << 20, 'x');
  big.replace(299, 2, "\xc3\xb8");  // a two-byte character across the cut
  const std::string out = SafeDetail(big);
  EXPECT_EQ(out, std::string(299, 'x') + "... (1048576 bytes)");
  EXPECT_TRUE(IsSafeDetail(out));
  // Past ten million bytes the size is in MiB, so that it is never masked as a number.
  const std::string huge = SafeDetail(std::string(20 << 20, 'y'), 10);
  EXPECT_EQ(huge, "yyyyyyyyyy... (20 MiB)");
  EXPECT_TRUE(IsSafeDetail(huge, 10));
}

TEST(SafeDetail, WhatItMakesIsAlwaysSafe) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  all += "+47 987 65 432 2026-11-24 12345678";
  for (size_t max : {0, 1, 7, 64, 300, 2000}) {
    EXPECT_TRUE(IsSafeDetail(SafeDetail(all, max), max)) << max;
    EXPECT_LE(SafeDetail(all, max).size(), max + 32);
  }
  EXPECT_EQ(SafeDetail("at 2026-11-24"), "at 2026-11-24");  // dates stay readable
}

TEST(PlainText, RefusesWhatReordersOrBreaksATerminalAndNonShortestUtf8) {
  EXPECT_TRUE(IsPlainText("Bøker og blyanter \xe2\x82\xac"));
  for (const char* bad : {"a\tb", "esc\x1b[2J", "csi \xc2\x9b" "2J", "ls \xe2\x80\xa8",
                          "rlo \xe2\x80\xae", "isolate \xe2\x81\xa6", "overlong \xc0\x80",
                          "surrogate \xed\xa0\x80", "past U+10FFFF \xf5\x80\x80\x80"})
    EXPECT_FALSE(IsPlainText(bad)) << bad;
  EXPECT_EQ(Utf8Length("\xc0\x80"), -1);
  EXPECT_EQ(Utf8Length("\xc3\xb8re"), 3);
  EXPECT_EQ(SafeDetail("rlo \xe2\x80\xae" "txt"), "rlo  txt");
}

TEST(OrderRules, PurchaseTextsAreStrictAndAmountsBounded) {
  PurchaseRequested p;
  p.amount = kMaxAmount;
  p.currency = "NOK";
  p.description = "Books";
  EXPECT_FALSE(CheckPurchase(p));
  p.amount = kMaxAmount + 1;
  EXPECT_STREQ(CheckPurchase(p)->code, code::kInvalidAmount);
  p.amount = 100;
  p.description = "Books \xc2\x9b" "2J";
  EXPECT_STREQ(CheckPurchase(p)->code, code::kInvalidDescription);
  p.description = "Books";
  p.metadata["k"] = std::string(513, 'v');
  EXPECT_STREQ(CheckPurchase(p)->code, code::kInvalidMetadata);
  p.metadata.clear();
  for (int i = 0; i < 33; ++i) p.metadata["k" + std::to_string(i)] = "v";
  EXPECT_STREQ(CheckPurchase(p)->code, code::kInvalidMetadata);
  p.metadata.clear();
  p.user_agent = "Mozilla \xe2\x80\xae";
  EXPECT_STREQ(CheckPurchase(p)->code, code::kInvalidUserAgent);
  EXPECT_EQ(CancelDescription("changed my mind \x1b[2J"), "Order cancelled");
  EXPECT_EQ(CancelDescription(std::string(45, 'x')), std::string(40, 'x'));
  EXPECT_EQ(CancelDescription(std::string(41, '\xc3') ), "Order cancelled");  // not UTF-8
}

}  // namespace
}  // namespace payorch::domain
