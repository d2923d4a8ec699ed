// Exposition format: https://prometheus.io/docs/instrumenting/exposition_formats/
// Numbers are written in the shortest form that reads back exactly (std::to_chars),
// which is also what the Go client writes for "le" (0.005, 1, 2.5, +Inf).
#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace payorch::metrics {
namespace {

enum Type { kCounter, kGauge, kHistogram };
constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};

bool ValidName(std::string_view s, bool colon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// The labels sorted by name: the identity of a series. Throws for a bad label set.
Labels SeriesKey(std::string_view metric, int type, const Labels& labels) {
  Labels key = labels;
  std::sort(key.begin(), key.end());
  for (std::size_t i = 0; i < key.size(); ++i) {
    const std::string& label = key[i].first;
    std::string where = "metric " + std::string(metric) + ": ";
    if (!ValidName(label, false) || label.rfind("__", 0) == 0)
      throw std::invalid_argument(where + "bad label name '" + label + "'");
    if (type == kHistogram && label == "le")
      throw std::invalid_argument(where + "label 'le' is reserved in histograms");
    if (i > 0 && key[i - 1].first == label)
      throw std::invalid_argument(where + "label '" + label + "' given twice");
  }
  return key;
}

void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
}

// {a="x",b="y"} with an optional extra label (le) last; nothing when empty.
void AppendLabels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out.push_back(',');
    first = false;
    out += name;
    out += "=\"";
    AppendEscaped(out, value, true);
    out.push_back('"');
  };
  for (const auto& [name, value] : labels) one(name, value);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out.push_back('}');
}

}  // namespace

void Counter::Inc(double by) {
  if (!(by >= 0)) throw std::invalid_argument("counter increment must be >= 0");
  value_ += by;
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i])))
      throw std::invalid_argument("histogram buckets must be finite and strictly increasing");
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::Observe(double v) {
  // Upper bounds are inclusive (le): the first bound >= v; NaN lands in +Inf, as in
  // the Go client.
  std::size_t b = bounds_.size();
  if (!std::isnan(v))
    b = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                 bounds_.begin());
  ++counts_[b];
  ++count_;
  sum_ += v;
}

struct Registry::Series {
  Labels labels;  // as first given, the rendered order
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct Registry::Family {
  std::string name;
  std::string help;
  int type;
  std::vector<double> buckets;  // histograms: the bounds every series shares
  using Series = Registry::Series;
  std::vector<std::unique_ptr<Series>> series;
  std::map<Labels, Series*> by_labels;  // key: labels sorted by name

  Series& Find(Labels key, Labels&& labels) {
    auto it = by_labels.find(key);
    if (it != by_labels.end()) return *it->second;
    auto s = std::make_unique<Series>();
    s->labels = std::move(labels);
    if (type == kCounter) s->counter = std::make_unique<Counter>();
    if (type == kGauge) s->gauge = std::make_unique<Gauge>();
    if (type == kHistogram) s->histogram = std::make_unique<Histogram>(buckets);
    Series& ref = *s;
    by_labels.emplace(std::move(key), s.get());
    series.push_back(std::move(s));
    return ref;
  }
};

Registry::Registry() = default;
Registry::Registry(Registry& parent, Labels labels)
    : parent_(&parent), scope_(std::move(labels)), alive_(std::make_shared<bool>(true)) {}
Registry::~Registry() {
  if (parent_ && !scope_.empty()) parent_->Forget(scope_);
}

void Registry::Forget(const Labels& labels) {
  if (parent_) return parent_->Forget(labels);
  auto carries = [&](const Labels& have) {
    return std::all_of(labels.begin(), labels.end(), [&](const auto& l) {
      return std::find(have.begin(), have.end(), l) != have.end();
    });
  };
  for (auto& family : families_) {
    for (auto it = family->by_labels.begin(); it != family->by_labels.end();)
      it = carries(it->first) ? family->by_labels.erase(it) : std::next(it);
    std::erase_if(family->series, [&](const auto& s) { return carries(s->labels); });
  }
}

Labels Registry::Scoped(const Labels& labels) const {
  Labels all = scope_;
  all.insert(all.end(), labels.begin(), labels.end());
  return all;
}

Registry::Family& Registry::FamilyFor(std::string_view name, std::string_view help, int type) {
  if (!ValidName(name, true))
    throw std::invalid_argument("bad metric name '" + std::string(name) + "'");
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    if (it->second->type != type)
      throw std::invalid_argument("metric " + std::string(name) + " is already a " +
                                  kTypeNames[it->second->type] + ", not a " + kTypeNames[type]);
    return *it->second;
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = type;
  Family& ref = *family;
  by_name_.emplace(ref.name, &ref);
  families_.push_back(std::move(family));
  return ref;
}

Registry::Series* Registry::Existing(std::string_view name, int type,
                                     const Labels& labels) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end() || it->second->type != type) return nullptr;
  const auto& by_labels = it->second->by_labels;
  if (labels.size() <= 1) {  // sorted already: no copy
    auto s = by_labels.find(labels);
    return s == by_labels.end() ? nullptr : s->second;
  }
  Labels key = labels;
  std::sort(key.begin(), key.end());
  auto s = by_labels.find(key);
  return s == by_labels.end() ? nullptr : s->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  if (parent_) return parent_->counter(name, help, Scoped(labels));
  if (Series* s = Existing(name, kCounter, labels)) return *s->counter;
  Labels key = SeriesKey(name, kCounter, labels);
  Family& family = FamilyFor(name, help, kCounter);
  return *family.Find(std::move(key), Labels(labels)).counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  if (parent_) return parent_->gauge(name, help, Scoped(labels));
  if (Series* s = Existing(name, kGauge, labels)) return *s->gauge;
  Labels key = SeriesKey(name, kGauge, labels);
  Family& family = FamilyFor(name, help, kGauge);
  return *family.Find(std::move(key), Labels(labels)).gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               const std::vector<double>& buckets, const Labels& labels) {
  if (parent_) return parent_->histogram(name, help, buckets, Scoped(labels));
  if (Series* s = Existing(name, kHistogram, labels);
      s && s->histogram->upper_bounds() == buckets)
    return *s->histogram;
  // Validate before registering, so a bad bucket or label list leaves no family behind.
  Labels key = SeriesKey(name, kHistogram, labels);
  Histogram validated(buckets);
  bool is_new = by_name_.find(name) == by_name_.end();
  Family& family = FamilyFor(name, help, kHistogram);
  if (is_new) {
    family.buckets = validated.upper_bounds();
  } else if (family.buckets != validated.upper_bounds()) {
    throw std::invalid_argument("metric " + family.name + " is registered with other buckets");
  }
  return *family.Find(std::move(key), Labels(labels)).histogram;
}

