// Tests of the configuration loader: the shipped file, one error per kind of
// mistake (each naming the setting), --set precedence and secrets never shown.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <unistd.h>

namespace payorch::config {
namespace {

const std::string kShipped = std::string(PAYORCH_SOURCE_DIR) + "/config/payorch.toml";
const std::string kToken = "tok-SECRET-payex-0123456789";
const std::string kCallbackSecret = "cbsecret-ABCDEFGHIJKLMNOPQRSTUVWXYZ-42";  // 38 bytes
const std::string kAmqpPassword = "amqp-pw-Zq9/x@y";

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup GoodEnv() {
  return Env({{"PAYORCH_PAYEX_TOKEN", kToken}, {"PAYORCH_CALLBACK_SECRET", kCallbackSecret}});
}

// A temporary config file with the given text.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() /
             ("payorch_config_test_" + std::to_string(::getpid()) + "_" +
              std::to_string(counter_++) + ".toml"))
                .string();
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

// Loads and expects a ConfigError naming `setting`, whose message contains `words`.
void ExpectError(const std::string& file_text, const std::vector<std::string>& overrides,
                 const EnvLookup& env, const std::string& setting,
                 const std::vector<std::string>& words) {
  TempFile file(file_text);
  try {
    LoadConfig(file.path(), overrides, env);
    ADD_FAILURE() << "no error; expected one about " << setting;
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_EQ(e.setting(), setting) << what;
    EXPECT_NE(what.find(file.path()), std::string::npos) << what;
    EXPECT_NE(what.find(setting), std::string::npos) << what;
    for (const auto& w : words) EXPECT_NE(what.find(w), std::string::npos) << w << " in " << what;
  }
}

void ExpectError(const std::string& file_text, const std::string& setting,
                 const std::vector<std::string>& words) {
  ExpectError(file_text, {}, GoodEnv(), setting, words);
}

TEST(Config, ShippedFileLoadsAndEqualsTheDefaults) {
  Config loaded = LoadConfig(kShipped, {}, GoodEnv());
  Config expected;
  expected.file = kShipped;
  expected.payex.token = kToken;
  expected.callback_secret = kCallbackSecret;
  // Every setting is shown by DescribeConfig, so equal lines mean equal settings.
  EXPECT_EQ(DescribeConfig(loaded), DescribeConfig(expected));
  EXPECT_EQ(loaded.payex.token, kToken);
  EXPECT_EQ(loaded.callback_secret, kCallbackSecret);
  EXPECT_EQ(loaded.payex.callback_url_base, "http://127.0.0.1:8080/callbacks/payex");
  EXPECT_EQ(loaded.payments.first_poll, std::chrono::seconds(3));
  EXPECT_EQ(loaded.engine.max_batch, 256u);
  EXPECT_EQ(loaded.bus.url, expected.bus.url);
}

TEST(Config, ShippedFileListsEverySetting) {
  std::ifstream in(kShipped);
  std::string section, line;
  std::set<std::string> found;
  while (std::getline(in, line)) {
    if (line.starts_with("["))
      section = line.substr(1, line.find(']') - 1);
    else if (!line.empty() && line[0] != '#' && line.find(" = ") != std::string::npos)
      found.insert(section + "." + line.substr(0, line.find(" = ")));
  }
  for (const auto& name : SettingNames()) EXPECT_TRUE(found.count(name)) << name;
  EXPECT_EQ(found.size(), SettingNames().size());
}

TEST(Config, DurationsParse) {
  using std::chrono::milliseconds;
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("3s"), milliseconds(3000));
  EXPECT_EQ(ParseDuration("10m"), milliseconds(600000));
  EXPECT_EQ(ParseDuration("1h"), milliseconds(3600000));
  EXPECT_EQ(ParseDuration("1m30s"), milliseconds(90000));
  EXPECT_FALSE(ParseDuration("30"));
  EXPECT_FALSE(ParseDuration("-1s"));
  EXPECT_FALSE(ParseDuration("3 s"));
  EXPECT_FALSE(ParseDuration("s"));
  EXPECT_EQ(FormatDuration(milliseconds(90000)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(500)), "500ms");
}

// Partitions (issue 13): a count within bounds, and a store per partition.
TEST(Config, PartitionsNeedAStorePathPerPartition) {
  ExpectError("[bus.topology]\npartitions = 0\n", "bus.topology.partitions", {"between 1 and 1024"});
  ExpectError("[bus.topology]\npartitions = 1025\n", "bus.topology.partitions", {"1024"});
  ExpectError("[bus.topology]\npartitions = 4\n[store]\npath = \"var/payorch.db\"\n",
              "store.path", {"{partition}", "4"});
  TempFile ok("[bus.topology]\npartitions = 4\n[store]\npath = \"var/p{partition}/payorch.db\"\n");
  Config c = LoadConfig(ok.path(), {}, GoodEnv());
  EXPECT_EQ(c.bus.topology.partitions, 4u);
  EXPECT_EQ(c.bus.topology.partitions_exchange, "payorch.orders.partitions");
}

