// payorchctl, the operator's CLI for the dead-letter queue and for payments
// (issue 6). Main() is the whole program behind an Io, so tests run it in-process;
// main.cpp only binds it to the process's streams.
// Thread: Main runs on the caller's thread; concurrent Mains share nothing.
// Errors: never throws; returns the exit code (kExitOk, kExitFailure, kExitUsage)
// after writing what went wrong and what to do on io.err.
#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "domain/types.hpp"

namespace payorch::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

inline constexpr const char* kDefaultConfig = "config/payorch.toml";

struct Io {
  std::ostream* out = nullptr;        // results: tables or one JSON document
  std::ostream* err = nullptr;        // errors, prompts, progress
  std::istream* in = nullptr;         // answers to confirmation prompts
  bool stdin_is_tty = false;          // prompts are asked only on a terminal
  bool stderr_is_tty = false;         // a progress bar on a terminal, plain lines otherwise
  config::EnvLookup env;                 // USER, the secrets (see CtlEnv); ProcessEnv() if empty
  std::function<domain::Time()> now;  // the system clock if empty
  // How often plain progress lines are written when stderr is not a terminal.
  std::chrono::milliseconds progress_interval{5000};
};

// The process's streams, terminals and environment.
Io ProcessIo();

// argv without the program name.
int Main(const std::vector<std::string>& args, Io& io);

// payorchctl reads payorchd's configuration, but needs neither PayEx's token nor the
// callback secret: where they are unset it puts placeholders in, so that LoadConfig
// validates the rest. Everything else comes from `env`.
config::EnvLookup CtlEnv(config::EnvLookup env);

}  // namespace payorch::ctl
