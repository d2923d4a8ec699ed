// The configuration loader (config::LoadConfig): any TOML file and `--set`
// overrides. The input is the file, then optionally a line "#--set" and one
// override per line. The secrets come from a fixed environment, so that
// validation runs past them. Beyond not crashing: the only exception is a
// ConfigError, and a loaded configuration describes itself without its secrets.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "fuzz_support.hpp"

using namespace payorch;

namespace {

constexpr std::string_view kToken = "fuzz-payex-token-0123456789";
constexpr std::string_view kCallbackSecret = "fuzz-callback-secret-0123456789-abcdefgh";
constexpr std::string_view kAmqpPassword = "fuzz-amqp-password-0123456789";

const std::string& FilePath() {
  static const std::string path =
      "/dev/shm/payorch-config-fuzz-" + std::to_string(::getpid()) + ".toml";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view file = bytes;
  std::vector<std::string> overrides;
  if (size_t at = bytes.find("\n#--set\n"); at != std::string_view::npos) {
    file = bytes.substr(0, at);
    std::string_view rest = bytes.substr(at + 8);
    while (!rest.empty() && overrides.size() < 16) {
      size_t nl = rest.find('\n');
      overrides.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }
  {
    std::ofstream out(FilePath(), std::ios::binary | std::ios::trunc);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == config::kPayexTokenEnv) return std::string(kToken);
    if (name == config::kCallbackSecretEnv) return std::string(kCallbackSecret);
    if (name == config::kAmqpPasswordEnv) return std::string(kAmqpPassword);
    return std::nullopt;
  };
  try {
    config::Config c = config::LoadConfig(FilePath(), overrides, env);
    const std::string line = config::DescribeConfig(c);
    // (Unless the input itself wrote the secret into a setting that is shown.)
    for (std::string_view secret : {kToken, kCallbackSecret, kAmqpPassword})
      if (bytes.find(secret.substr(0, 12)) == std::string_view::npos)
        FUZZ_CHECK(line.find(secret) == std::string::npos, "a secret in the description");
  } catch (const config::ConfigError& e) {
    FUZZ_CHECK(std::string_view(e.what()).size() > 0, "an error without a message");
  }
  if (!overrides.empty()) (void)config::ParseDuration(overrides.front());
  return 0;
}
