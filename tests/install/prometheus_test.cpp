// Debian's prometheus against a running payorchd (issue 14): it scrapes /metrics,
// loads the shipped rules (every rule healthy), and payorch's series come back
// through its query API (and the recording rules over them); every query of the
// shipped Grafana dashboard is accepted by it. Real parts: payorchd and payex-sim as processes, the
// local broker, /usr/bin/prometheus on loopback.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <filesystem>
#include <fstream>

#include "e2e/e2e_util.hpp"

namespace payorch {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

using kit::ReadFile;

class Prometheus {
 public:
  Prometheus(const std::filesystem::path& dir, uint16_t target_port) {
    const std::string binary = "/usr/bin/prometheus";
    if (!std::filesystem::exists(binary))
      throw std::runtime_error(binary + " is missing: scripts/setup installs Debian's prometheus");
    std::ofstream(dir / "prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "rule_files:\n  - " << PAYORCH_SOURCE_DIR << "/config/prometheus/payorch-rules.yml\n"
        << "scrape_configs:\n  - job_name: payorch\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << target_port << "']\n";
    port_ = kit::FreeLoopbackPort();
    process_ = kit::Process::Start(
        {binary, "--config.file=" + (dir / "prometheus.yml").string(),
         "--storage.tsdb.path=" + (dir / "tsdb").string(),
         "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        {}, (dir / "prometheus.log").string());
    log_ = (dir / "prometheus.log").string();
  }
  std::string Log() const { return ReadFile(log_); }
  bool Ready() { return kit::HttpCall("127.0.0.1", port_, "GET", "/-/ready").status == 200; }
  // GET /api/v1/<path>; the parsed body (null when it does not answer).
  json::value Api(const std::string& target) {
    kit::HttpResult r = kit::HttpCall("127.0.0.1", port_, "GET", "/api/v1/" + target);
    if (r.status == 0) return nullptr;
    return json::parse(r.body);
  }
  json::value Query(const std::string& promql) {
    return Api("query?query=" + boost::urls::encode(promql, boost::urls::unreserved_chars));
  }

 private:
  kit::Process process_;
  uint16_t port_ = 0;
  std::string log_;
};

size_t Results(const json::value& v) {
  if (!v.is_object() || v.at("status") != "success") return 0;
  return v.at("data").at("result").as_array().size();
}

TEST(PrometheusTest, ScrapesPayorchdLoadsTheRulesAndAnswersTheDashboardsQueries) {
  e2e::World w;
  w.bus().Publish(kit::Purchase("order-prom-1", 1000));
  ASSERT_TRUE(kit::WaitFor([&] { return w.bus().Count() >= 1; }, 30s)) << w.daemon().LogTail();

  Prometheus prom(w.dir(), w.daemon().http_port());
  ASSERT_TRUE(kit::WaitFor([&] { return prom.Ready(); }, 30s)) << prom.Log();

  // payorchd's own series, scraped: ready, and the order event it consumed.
  ASSERT_TRUE(kit::WaitFor(
      [&] {
        json::value v = prom.Query("payorch_ready{job=\"payorch\"} == 1");
        return Results(v) == 1;
      },
      30s))
      << json::serialize(prom.Query("up")) << prom.Log();
  json::value consumed = prom.Query("sum(payorch_events_consumed_total{job=\"payorch\"})");
  ASSERT_EQ(Results(consumed), 1u) << json::serialize(consumed);
  EXPECT_GE(
      std::stod(std::string(consumed.at("data").at("result").at(0).at("value").at(1).as_string())),
      1.0);

  // The shipped rules: loaded, every one evaluated without error.
  json::value rules;
  ASSERT_TRUE(kit::WaitFor(
      [&] {
        rules = prom.Api("rules");
        if (!rules.is_object() || rules.at("status") != "success") return false;
        for (const auto& g : rules.at("data").at("groups").as_array())
          for (const auto& r : g.at("rules").as_array())
            if (!r.as_object().contains("lastEvaluation") ||
                r.at("lastEvaluation").as_string().starts_with("0001"))
              return false;
        return true;
      },
      30s))
      << json::serialize(rules);
  size_t alerts = 0, records = 0;
  for (const auto& g : rules.at("data").at("groups").as_array())
    for (const auto& r : g.at("rules").as_array()) {
      EXPECT_EQ(r.at("health"), "ok") << json::serialize(r);
      (r.at("type") == "alerting" ? alerts : records)++;
    }
  EXPECT_GE(alerts, 9u);
  EXPECT_GE(records, 9u);
  // A recording rule over payorchd's series has a value.
  for (const char* record : {"payorch:events_consumed:rate5m", "payorch:events_published:rate5m"})
    EXPECT_TRUE(kit::WaitFor([&] { return Results(prom.Query(record)) > 0; }, 30s)) << record;

  // Every query of the dashboard, with its variables filled in as Grafana would.
  const json::value dash =
      json::parse(ReadFile(std::string(PAYORCH_SOURCE_DIR) + "/config/grafana/payorch.json"));
  size_t queries = 0;
  for (const auto& panel : dash.at("panels").as_array())
    for (const auto& target : panel.at("targets").as_array()) {
      std::string expr(target.at("expr").as_string());
      for (auto [var, value] :
           {std::pair<std::string, std::string>{"$job", "payorch"}, {"$__rate_interval", "1m"}})
        for (size_t at = expr.find(var); at != std::string::npos; at = expr.find(var, at))
          expr.replace(at, var.size(), value);
      json::value v = prom.Query(expr);
      ASSERT_TRUE(v.is_object()) << expr;
      EXPECT_EQ(v.at("status"), "success")
          << panel.at("title") << ": " << expr << " " << json::serialize(v);
      ++queries;
    }
  EXPECT_GE(queries, 10u);
}

}  // namespace
}  // namespace payorch
