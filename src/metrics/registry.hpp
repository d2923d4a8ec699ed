// A small Prometheus registry rendering the text exposition format 0.0.4, for
// /metrics. Our own because it is ~200 lines and needs no HTTP server, while the
// packaged prometheus-cpp (bookworm: prometheus-cpp-dev 1.0.1) brings civetweb and
// curl along. Single-threaded (the engine thread), no locks. Registration throws
// std::invalid_argument for a bad name, label or bucket list, or a name reused with
// another type; Render never throws.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace payorch::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double by = 1);  // by >= 0, else std::invalid_argument (counters only go up)
  // Up to a total counted elsewhere (a component's own count, read at a scrape);
  // a smaller total changes nothing.
  void RaiseTo(double total) {
    if (total > value_) value_ = total;
  }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Gauge {
 public:
  void Set(double v) { value_ = v; }
  void Inc(double by = 1) { value_ += by; }
  void Dec(double by = 1) { value_ -= by; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Histogram {
 public:
  // Finite, strictly increasing upper bounds; +Inf is implied (a trailing +Inf is
  // accepted and dropped). std::invalid_argument otherwise.
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  const std::vector<double>& upper_bounds() const { return bounds_; }  // without +Inf
  // Per bucket, not cumulative; one more than upper_bounds(), the last for +Inf.
  const std::vector<uint64_t>& bucket_counts() const { return counts_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Registry {
 public:
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  Registry();
  // A scope of `parent`: every series registered through it gets `labels` first
  // (a partition's engine: {partition="3"}); families, collectors and Render are the
  // parent's. When the scope is destroyed its collectors go, and so do the series
  // carrying its labels (a partition released by this process is exported by its
  // next holder, not here; counters start again from zero if it comes back, which
  // Prometheus reads as a reset). The parent must outlive it; references to its
  // series must not.
  Registry(Registry& parent, Labels labels);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The same name and labels (in any order) return the same object; the first help
  // text of a name is the one rendered.
  // A name and labels seen before cost a lookup and nothing else (no validation, no
  // allocation for up to one label): call sites on hot paths need not cache.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // Buckets: finite, strictly increasing upper bounds; +Inf is implied (a trailing
  // +Inf is accepted). A name keeps the buckets it was first registered with.
  Histogram& histogram(std::string_view name, std::string_view help,
                       const std::vector<double>& buckets, const Labels& labels = {});

  // Runs before each Render, in registration order (to set gauges from current state).
  void on_collect(std::function<void(Registry&)> f);
  // # HELP and # TYPE once per family, families in registration order, series in
  // registration order.
  std::string Render();

 private:
  struct Family;
  Family& FamilyFor(std::string_view name, std::string_view help, int type);
  // The series of a family already registered with this type, or nullptr.
  struct Series;
  Series* Existing(std::string_view name, int type, const Labels& labels) const;
  std::vector<std::unique_ptr<Family>> families_;
  std::map<std::string, Family*, std::less<>> by_name_;
  struct Collector {
    std::function<void(Registry&)> f;
    std::weak_ptr<bool> alive;  // a scope's; expired: dropped at the next Render
    bool scoped = false;
  };
  std::vector<Collector> collectors_;
  // Drops every series whose labels include all of `labels` (a scope's, at its end).
  void Forget(const Labels& labels);
  Labels Scoped(const Labels& labels) const;
  Registry* parent_ = nullptr;
  Labels scope_;
  std::shared_ptr<bool> alive_;  // a scope's: its collectors run while it lives
};

// {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
const std::vector<double>& LatencyBucketsSeconds();

}  // namespace payorch::metrics
