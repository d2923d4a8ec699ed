// payorchctl's conventions, mostly as a process: --help on every command and
// subcommand, exit codes (0 ok, 1 failure, 2 usage), errors that say what to do,
// payorchd's configuration read without payorchd's secrets, a store never created.
#include <gmock/gmock.h>

#include "ctl_test_util.hpp"

namespace payorch::ctl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(CliTest, EveryCommandAndSubcommandHasHelp) {
  const std::vector<std::vector<std::string>> commands = {
      {"dlq", "list"},     {"dlq", "show"},        {"dlq", "replay"},
      {"dlq", "purge"},    {"dlq", "replays"},     {"payment", "show"},
      {"payment", "list"}, {"payment", "resolve"}, {"payment", "republish"}};
  for (const auto& c : commands) {
    std::vector<std::string> args = c;
    args.push_back("--help");
    // No configuration is needed for help.
    Result r = RunProcess(args, "", {"PAYORCH_PAYEX_TOKEN="});
    EXPECT_EQ(r.code, 0) << c[0] << " " << c[1] << ": " << r.err;
    EXPECT_THAT(r.out, StartsWith("Usage: payorchctl " + c[0] + " " + c[1])) << r.out;
  }
  for (const char* group : {"dlq", "payment"}) {
    Result r = RunProcess({group, "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, StartsWith(std::string("Usage: payorchctl ") + group));
  }
  Result main_help = RunProcess({"--help"});
  EXPECT_EQ(main_help.code, 0);
  EXPECT_THAT(main_help.out, HasSubstr("dlq replay"));
  EXPECT_THAT(main_help.out, HasSubstr("payment resolve"));
  EXPECT_THAT(main_help.out, HasSubstr("Exit codes"));
  EXPECT_THAT(RunProcess({"dlq", "replay", "-h"}).out, HasSubstr("--dry-run"));
}

TEST(CliTest, UsageErrorsExitTwoAndSayWhatToDo) {
  Result nothing = RunProcess({});
  EXPECT_EQ(nothing.code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("Usage: payorchctl"));

  Result unknown = RunProcess({"frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'frobnicate'"));

  Result sub = RunProcess({"dlq", "frob"});
  EXPECT_EQ(sub.code, 2);
  EXPECT_THAT(sub.err, HasSubstr("payorchctl dlq --help"));

  Result which = RunProcess({"payment"});
  EXPECT_EQ(which.code, 2);
  EXPECT_THAT(which.err, HasSubstr("which command?"));

  Result option = RunProcess({"dlq", "list", "--colour"});
  EXPECT_EQ(option.code, 2);
  EXPECT_THAT(option.err, HasSubstr("unknown option --colour for 'dlq list'"));

  Result value = RunProcess({"dlq", "list", "--limit"});
  EXPECT_EQ(value.code, 2);
  EXPECT_THAT(value.err, HasSubstr("--limit needs a value"));

  Result format = RunProcess({"-o", "yaml", "dlq", "list"});
  EXPECT_EQ(format.code, 2);
  EXPECT_THAT(format.err, HasSubstr("table, json or csv"));

  Result show = RunProcess({"dlq", "show"});
  EXPECT_EQ(show.code, 2);
  EXPECT_THAT(show.err, HasSubstr("give one message ID"));

  Result since = RunProcess({"dlq", "list", "--since", "yesterday"});
  EXPECT_EQ(since.code, 2);
  EXPECT_THAT(since.err, HasSubstr("duration"));
}

TEST(CliTest, ConfigurationAndStoreProblemsExitOneWithAHint) {
  Result missing = RunProcess({"--config", "/nonexistent/payorch.toml", "payment", "list"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/payorch.toml"));

  CtlFixture fixture;
  Result bad_set = fixture.Process({"--set", "store.nonsense=1", "payment", "list"});
  EXPECT_EQ(bad_set.code, 1);
  EXPECT_THAT(bad_set.err, HasSubstr("store.nonsense"));

  // payorchctl never creates a store: a wrong path is an error, and no file appears.
  const std::string elsewhere = fixture.store_path() + ".other";
  Result no_store = fixture.Process({"--set", "store.path=" + elsewhere, "payment", "list"});
  EXPECT_EQ(no_store.code, 1);
  EXPECT_THAT(no_store.err, HasSubstr("never creates the store"));
  EXPECT_FALSE(std::filesystem::exists(elsewhere));
}

TEST(CliTest, ReadsPayorchdsConfigurationWithoutItsSecrets) {
  CtlFixture fixture;
  Result r = fixture.Process({"payment", "list"}, "",
                             {"PAYORCH_PAYEX_TOKEN=", "PAYORCH_CALLBACK_SECRET="});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("no payments match"));
  // The placeholders stand in only for what is missing.
  auto env = CtlEnv([](std::string_view name) -> std::optional<std::string> {
    if (name == "PAYORCH_PAYEX_TOKEN") return "real-token";
    return std::nullopt;
  });
  EXPECT_EQ(env("PAYORCH_PAYEX_TOKEN"), "real-token");
  EXPECT_GE(env("PAYORCH_CALLBACK_SECRET").value_or("").size(), config::kMinCallbackSecretBytes);
  EXPECT_EQ(env("PAYORCH_AMQP_PASSWORD"), std::nullopt);
  // Global options go anywhere on the line, e.g. -o json at the end.
  Result json = fixture.Process({"payment", "list", "-o", "json"});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_THAT(json.out, StartsWith("{\"payments\":[]"));
}

TEST(CliTest, ABrokerThatIsNotThereIsExplained) {
  DeadPort port;
  bus::BusConfig bus;
  bus.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(port.port()) + "/";
  CtlFixture fixture(bus);
  Result r = fixture.Process({"dlq", "list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the broker at amqp://guest:***@127.0.0.1:"));
  EXPECT_THAT(r.err, HasSubstr("bus.url"));
}

}  // namespace
}  // namespace payorch::ctl::testing
