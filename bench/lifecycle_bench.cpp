// Lifecycle throughput of payorchd, end to end (issue 5): N orders through their whole
// life (purchase with MSISDN -> authorized -> shipped -> captured) against payex-sim
// with instant approval, payorchd as a process, the real broker (scripts/broker
// start). A window of W orders is kept in flight, so latencies are those of a busy
// steady state rather than of one big backlog. Prints lifecycles/s, p50/p99 latency
// from order event to outcome event per step, payorchd's CPU seconds (and per lifecycle
// by thread: payorchd names its threads) and peak RSS,
// and, measured in the same run, the raw broker ceiling (bus_bench --only raw)
// divided by the four messages a lifecycle needs. Figures only; asserts nothing.
//   lifecycle_bench [--orders N] [--window W] [--runs R] [--batch B] [--commit-delay MS]
//                   [--skip-raw]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_util.hpp"
#include "kit/kit.hpp"

namespace {

using namespace payorch;
using namespace payorch::bench;

struct Options {
  int orders = 5000;
  int window = 200;
  int runs = 3;
  int batch = 256;
  int commit_delay_ms = 0;
  bool raw = true;
};

struct Run {
  double lifecycles_per_s = 0;
  std::vector<double> authorize_ms, capture_ms;
  double cpu_s = 0;
  std::map<std::string, double> thread_cpu_s;  // by thread name
  double rss_mib = 0;
  bool complete = false;
};

Run OneRun(const Options& o, const std::string& url, int run) {
  std::string suffix = kit::RandomSuffix();
  std::string dir = (std::filesystem::temp_directory_path() / ("payorch-bench-" + suffix)).string();
  bus::BusConfig bus = kit::UniqueBusConfig(url, suffix);
  kit::Simulator sim(dir, {"--time-scale", "0.001", "--quiet"});
  kit::BusClient client(bus);
  kit::DaemonOptions d;
  d.work_dir = dir;
  d.bus = bus;
  d.payex_url = sim.url();
  d.log_level = "warn";
  d.overrides = {"engine.max_batch=" + std::to_string(o.batch), "store.quick_check=false",
                 "engine.commit_delay=" + std::to_string(o.commit_delay_ms) + "ms"};
  kit::Daemon daemon(d);
  daemon.Start();

  const std::string msisdn = "+4799999986";  // approves at once, in the POST's answer
  std::mutex mu;
  std::unordered_map<std::string, Clock::time_point> sent_purchase, sent_ship;
  Run r;
  std::atomic<int> next{0}, done{0};
  auto order_id = [&](int i) { return "b" + std::to_string(run) + "-" + std::to_string(i); };
  auto start_order = [&](int i) {
    auto e = kit::Purchase(order_id(i), 10000, msisdn, "Benchmark order");
    {
      std::lock_guard lock(mu);
      sent_purchase[e.order_id] = Clock::now();
    }
    client.PublishAsync(e);
  };
  client.OnEvent([&](const kit::Received& ev) {
    const std::string& order = ev.event.order_id;
    if (ev.event.kind == domain::EventKind::kAuthorized) {
      auto e = kit::Shipped(order, "s1", 10000);
      std::lock_guard lock(mu);
      auto it = sent_purchase.find(order);
      if (it == sent_purchase.end()) return;  // a republished duplicate
      r.authorize_ms.push_back(Ms(ev.at - it->second));
      sent_purchase.erase(it);
      sent_ship[order] = Clock::now();
      client.PublishAsync(e);
    } else if (ev.event.kind == domain::EventKind::kCaptured) {
      {
        std::lock_guard lock(mu);
        auto it = sent_ship.find(order);
        if (it == sent_ship.end()) return;
        r.capture_ms.push_back(Ms(ev.at - it->second));
        sent_ship.erase(it);
      }
      ++done;
      int i = next++;
      if (i < o.orders) start_order(i);
    } else {
      std::fprintf(stderr, "unexpected %s for %s (%s)\n", domain::EventKindName(ev.event.kind),
                   order.c_str(), ev.event.failure.code.c_str());
    }
  });

  double cpu0 = CpuSeconds(daemon.process().pid());
  auto threads0 = ThreadCpuSeconds(daemon.process().pid());
  auto t0 = Clock::now();
  for (int k = 0; k < std::min(o.window, o.orders); ++k) start_order(next++);
  int last = -1;
  auto last_progress = Clock::now();
  while (done < o.orders) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (done != last) {
      last = done;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > std::chrono::seconds(30)) {
      std::fprintf(stderr, "run %d stalled at %d of %d lifecycles; log %s\n%s\n", run, last,
                   o.orders, daemon.log_path().c_str(), daemon.LogTail(20).c_str());
      break;
    }
  }
  auto elapsed = Clock::now() - t0;
  r.complete = done >= o.orders;
  r.lifecycles_per_s = done / std::chrono::duration<double>(elapsed).count();
  r.cpu_s = CpuSeconds(daemon.process().pid()) - cpu0;
  r.thread_cpu_s = ThreadCpuSeconds(daemon.process().pid());
  for (auto& [name, s] : r.thread_cpu_s) s -= threads0[name];
  r.rss_mib = PeakRssMiB(daemon.process().pid());
  client.OnEvent(nullptr);
  if (std::getenv("LIFECYCLE_BENCH_METRICS")) {
    std::istringstream m(daemon.Get("/metrics").body);
    std::string line;
    while (std::getline(m, line))
      if (line[0] != '#' && line.find("_bucket") == std::string::npos) std::printf("  %s\n", line.c_str());
  }
  auto code = daemon.Term();
  if (!code || *code != 0) std::fprintf(stderr, "payorchd did not drain cleanly\n");
  std::string ledger;
  if (!sim.LedgerOk(&ledger)) std::fprintf(stderr, "ledger check failed: %s\n", ledger.c_str());
  if (r.complete) {
    std::filesystem::remove_all(dir);
  } else {
    std::fprintf(stderr, "kept %s for a look (payorchd.log, payex-sim.log, the store)\n",
                 dir.c_str());
  }
  return r;
}