TEST(Config, UnknownKeyIsNamed) {
  ExpectError("[payments]\nfrobnicate = 1\n", "payments.frobnicate", {"unknown setting"});
}

TEST(Config, TypoGetsASuggestion) {
  ExpectError("[payments]\nfirst_pol = \"3s\"\n", "payments.first_pol",
              {"did you mean \"first_poll\""});
  ExpectError("[payment]\nfirst_poll = \"3s\"\n", "payment", {"did you mean \"payments\""});
  // A key in the wrong section says where it belongs.
  ExpectError("[http]\nmax_batch = 10\n", "http.max_batch", {"[engine]"});
}

// TOML is UTF-8; a file that is not is refused with its line before the parser
// sees it (toml11 read out of bounds on invalid UTF-8 in a multi-line string:
// config_fuzz, tests/fuzz/regressions/config/ml-literal-invalid-utf8).
TEST(Config, AFileThatIsNotUtf8IsRefusedWithItsLine) {
  ExpectError("[engine]\nmax_batch = 492\nx = '''a\x9c'''\n", "", {"not UTF-8", ".toml:3:"});
  ExpectError("[engine]\nmax_batch = 1\n# caf\xe9\n", "", {"not UTF-8", ".toml:3:"});
}

TEST(Config, UnknownSectionIsNamed) {
  ExpectError("[telemetry]\nx = 1\n", "telemetry", {"unknown"});
}

TEST(Config, BadDurationIsNamed) {
  ExpectError("[payments]\nfirst_poll = \"3x\"\n", "payments.first_poll", {"not a duration"});
  ExpectError("[payments]\nfirst_poll = 3\n", "payments.first_poll", {"duration"});
  ExpectError("[bus]\nconfirm_timeout = \"0s\"\n", "bus.confirm_timeout", {"positive"});
}

TEST(Config, BadRangeIsNamed) {
  ExpectError("[http]\nport = 70000\n", "http.port", {"between 0 and 65535", "70000"});
  ExpectError("[engine]\nmax_batch = 0\n", "engine.max_batch", {"at least 1"});
  ExpectError("[payments]\nfirst_poll = \"1m\"\npoll_max = \"30s\"\n", "payments.poll_max",
              {"payments.first_poll"});
  ExpectError("[payments]\nbackoff_base = \"2m\"\n", "payments.backoff_cap",
              {"payments.backoff_base"});
  ExpectError("[log]\nlevel = \"verbose\"\n", "log.level", {"debug, info, warn, error"});
  ExpectError("[http]\ncallback_base_url = \"ftp://x/cb\"\n", "http.callback_base_url",
              {"http or https"});
  ExpectError("[engine]\npayex_rate_limit = -1\n", "engine.payex_rate_limit", {">= 0"});
  ExpectError("[http]\nport = \"80\"\n", "http.port", {"integer"});
}

TEST(Config, PortZeroIsAllowed) {
  TempFile file("[http]\nport = 0\n");
  EXPECT_EQ(LoadConfig(file.path(), {}, GoodEnv()).http.port, 0);
}

TEST(Config, PlainHttpPayexNeedsAllowPlainHttp) {
  ExpectError("[payex]\nbase_url = \"http://127.0.0.1:9000\"\n", "payex.base_url",
              {"allow_plain_http"});
  TempFile ok("[payex]\nbase_url = \"http://127.0.0.1:9000\"\nallow_plain_http = true\n");
  EXPECT_EQ(LoadConfig(ok.path(), {}, GoodEnv()).payex.base_url, "http://127.0.0.1:9000");
}

TEST(Config, SecretInTheFileIsRefused) {
  ExpectError("[payex]\ntoken = \"abc\"\n", "payex.token", {"PAYORCH_PAYEX_TOKEN"});
  ExpectError("[http]\ncallback_secret = \"abc\"\n", "http.callback_secret",
              {"PAYORCH_CALLBACK_SECRET"});
  ExpectError("[bus]\npassword = \"abc\"\n", "bus.password", {"PAYORCH_AMQP_PASSWORD"});
  ExpectError("[bus]\nurl = \"amqp://payorch:hunter2@host/\"\n", "bus.url",
              {"PAYORCH_AMQP_PASSWORD"});
  ExpectError("", {"payex.token=abc"}, GoodEnv(), "payex.token", {"PAYORCH_PAYEX_TOKEN"});
}

