// payorchd's log lines stay bounded and printable whatever an outsider sends.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/log.hpp"

namespace payorch::engine {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink(Level::kDebug, [this](Level, std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override { SetLogSink(Level::kInfo, nullptr); }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, AHugeFieldIsCutAndSaysHowLongItWas) {
  Log(Level::kWarn, "order_event.duplicate",
      {{"order_id", std::string(100 * 1024, 'o')}, {"kind", "shipped"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_LT(lines_[0].size(), 2 * kMaxLogFieldBytes);
  EXPECT_NE(lines_[0].find("(102400 bytes)"), std::string::npos);
  EXPECT_NE(lines_[0].find("kind=shipped"), std::string::npos) << "later fields survive";
}

TEST_F(LogTest, EscapeCodesAndNewlinesNeverReachTheLineRaw) {
  Log(Level::kWarn, "x", {{"detail", "a\x1b[2J\nb\rc"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find('\x1b'), std::string::npos) << lines_[0];
  EXPECT_EQ(lines_[0].find('\n'), std::string::npos) << lines_[0];
  EXPECT_EQ(lines_[0].find('\r'), std::string::npos) << lines_[0];
}

TEST_F(LogTest, APreformattedLineIsBoundedToo) {
  LogLine(Level::kWarn, "event=payex.call detail=" + std::string(50 * 1024, 'd'));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_LT(lines_[0].size(), 9 * kMaxLogFieldBytes);
}

// A line from a room below (the bus) cannot forge a second line or reach a
// terminal with its escape codes, and its cut never splits a character.
TEST_F(LogTest, APreformattedLineHasNoRawControlBytesAndCutsOnACharacter) {
  LogLine(Level::kWarn, "event=bus.x routing_key=order.a\nevent=forged \x1b[2J\x7f");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "event=bus.x routing_key=order.a\\x0aevent=forged \\x1b[2J\\x7f");
  // C1 controls written as UTF-8 (CSI), bidi overrides and bytes that are not UTF-8.
  lines_.clear();
  LogLine(Level::kDebug, "event=http path=/a\xc2\x9b" "2J\xe2\x80\xae" "b\xff");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "event=http path=/a\\xc2\\x9b2J\\xe2\\x80\\xaeb\\xff");
  std::string wide = "event=bus.y detail=";
  while (wide.size() < 9 * kMaxLogFieldBytes) wide += "\xc3\xa6";  // æ
  for (size_t shift = 0; shift < 2; ++shift) {
    lines_.clear();
    LogLine(Level::kWarn, wide.substr(shift));
    ASSERT_EQ(lines_.size(), 1u);
    const std::string& line = lines_[0];
    const size_t cut = line.find("...(");
    ASSERT_NE(cut, std::string::npos);
    EXPECT_NE(static_cast<unsigned char>(line[cut - 1]), 0xC3) << "a character split";
  }
}

}  // namespace
}  // namespace payorch::engine
