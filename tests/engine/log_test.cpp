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

}  // namespace
}  // namespace payorch::engine
