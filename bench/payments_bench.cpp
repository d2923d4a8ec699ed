// payorchd holding many payments (issue 12): fills N payments authorized and waiting
// for their shipment through payorchd itself (purchase with MSISDN -> `authorized`,
// payex-sim approving at once, the real broker), then prints payorchd's resident
// memory, the time of a /metrics scrape, and the time from SIGKILL to serving and to
// ready again. payorchd runs its default configuration (config/payorch.toml) unless
// --set says otherwise. Figures only; asserts nothing.
//   payments_bench [--payments N] [--window W] [--scrapes S] [--set section.key=value]...
// Needs scripts/broker start (PAYORCH_AMQP_URL). A million payments take a few
// minutes to fill and a few GB of store; progress goes to stderr.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "kit/kit.hpp"

namespace {

using namespace payorch;
using namespace payorch::bench;

struct Options {
  int payments = 100'000;
  int window = 400;
  int scrapes = 25;
  std::vector<std::string> overrides;
};

double MiB(std::uintmax_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Bytes of the store with its WAL.
std::uintmax_t StoreBytes(const std::string& path) {
  std::uintmax_t n = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path + suffix, ec);
    if (!ec) n += size;
  }
  return n;
}

struct Scrapes {
  double median_ms = 0, max_ms = 0;
  size_t bytes = 0;
};

Scrapes Scrape(const kit::Daemon& daemon, int n) {
  std::vector<double> ms;
  Scrapes s;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    kit::HttpResult r = daemon.Get("/metrics");
    ms.push_back(Ms(Clock::now() - t0));
    s.bytes = r.body.size();
  }
  s.median_ms = Median(ms);
  s.max_ms = *std::max_element(ms.begin(), ms.end());
  return s;
}

// Waits until payorchd has nothing in flight (its answers published and marked).
bool Quiet(const kit::Daemon& daemon) {
  return kit::WaitFor(
      [&] {
        return daemon.Metric("payorch_payex_calls_in_flight").value_or(1) == 0 &&
               daemon.Metric("payorch_outbox_backlog").value_or(1) == 0;
      },
      std::chrono::minutes(2));
}

int Run(const Options& o, const std::string& url) {
  const std::string suffix = kit::RandomSuffix();
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("payorch-payments-" + suffix)).string();
  bus::BusConfig bus = kit::UniqueBusConfig(url, suffix);
  kit::Simulator sim(dir, {"--time-scale", "0.001", "--quiet"});
  kit::BusClient client(bus);
  kit::DaemonOptions d;
  d.work_dir = dir;
  d.bus = bus;
  d.payex_url = sim.url();
  d.log_level = "warn";
  d.overrides = o.overrides;
  kit::Daemon daemon(d);
  daemon.Start();

  const std::string msisdn = "+4799999986";  // approves at once, in the POST's answer
  std::atomic<int> next{0}, authorized{0}, other{0};
  auto start_order = [&](int i) {
    client.PublishAsync(kit::Purchase("p-" + std::to_string(i), 10000, msisdn, "Bench order"));
  };
  client.OnEvent([&](const kit::Received& ev) {
    if (ev.event.kind == domain::EventKind::kAuthorized) {
      ++authorized;
    } else {
      ++other;
    }
    const int i = next++;
    if (i < o.payments) start_order(i);
  });

  const auto t0 = Clock::now();
  for (int k = 0; k < std::min(o.window, o.payments); ++k) start_order(next++);
  int last = -1;
  auto last_change = Clock::now(), last_print = Clock::now();
  while (authorized + other < o.payments) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const int now = authorized + other;
    if (now != last) {
      last = now;
      last_change = Clock::now();
    } else if (Clock::now() - last_change > std::chrono::seconds(60)) {
      std::fprintf(stderr, "stalled at %d of %d payments; kept %s\n%s\n", now, o.payments,
                   dir.c_str(), daemon.LogTail(20).c_str());
      return 1;
    }
    if (Clock::now() - last_print > std::chrono::seconds(10)) {
      last_print = Clock::now();
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "  filled %d of %d (%.0f/s), payorchd rss %.0f MiB\n", now,
                   o.payments, now / s, RssMiB(daemon.process().pid()));
    }
  }
  const double fill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  client.OnEvent(nullptr);
  if (!Quiet(daemon)) std::fprintf(stderr, "payorchd did not settle within 2 minutes\n");
  if (other > 0) std::fprintf(stderr, "%d purchases were not authorized\n", other.load());

  const pid_t pid = daemon.process().pid();
  const double rss = RssMiB(pid), peak = PeakRssMiB(pid);
  const double cached = daemon.Metric("payorch_payments_cached").value_or(-1);
  const double shown = daemon.Metric("payorch_payments{state=\"authorized\"}").value_or(-1);
  const Scrapes before = Scrape(daemon, o.scrapes);
  std::printf(
      "filled %d payments (%d authorized) in %.0f s (%.0f/s); store %.0f MiB\n"
      "payorchd: rss %.1f MiB, peak rss %.1f MiB, payments cached %.0f, "
      "payorch_payments{state=\"authorized\"} %.0f\n"
      "scrape of /metrics (%zu bytes): median %.2f ms, max %.2f ms over %d\n",
      o.payments, authorized.load(), fill_s, o.payments / fill_s, MiB(StoreBytes(daemon.store_path())),
      rss, peak, cached, shown, before.bytes, before.median_ms, before.max_ms, o.scrapes);
  std::fflush(stdout);

  // SIGKILL, then start again on the same store: serving (its ready file) and
  // ready (/readyz: both bus links up).
  std::vector<double> serving_ms, ready_ms;
  for (int round = 0; round < 3; ++round) {
    daemon.Kill();
    const auto killed = Clock::now();
    daemon.Start(std::chrono::minutes(2));
    serving_ms.push_back(Ms(Clock::now() - killed));
    kit::WaitFor([&] { return daemon.Get("/readyz").status == 200; }, std::chrono::minutes(1));
    ready_ms.push_back(Ms(Clock::now() - killed));
  }
  const Scrapes after = Scrape(daemon, o.scrapes);
  std::printf(
      "SIGKILL to serving: median %.0f ms (%.0f, %.0f, %.0f); to ready: median %.0f ms\n"
      "after the restart: rss %.1f MiB; scrape median %.2f ms, max %.2f ms; "
      "payorch_payments{state=\"authorized\"} %.0f\n",
      Median(serving_ms), serving_ms[0], serving_ms[1], serving_ms[2], Median(ready_ms),
      RssMiB(daemon.process().pid()), after.median_ms, after.max_ms,
      daemon.Metric("payorch_payments{state=\"authorized\"}").value_or(-1));
  (void)daemon.Term();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--payments") {
      o.payments = std::atoi(value().c_str());
    } else if (a == "--window") {
      o.window = std::atoi(value().c_str());
    } else if (a == "--scrapes") {
      o.scrapes = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--set") {
      o.overrides.push_back(value());
    } else {
      std::fprintf(stderr,
                   "usage: payments_bench [--payments N] [--window W] [--scrapes S] "
                   "[--set section.key=value]...\n");
      return 2;
    }
  }
  if (o.payments < 1) {
    std::fprintf(stderr, "--payments must be at least 1\n");
    return 2;
  }
  std::string url;
  try {
    url = kit::BrokerUrl();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("payments_bench: %d payments waiting for capture, window %d, payorchd's defaults%s\n",
              o.payments, o.window, o.overrides.empty() ? "" : " with --set overrides");
  try {
    return Run(o, url);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "payments_bench failed: %s\n", e.what());
    return 1;
  }
}