TEST(Config, MissingSecretsNameTheVariable) {
  ExpectError("", {}, Env({{"PAYORCH_CALLBACK_SECRET", kCallbackSecret}}), "payex.token",
              {"PAYORCH_PAYEX_TOKEN"});
  ExpectError("", {}, Env({{"PAYORCH_PAYEX_TOKEN", kToken}}), "callback_secret",
              {"PAYORCH_CALLBACK_SECRET"});
}

// systemd credentials (LoadCredential=PAYORCH_PAYEX_TOKEN:...): files named as the
// variables in $CREDENTIALS_DIRECTORY, read when the variable is not set.
TEST(Config, SecretsComeFromSystemdCredentialsToo) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("payorch_credentials_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "PAYORCH_PAYEX_TOKEN") << kToken << "\n";  // as `echo` writes it
  std::ofstream(dir / "PAYORCH_CALLBACK_SECRET") << kCallbackSecret;
  EXPECT_EQ(SystemdCredential(dir.c_str(), "PAYORCH_PAYEX_TOKEN"), kToken);
  EXPECT_EQ(SystemdCredential(dir.c_str(), "PAYORCH_CALLBACK_SECRET"), kCallbackSecret);
  EXPECT_EQ(SystemdCredential(dir.c_str(), "PAYORCH_AMQP_PASSWORD"), std::nullopt);
  EXPECT_EQ(SystemdCredential(nullptr, "PAYORCH_PAYEX_TOKEN"), std::nullopt);
  EXPECT_EQ(SystemdCredential(dir.c_str(), "../x"), std::nullopt);
  std::ofstream(dir / "BIG") << std::string(70 * 1024, 'x');
  EXPECT_EQ(SystemdCredential(dir.c_str(), "BIG"), std::nullopt);

  // Through the process's lookup: the environment first, then the credential.
  ::unsetenv("PAYORCH_PAYEX_TOKEN");
  ::unsetenv("PAYORCH_CALLBACK_SECRET");
  ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
  TempFile file("");
  const Config c = LoadConfig(file.path(), {}, ProcessEnv());
  EXPECT_EQ(c.payex.token, kToken);
  EXPECT_EQ(c.callback_secret, kCallbackSecret);
  ::setenv("PAYORCH_PAYEX_TOKEN", "from-the-environment", 1);
  EXPECT_EQ(LoadConfig(file.path(), {}, ProcessEnv()).payex.token, "from-the-environment");
  ::unsetenv("PAYORCH_PAYEX_TOKEN");
  ::unsetenv("CREDENTIALS_DIRECTORY");
  std::filesystem::remove_all(dir);
}

// Polling alone (issue 14): no callback URL, so no callbackUrl is sent and no
// callback secret is needed.
TEST(Config, AnEmptyCallbackBaseUrlMeansPollingAloneWithoutASecret) {
  TempFile file("[http]\ncallback_base_url = \"\"\n");
  const Config c = LoadConfig(file.path(), {}, Env({{"PAYORCH_PAYEX_TOKEN", kToken}}));
  EXPECT_EQ(c.http.callback_base_url, "");
  EXPECT_EQ(c.payex.callback_url_base, "");
  EXPECT_EQ(c.callback_secret, "");
  // With callbacks, the secret is still required.
  ExpectError("", {}, Env({{"PAYORCH_PAYEX_TOKEN", kToken}}), "callback_secret",
              {"PAYORCH_CALLBACK_SECRET"});
}

TEST(Config, ShortCallbackSecretIsRefused) {
  ExpectError("", {}, Env({{"PAYORCH_PAYEX_TOKEN", kToken}, {"PAYORCH_CALLBACK_SECRET", "short"}}),
              "callback_secret", {"PAYORCH_CALLBACK_SECRET", "32"});
}

TEST(Config, BadSetSyntaxIsNamed) {
  ExpectError("", {"payments.first_poll"}, GoodEnv(), "payments.first_poll", {"section.key=value"});
  ExpectError("", {"first_poll=3s"}, GoodEnv(), "first_poll", {"section.key=value"});
  ExpectError("", {"payments.first_poll=soon"}, GoodEnv(), "payments.first_poll",
              {"not a duration", "--set"});
  ExpectError("", {"payments.first_pol=3s"}, GoodEnv(), "payments.first_pol",
              {"did you mean \"first_poll\""});
}

