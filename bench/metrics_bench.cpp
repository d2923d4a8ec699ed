// payorch's metrics registry against prometheus-cpp core 1.0.1 (Debian's), for the
// question of issue 14: should payorch use prometheus-cpp instead of its own? The
// same work on both, in one process, medians of --runs:
//   inc      a labelled counter looked up by name and labels and incremented, as the
//            engine does per PayEx call (24 label sets, cycled);
//   observe  the same for a histogram with payorch's 13 latency buckets;
//   cached   an increment through a reference kept by the caller;
//   render   one /metrics text of --series series (counters, one label).
//   metrics_bench [--runs 5] [--ops 2000000] [--series 2000]
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "metrics/registry.hpp"

namespace {

using Clock = std::chrono::steady_clock;

const char* kOps[] = {"create", "authorize", "capture", "cancel", "reverse", "read"};
const char* kOutcomes[] = {"success", "definite_failure", "transient", "in_doubt"};

template <typename F>
double NsPerOp(long ops, F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / ops;
}

volatile size_t g_sink = 0;

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  long ops = 2'000'000;
  int series = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--ops")) ops = std::atol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--series")) series = std::atoi(argv[i + 1]);
  }
  std::vector<double> our_inc, their_inc, our_obs, their_obs, our_cached, their_cached, our_render,
      their_render;
  size_t our_bytes = 0, their_bytes = 0;
  const std::vector<double> buckets = payorch::metrics::LatencyBucketsSeconds();
  for (int run = 0; run < runs; ++run) {
    payorch::metrics::Registry ours;
    auto theirs = std::make_shared<prometheus::Registry>();
    auto& family = prometheus::BuildCounter()
                       .Name("payorch_payex_calls_total")
                       .Help("PayEx calls by operation and outcome.")
                       .Register(*theirs);
    auto& hfamily = prometheus::BuildHistogram()
                        .Name("payorch_payex_call_seconds")
                        .Help("Latency of PayEx calls by operation.")
                        .Register(*theirs);
    our_inc.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i)
        ours.counter("payorch_payex_calls_total", "PayEx calls by operation and outcome.",
                     {{"operation", kOps[i % 6]}, {"outcome", kOutcomes[i % 4]}})
            .Inc();
    }));
    their_inc.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i)
        family.Add({{"operation", kOps[i % 6]}, {"outcome", kOutcomes[i % 4]}}).Increment();
    }));
    our_obs.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i)
        ours.histogram("payorch_payex_call_seconds", "Latency of PayEx calls by operation.",
                       buckets, {{"operation", kOps[i % 6]}})
            .Observe(0.001 * static_cast<double>(i % 300));
    }));
    const prometheus::Histogram::BucketBoundaries bounds(buckets.begin(), buckets.end());
    their_obs.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i)
        hfamily.Add({{"operation", kOps[i % 6]}}, bounds)
            .Observe(0.001 * static_cast<double>(i % 300));
    }));
    auto& our_counter = ours.counter("cached_total", "A counter kept by reference.");
    auto& their_counter =
        prometheus::BuildCounter().Name("cached_total").Help("h").Register(*theirs).Add({});
    our_cached.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i) our_counter.Inc();
    }));
    their_cached.push_back(NsPerOp(ops, [&] {
      for (long i = 0; i < ops; ++i) their_counter.Increment();
    }));
    // Rendering many series.
    auto& many = prometheus::BuildCounter().Name("many_total").Help("Many.").Register(*theirs);
    for (int s = 0; s < series; ++s) {
      ours.counter("many_total", "Many.", {{"order", "o" + std::to_string(s)}}).Inc(s);
      many.Add({{"order", "o" + std::to_string(s)}}).Increment(s);
    }
    const int renders = 50;
    our_render.push_back(NsPerOp(renders,
                                 [&] {
                                   for (int r = 0; r < renders; ++r) {
                                     std::string text = ours.Render();
                                     our_bytes = text.size();
                                     g_sink += text.size();
                                   }
                                 }) /
                         1000.0);
    their_render.push_back(NsPerOp(renders,
                                   [&] {
                                     for (int r = 0; r < renders; ++r) {
                                       std::string text = prometheus::TextSerializer().Serialize(
                                           theirs->Collect());
                                       their_bytes = text.size();
                                       g_sink += text.size();
                                     }
                                   }) /
                           1000.0);
  }
  using payorch::bench::Median;
  auto row = [](const char* what, const char* unit, double a, double b) {
    std::printf("%-46s %10.1f %10.1f %8.2fx\n", what, a, b, b / a);
    (void)unit;
  };
  std::printf("metrics_bench: %d runs, %ld ops, %d series; medians\n", runs, ops, series);
  std::printf("%-46s %10s %10s %9s\n", "", "payorch", "prom-cpp", "prom/ours");
  row("labelled counter, looked up + inc (ns)", "ns", Median(our_inc), Median(their_inc));
  row("labelled histogram, looked up + observe (ns)", "ns", Median(our_obs), Median(their_obs));
  row("counter by reference, inc (ns)", "ns", Median(our_cached), Median(their_cached));
  row("render all series (us)", "us", Median(our_render), Median(their_render));
  std::printf("text size: payorch %zu bytes, prometheus-cpp %zu bytes\n", our_bytes, their_bytes);
  return 0;
}