void Registry::on_collect(std::function<void(Registry&)> f) {
  if (parent_) {
    Registry* root = parent_;
    while (root->parent_) root = root->parent_;
    std::weak_ptr<bool> alive = alive_;
    root->collectors_.push_back(
        {[this, alive, f = std::move(f)](Registry&) {
           if (alive.lock()) f(*this);
         },
         alive, true});
    return;
  }
  collectors_.push_back({std::move(f), {}, false});
}

std::string Registry::Render() {
  if (parent_) return parent_->Render();
  std::erase_if(collectors_, [](const Collector& c) { return c.scoped && c.alive.expired(); });
  // By index: a collector may register new metrics or collectors.
  for (std::size_t i = 0; i < collectors_.size(); ++i) collectors_[i].f(*this);
  std::string out;
  for (const auto& family : families_) {
    if (family->series.empty()) continue;
    out += "# HELP ";
    out += family->name;
    out.push_back(' ');
    AppendEscaped(out, family->help, false);
    out += "\n# TYPE ";
    out += family->name;
    out.push_back(' ');
    out += kTypeNames[family->type];
    out.push_back('\n');
    for (const auto& s : family->series) {
      if (s->histogram) {
        const Histogram& h = *s->histogram;
        uint64_t cumulative = 0;
        for (std::size_t b = 0; b < h.bucket_counts().size(); ++b) {
          cumulative += h.bucket_counts()[b];
          bool inf = b == h.upper_bounds().size();
          out += family->name;
          out += "_bucket";
          AppendLabels(out, s->labels, "le", inf ? "+Inf" : Number(h.upper_bounds()[b]));
          out.push_back(' ');
          out += std::to_string(cumulative);
          out.push_back('\n');
        }
        out += family->name;
        out += "_sum";
        AppendLabels(out, s->labels);
        out.push_back(' ');
        out += Number(h.sum());
        out += '\n';
        out += family->name;
        out += "_count";
        AppendLabels(out, s->labels);
        out.push_back(' ');
        out += std::to_string(h.count());
        out.push_back('\n');
      } else {
        out += family->name;
        AppendLabels(out, s->labels);
        out.push_back(' ');
        out += Number(s->counter ? s->counter->value() : s->gauge->value());
        out.push_back('\n');
      }
    }
  }
  return out;
}

const std::vector<double>& LatencyBucketsSeconds() {
  static const std::vector<double> buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1,     2.5,  5,     10};
  return buckets;
}

}  // namespace payorch::metrics
