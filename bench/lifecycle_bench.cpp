// Lifecycle throughput of payorchd, end to end (issue 5): N orders through their whole
// life (purchase with MSISDN -> authorized -> shipped -> captured) against payex-sim
// with instant approval, payorchd as a process, the real broker (scripts/broker
// start). A window of W orders is kept in flight, so latencies are those of a busy
// steady state rather than of one big backlog. Prints lifecycles/s, p50/p99 latency
// from order event to outcome event per step, payorchd's CPU seconds (and per lifecycle
// by thread: payorchd names its threads) and peak RSS,
// and, measured in the same run, the raw broker ceiling (bus_bench --only raw)
// divided by the messages a lifecycle needs (four; six partitioned, as the router
// moves each order event once more). Figures only; asserts nothing.
// Partitioned (issue 13): --partitions P runs payorchd with P partitions on
// --instances I processes (instance k prefers the partitions p with p % I == k);
// --cluster starts a private three-node cluster (scripts/cluster) for the whole
// run and measures the raw ceiling on it.
//   lifecycle_bench [--orders N] [--window W] [--runs R] [--batch B] [--commit-delay MS]
//                   [--partitions P] [--instances I] [--cluster] [--skip-raw]
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
#include "kit/cluster.hpp"
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
  int partitions = 1;
  int instances = 1;
  bool cluster = false;
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
  bus.topology.partitions = static_cast<uint32_t>(o.partitions);
  bus.topology.partitions_exchange = "bench.partitions." + suffix;
  kit::Simulator sim(dir, {"--time-scale", "0.001", "--quiet"});
  kit::BusClient client(bus);
  std::vector<std::unique_ptr<kit::Daemon>> daemons;
  for (int k = 0; k < o.instances; ++k) {
    kit::DaemonOptions d;
    d.work_dir = o.instances == 1 ? dir : dir + "/i" + std::to_string(k);
    std::filesystem::create_directories(d.work_dir);
    d.bus = bus;
    d.payex_url = sim.url();
    d.log_level = "warn";
    d.overrides = {"engine.max_batch=" + std::to_string(o.batch), "store.quick_check=false",
                   "engine.commit_delay=" + std::to_string(o.commit_delay_ms) + "ms"};
    if (o.partitions > 1) {
      std::string prefer;
      for (int p = k; p < o.partitions; p += o.instances)
        prefer += (prefer.empty() ? "" : ",") + std::to_string(p);
      for (std::string s : {"bus.topology.partitions=" + std::to_string(o.partitions),
                            "bus.topology.partitions_exchange=" + bus.topology.partitions_exchange,
                            "store.path=" + dir + "/stores/p{partition}/payorch.db",
                            "instance.prefer=" + prefer})
        d.overrides.push_back(s);
    }
    daemons.push_back(std::make_unique<kit::Daemon>(d));
    daemons.back()->Start();
  }
  // Each instance serves its share before the clock starts.
  for (auto& daemon : daemons) {
    bool ready = false;
    kit::WaitFor(
        [&] {
          auto held = daemon->Held(&ready);
          return ready && held &&
                 held->size() == static_cast<size_t>(o.partitions / o.instances +
                                                     (&daemon - &daemons[0] <
                                                      o.partitions % o.instances));
        },
        std::chrono::seconds(30));
  }
  kit::Daemon& daemon = *daemons.front();

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

  // CPU of every instance together, by thread name.
  auto cpu_now = [&] {
    double s = 0;
    for (auto& d : daemons) s += CpuSeconds(d->process().pid());
    return s;
  };
  auto threads_now = [&] {
    std::map<std::string, double> all;
    for (auto& d : daemons)
      for (auto& [name, s] : ThreadCpuSeconds(d->process().pid())) all[name] += s;
    return all;
  };
  double cpu0 = cpu_now();
  auto threads0 = threads_now();
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
  r.cpu_s = cpu_now() - cpu0;
  r.thread_cpu_s = threads_now();
  for (auto& [name, s] : r.thread_cpu_s) s -= threads0[name];
  for (auto& d : daemons) r.rss_mib = std::max(r.rss_mib, PeakRssMiB(d->process().pid()));
  client.OnEvent(nullptr);
  if (std::getenv("LIFECYCLE_BENCH_METRICS")) {
    std::istringstream m(daemon.Get("/metrics").body);
    std::string line;
    while (std::getline(m, line))
      if (line[0] != '#' && line.find("_bucket") == std::string::npos) std::printf("  %s\n", line.c_str());
  }
  for (auto& d : daemons) {
    auto code = d->Term();
    if (!code || *code != 0) std::fprintf(stderr, "payorchd did not drain cleanly\n");
  }
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
    else if (a == "--partitions") o.partitions = next();
    else if (a == "--instances") o.instances = next();
    else if (a == "--cluster") o.cluster = true;
    else if (a == "--skip-raw") o.raw = false;
    else {
      std::fprintf(stderr,
                   "usage: lifecycle_bench [--orders N] [--window W] [--runs R] [--batch B] "
                   "[--commit-delay MS] [--partitions P] [--instances I] [--cluster] "
                   "[--skip-raw]\n");
      return 2;
    }
  }
  if (o.partitions < 1 || o.instances < 1 || (o.instances > 1 && o.partitions < 2)) {
    std::fprintf(stderr, "--partitions must be at least 1, and at least 2 for --instances > 1\n");
    return 2;
  }
  std::string url, raw_url;
  std::unique_ptr<kit::Cluster> cluster;
  try {
    if (o.cluster) {
      std::printf("starting a three-node cluster (scripts/cluster)...\n");
      std::fflush(stdout);
      cluster = std::make_unique<kit::Cluster>(3);
      url = cluster->Url();
      raw_url = cluster->urls().front();
    } else {
      url = raw_url = kit::BrokerUrl();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf(
      "lifecycle_bench: %d orders per run, window %d, %d runs, engine.max_batch %d, "
      "engine.commit_delay %d ms, %d partition%s on %d instance%s, %s\n",
      o.orders, o.window, o.runs, o.batch, o.commit_delay_ms, o.partitions,
      o.partitions == 1 ? "" : "s", o.instances, o.instances == 1 ? "" : "s",
      o.cluster ? "three-node cluster" : "one broker node");
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
    const double raw = RawCeiling(raw_url);
    const int messages = o.partitions > 1 ? 6 : 4;
    std::printf("raw broker ceiling (bus_bench --only raw on %s, same machine, now): %.0f msg/s "
                "/ %d messages per lifecycle = %.0f lifecycles/s; payorchd reaches %.0f%% of "
                "it\n",
                o.cluster ? "node 1 of the cluster" : "the broker", raw, messages, raw / messages,
                raw > 0 ? 100 * Median(rates) / (raw / messages) : 0);
  }
  return 0;
}