TEST(Config, SetOverridesWinOverTheFile) {
  TempFile file("[payments]\nfirst_poll = \"2s\"\n[http]\nport = 9000\n");
  Config c = LoadConfig(
      file.path(),
      {"payments.first_poll=1s", "http.port=0", "log.format=json", "bus.topology.delivery_limit=5",
       "payex.host_urls=https://a,https://b", "engine.payex_rate_limit=2.5"},
      GoodEnv());
  EXPECT_EQ(c.payments.first_poll, std::chrono::seconds(1));
  EXPECT_EQ(c.http.port, 0);
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_EQ(c.bus.topology.delivery_limit, 5);
  EXPECT_EQ(c.payex.host_urls, (std::vector<std::string>{"https://a", "https://b"}));
  EXPECT_EQ(c.engine.payex_rate_limit, 2.5);
  // The later --set wins.
  Config twice = LoadConfig(file.path(), {"http.port=1", "http.port=2"}, GoodEnv());
  EXPECT_EQ(twice.http.port, 2);
}

TEST(Config, AmqpPasswordIsMergedIntoTheUrl) {
  TempFile file("[bus]\nurl = \"amqp://payorch@broker:5672/prod\"\n");
  Config c = LoadConfig(file.path(), {},
                        Env({{"PAYORCH_PAYEX_TOKEN", kToken},
                             {"PAYORCH_CALLBACK_SECRET", kCallbackSecret},
                             {"PAYORCH_AMQP_PASSWORD", kAmqpPassword}}));
  EXPECT_EQ(c.bus.url, "amqp://payorch:amqp-pw-Zq9%2Fx%40y@broker:5672/prod");
}

// A cluster's nodes (issue 13): the password goes into each URL, and none shows.
TEST(Config, AmqpPasswordIsMergedIntoEveryNodesUrl) {
  TempFile file("[bus]\nurl = \"amqp://payorch@node1:5672/prod, amqp://payorch@node2:5672/prod\"\n");
  Config c = LoadConfig(file.path(), {},
                        Env({{"PAYORCH_PAYEX_TOKEN", kToken},
                             {"PAYORCH_CALLBACK_SECRET", kCallbackSecret},
                             {"PAYORCH_AMQP_PASSWORD", kAmqpPassword}}));
  EXPECT_EQ(c.bus.url,
            "amqp://payorch:amqp-pw-Zq9%2Fx%40y@node1:5672/prod,"
            "amqp://payorch:amqp-pw-Zq9%2Fx%40y@node2:5672/prod");
  std::string line = DescribeConfig(c);
  EXPECT_EQ(line.find("amqp-pw"), std::string::npos) << line;
  EXPECT_NE(line.find("amqp://payorch:***@node1:5672/prod,amqp://payorch:***@node2:5672/prod"),
            std::string::npos)
      << line;
  ExpectError("[bus]\nurl = \"amqp://a@node1/, http://node2/\"\n", "bus.url", {"http://node2/"});
  ExpectError("[bus]\nurl = \"amqp://a@node1/, amqp://a:secret@node2/\"\n", "bus.url",
              {"contains a password"});
}

TEST(Config, DescribeConfigNeverShowsSecrets) {
  Config c = LoadConfig(kShipped, {},
                        Env({{"PAYORCH_PAYEX_TOKEN", kToken},
                             {"PAYORCH_CALLBACK_SECRET", kCallbackSecret},
                             {"PAYORCH_AMQP_PASSWORD", kAmqpPassword}}));
  std::string line = DescribeConfig(c);
  EXPECT_EQ(line.find(kToken), std::string::npos) << line;
  EXPECT_EQ(line.find(kCallbackSecret), std::string::npos) << line;
  EXPECT_EQ(line.find("amqp-pw"), std::string::npos) << line;
  EXPECT_NE(line.find("payex.token=***"), std::string::npos) << line;
  EXPECT_NE(line.find("bus.url=amqp://guest:***@127.0.0.1:5672/"), std::string::npos) << line;
  EXPECT_NE(line.find("payments.first_poll=3s"), std::string::npos) << line;
  EXPECT_NE(line.find("engine.max_batch=256"), std::string::npos) << line;
}

TEST(Config, MissingFileIsAnError) {
  try {
    LoadConfig("/nonexistent/payorch.toml", {}, GoodEnv());
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/payorch.toml"), std::string::npos);
  }
}

TEST(Config, InvalidTomlNamesTheFile) {
  TempFile file("[payments\n");
  try {
    LoadConfig(file.path(), {}, GoodEnv());
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(file.path()), std::string::npos);
  }
}

}  // namespace
}  // namespace payorch::config

namespace payorch::config {
namespace {

TEST(Config, TheWatchdogMustOutlastACallsRequests) {
  ExpectError("[payments]\ncall_watchdog = \"15s\"\n[payex]\nrequest_timeout = \"10s\"\n",
              "payments.call_watchdog", {"twice", "payex.request_timeout"});
}

}  // namespace
}  // namespace payorch::config
