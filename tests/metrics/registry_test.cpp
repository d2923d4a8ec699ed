// The metrics registry: the exact exposition text, escaping, identity of series,
// validation and collectors.
#include "metrics/registry.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>

#include <gtest/gtest.h>

namespace payorch::metrics {
namespace {

TEST(Metrics, RendersTheExpositionFormatExactly) {
  Registry reg;
  Counter& accepted =
      reg.counter("payorch_callbacks_total", "Callbacks received.", {{"result", "accepted"}});
  accepted.Inc();
  accepted.Inc(2);
  reg.counter("payorch_callbacks_total", "Callbacks received.", {{"result", "bad_token"}}).Inc();
  Gauge& open = reg.gauge("payorch_open_payments", "Payments not settled.");
  open.Set(7);
  open.Dec(2);
  open.Inc(0.5);
  Histogram& h = reg.histogram("payorch_payex_seconds", "PayEx call latency.", {0.25, 1, 2.5},
                               {{"op", "create"}});
  for (double v : {0.125, 0.25, 0.75, 3.0}) h.Observe(v);

  EXPECT_EQ(reg.Render(),
            "# HELP payorch_callbacks_total Callbacks received.\n"
            "# TYPE payorch_callbacks_total counter\n"
            "payorch_callbacks_total{result=\"accepted\"} 3\n"
            "payorch_callbacks_total{result=\"bad_token\"} 1\n"
            "# HELP payorch_open_payments Payments not settled.\n"
            "# TYPE payorch_open_payments gauge\n"
            "payorch_open_payments 5.5\n"
            "# HELP payorch_payex_seconds PayEx call latency.\n"
            "# TYPE payorch_payex_seconds histogram\n"
            "payorch_payex_seconds_bucket{op=\"create\",le=\"0.25\"} 2\n"
            "payorch_payex_seconds_bucket{op=\"create\",le=\"1\"} 3\n"
            "payorch_payex_seconds_bucket{op=\"create\",le=\"2.5\"} 3\n"
            "payorch_payex_seconds_bucket{op=\"create\",le=\"+Inf\"} 4\n"
            "payorch_payex_seconds_sum{op=\"create\"} 4.125\n"
            "payorch_payex_seconds_count{op=\"create\"} 4\n");
  EXPECT_EQ(accepted.value(), 3);
  EXPECT_EQ(open.value(), 5.5);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.sum(), 4.125);
  EXPECT_EQ(Registry::kContentType, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(Metrics, HistogramWithoutLabelsAndUnlabelledSeriesOrder) {
  Registry reg;
  Histogram& h = reg.histogram("lat", "h", {1});
  h.Observe(std::numeric_limits<double>::quiet_NaN());  // counted in +Inf, as in the Go client
  h.Observe(1);
  reg.gauge("g", "g", {{"b", "2"}, {"a", "1"}}).Set(-1.5e-05);
  EXPECT_EQ(reg.Render(),
            "# HELP lat h\n# TYPE lat histogram\n"
            "lat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum NaN\nlat_count 2\n"
            "# HELP g g\n# TYPE g gauge\n"
            "g{b=\"2\",a=\"1\"} -1.5e-05\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry reg;
  reg.counter("esc_total", "Help with \\ backslash,\nnewline and \"quotes\".",
              {{"v", "a\"b\\c\nd"}})
      .Inc();
  EXPECT_EQ(reg.Render(),
            "# HELP esc_total Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
            "# TYPE esc_total counter\n"
            "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, SameNameAndLabelsIsTheSameSeries) {
  Registry reg;
  Counter& a = reg.counter("c_total", "help", {{"x", "1"}, {"y", "2"}});
  Counter& b = reg.counter("c_total", "other help is ignored", {{"x", "1"}, {"y", "2"}});
  Counter& reordered = reg.counter("c_total", "help", {{"y", "2"}, {"x", "1"}});
  Counter& other = reg.counter("c_total", "help", {{"x", "1"}, {"y", "3"}});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a, &reordered);
  EXPECT_NE(&a, &other);
  EXPECT_EQ(&reg.gauge("g", "h"), &reg.gauge("g", "h"));
  Histogram& h1 = reg.histogram("h", "h", {1, 2}, {{"k", "v"}});
  // A trailing +Inf is the same bucket list.
  Histogram& h2 =
      reg.histogram("h", "h", {1, 2, std::numeric_limits<double>::infinity()}, {{"k", "v"}});
  EXPECT_EQ(&h1, &h2);
  a.Inc();
  // Registering more series keeps earlier references valid.
  for (int i = 0; i < 100; ++i) reg.counter("c_total", "help", {{"x", std::to_string(i)}});
  b.Inc();
  EXPECT_EQ(a.value(), 2);
  EXPECT_NE(reg.Render().find("c_total{x=\"1\",y=\"2\"} 2\n"), std::string::npos);
  // The first help text is the one rendered.
  EXPECT_NE(reg.Render().find("# HELP c_total help\n"), std::string::npos);
}

TEST(Metrics, RejectsBadNamesLabelsTypesAndBuckets) {
  Registry reg;
  for (std::string bad : {"", "1abc", "a-b", "a b", "\xC3\xA6", "a{b}"})
    EXPECT_THROW(reg.counter(bad, "h"), std::invalid_argument) << bad;
  EXPECT_NO_THROW(reg.counter("ok:name_1", "h"));
  EXPECT_NO_THROW(reg.gauge("_x", "h"));

  for (std::string bad : {"", "1a", "a:b", "__reserved", "a-b"})
    EXPECT_THROW(reg.gauge("lbl", "h", {{bad, "v"}}), std::invalid_argument) << bad;
  EXPECT_THROW(reg.gauge("lbl", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("hist", "h", {1}, {{"le", "1"}}), std::invalid_argument);
  EXPECT_NO_THROW(reg.gauge("lbl", "h", {{"le", "fine on a gauge"}}));

  reg.counter("taken", "h");
  EXPECT_THROW(reg.gauge("taken", "h"), std::invalid_argument);
  EXPECT_THROW(reg.histogram("taken", "h", {1}), std::invalid_argument);

  double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::vector<double> bad : std::vector<std::vector<double>>{{1, 1}, {2, 1}, {nan}, {1, nan}})
    EXPECT_THROW(reg.histogram("bad_buckets", "h", bad), std::invalid_argument);
  reg.histogram("buckets", "h", {1, 2});
  EXPECT_THROW(reg.histogram("buckets", "h", {1, 3}, {{"k", "v"}}), std::invalid_argument);
  EXPECT_THROW(reg.counter("taken", "h").Inc(-1), std::invalid_argument);

  // Failed registrations leave nothing behind.
  std::string text = reg.Render();
  EXPECT_EQ(text.find("bad_buckets"), std::string::npos) << text;
  EXPECT_EQ(text.find("# HELP hist "), std::string::npos) << text;
  EXPECT_NO_THROW(reg.gauge("bad_buckets", "now a gauge"));
}

TEST(Metrics, CollectorsRunBeforeEachRender) {
  Registry reg;
  int queue_depth = 3;
  std::vector<std::string> order;
  reg.on_collect([&](Registry& r) {
    order.push_back("first");
    r.gauge("queue_depth", "Messages waiting.").Set(queue_depth);
  });
  reg.on_collect([&](Registry&) { order.push_back("second"); });
  EXPECT_EQ(reg.Render(),
            "# HELP queue_depth Messages waiting.\n# TYPE queue_depth gauge\n"
            "queue_depth 3\n");
  queue_depth = 12;
  EXPECT_NE(reg.Render().find("queue_depth 12\n"), std::string::npos);
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "first", "second"}));
}

TEST(Metrics, ScopesLabelTheirSeriesAndShareTheFamilies) {
  Registry reg;
  reg.counter("commits_total", "Commits.").Inc();  // the process's own, unlabelled
  auto p0 = std::make_unique<Registry>(reg, Labels{{"partition", "0"}});
  Registry p1(reg, {{"partition", "1"}});
  p0->counter("commits_total", "Commits.").Inc(2);
  p1.counter("commits_total", "Commits.", {{"result", "ok"}}).Inc(3);
  int collected = 0;
  p0->on_collect([&](Registry& r) {
    ++collected;
    r.gauge("in_doubt", "In doubt.").Set(4);  // through the scope: labelled
  });
  EXPECT_EQ(p1.Render(), reg.Render());
  EXPECT_EQ(reg.Render(),
            "# HELP commits_total Commits.\n# TYPE commits_total counter\n"
            "commits_total 1\ncommits_total{partition=\"0\"} 2\n"
            "commits_total{partition=\"1\",result=\"ok\"} 3\n"
            "# HELP in_doubt In doubt.\n# TYPE in_doubt gauge\n"
            "in_doubt{partition=\"0\"} 4\n");
  EXPECT_EQ(collected, 3);
  // A scope gone (a partition released): its collectors no longer run, and its
  // series are no longer exported (its next holder exports them).
  p0.reset();
  EXPECT_EQ(reg.Render(),
            "# HELP commits_total Commits.\n# TYPE commits_total counter\n"
            "commits_total 1\ncommits_total{partition=\"1\",result=\"ok\"} 3\n");
  EXPECT_EQ(collected, 3);
  // Back again: from zero.
  Registry again(reg, {{"partition", "0"}});
  again.counter("commits_total", "Commits.").Inc();
  EXPECT_NE(reg.Render().find("commits_total{partition=\"0\"} 1\n"), std::string::npos);
  EXPECT_EQ(&p1.counter("commits_total", "Commits.", {{"result", "ok"}}),
            &reg.counter("commits_total", "Commits.", {{"partition", "1"}, {"result", "ok"}}));
}

TEST(Metrics, LatencyBuckets) {
  EXPECT_EQ(LatencyBucketsSeconds(), (std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                          0.1, 0.25, 0.5, 1, 2.5, 5, 10}));
  Registry reg;
  Histogram& h = reg.histogram("req_seconds", "h", LatencyBucketsSeconds());
  h.Observe(0.003);
  std::string text = reg.Render();
  EXPECT_NE(text.find("req_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("req_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("req_seconds_bucket{le=\"10\"} 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace payorch::metrics