// The raw broker ceiling, measured now by bus_bench (rabbitmq-c alone, publish with
// confirms + consume with acks on one quorum queue): msg/s.
double RawCeiling(const std::string& url) {
  std::string log = (std::filesystem::temp_directory_path() / ("raw-" + kit::RandomSuffix())).string();
  kit::Process p = kit::Process::Start({kit::FindBinary("bus_bench"), "--only", "raw", "--runs",
                                        "3", "--messages", "20000", "--url", url},
                                       {}, log);
  p.Wait(std::chrono::minutes(5));
  std::ifstream f(log);
  std::string line;
  double v = 0;
  while (std::getline(f, line)) {
    if (line.rfind("raw rabbitmq-c", 0) == 0) {
      auto colon = line.find(':');
      v = std::atof(line.c_str() + colon + 1);
    }
  }
  std::filesystem::remove(log);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--orders") o.orders = next();
    else if (a == "--window") o.window = next();
    else if (a == "--runs") o.runs = next();
    else if (a == "--batch") o.batch = next();
    else if (a == "--commit-delay") o.commit_delay_ms = next();
    else if (a == "--skip-raw") o.raw = false;
    else {
      std::fprintf(stderr,
                   "usage: lifecycle_bench [--orders N] [--window W] [--runs R] [--batch B] "
                   "[--commit-delay MS] [--skip-raw]\n");
      return 2;
    }
  }
  std::string url;
  try {
    url = kit::BrokerUrl();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf(
      "lifecycle_bench: %d orders per run, window %d, %d runs, engine.max_batch %d, "
      "engine.commit_delay %d ms\n",
      o.orders, o.window, o.runs, o.batch, o.commit_delay_ms);
  std::vector<double> rates, cpu, rss, a50, a99, c50, c99;
  std::map<std::string, std::vector<double>> thread_cpu;
  for (int run = 0; run < o.runs; ++run) {
    Run r;
    try {
      r = OneRun(o, url, run);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "run %d failed: %s\n", run, e.what());
      return 1;
    }
    std::printf(
        "run %d: %7.0f lifecycles/s%s  authorize p50 %5.1f ms p99 %5.1f ms  capture p50 %5.1f "
        "ms p99 %5.1f ms  payorchd cpu %.2f s (%.0f us/lifecycle)  peak rss %.1f MiB\n",
        run, r.lifecycles_per_s, r.complete ? "" : " (INCOMPLETE)", Percentile(r.authorize_ms, 0.5),
        Percentile(r.authorize_ms, 0.99), Percentile(r.capture_ms, 0.5),
        Percentile(r.capture_ms, 0.99), r.cpu_s, 1e6 * r.cpu_s / o.orders, r.rss_mib);
    std::printf("       payorchd cpu by thread (us/lifecycle):");
    for (const auto& [name, s] : r.thread_cpu_s) {
      std::printf(" %s %.0f", name.c_str(), 1e6 * s / o.orders);
      thread_cpu[name].push_back(1e6 * s / o.orders);
    }
    std::printf("\n");
    std::fflush(stdout);
    rates.push_back(r.lifecycles_per_s);
    cpu.push_back(r.cpu_s);
    rss.push_back(r.rss_mib);
    a50.push_back(Percentile(r.authorize_ms, 0.5));
    a99.push_back(Percentile(r.authorize_ms, 0.99));
    c50.push_back(Percentile(r.capture_ms, 0.5));
    c99.push_back(Percentile(r.capture_ms, 0.99));
  }
  std::printf("median: %.0f lifecycles/s; purchase->authorized p50 %.1f ms p99 %.1f ms; "
              "shipped->captured p50 %.1f ms p99 %.1f ms; payorchd cpu %.2f s per %d lifecycles; "
              "peak rss %.1f MiB\n",
              Median(rates), Median(a50), Median(a99), Median(c50), Median(c99), Median(cpu),
              o.orders, Median(rss));
  std::printf("median payorchd cpu: %.0f us per lifecycle; by thread:", 1e6 * Median(cpu) / o.orders);
  for (const auto& [name, v] : thread_cpu) std::printf(" %s %.0f", name.c_str(), Median(v));
  std::printf("\n");
  if (o.raw) {
    double raw = RawCeiling(url);
    std::printf("raw broker ceiling (bus_bench --only raw, same machine, now): %.0f msg/s / 4 "
                "messages per lifecycle = %.0f lifecycles/s; payorchd reaches %.0f%% of it\n",
                raw, raw / 4, raw > 0 ? 100 * Median(rates) / (raw / 4) : 0);
  }
  return 0;
}
