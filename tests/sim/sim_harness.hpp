// An in-process payex-sim on 127.0.0.1:0 for tests, with JSON helpers for the
// admin API. Fast simulated time (time_scale) so payer delays and the callback
// schedule pass in milliseconds.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "sim/config.hpp"
#include "sim/server.hpp"
#include "test_http.hpp"

namespace payorch::testing {

inline sim::SimConfig FastSimConfig() {
  sim::SimConfig c;
  c.log_level = 0;
  c.time_scale = 0.001;        // 1 simulated second = 1 ms
  c.approve_delay_ms = 2'000;  // 2 ms real
  c.decline_delay_ms = 2'000;
  c.ignore_timeout_ms = 60'000;  // 60 ms real
  c.callback_timeout_ms = 2'000;
  return c;
}

class TestSim {
 public:
  explicit TestSim(sim::SimConfig config = FastSimConfig()) : server_(std::move(config)) {
    server_.Start();
  }
  uint16_t port() const { return server_.port(); }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port()); }

  boost::json::value Admin(const std::string& method, const std::string& path,
                           const std::string& body = {}) {
    HttpReply r = Fetch(port(), method, path, body);
    EXPECT_EQ(r.status, 200) << method << " " << path << ": " << r.error << r.body;
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  }
  boost::json::value Get(const std::string& path) { return Admin("GET", path); }
  boost::json::value Post(const std::string& path, const std::string& body) {
    return Admin("POST", path, body);
  }
  void Faults(const std::string& json_array) {
    Post("/admin/faults", "{\"faults\":" + json_array + "}");
  }
  void Set(const std::string& knob, const std::string& value) {
    Post("/admin/config", "{\"" + knob + "\":\"" + value + "\"}");
  }
  boost::json::value Ledger() { return Get("/admin/ledger"); }

 private:
  sim::Server server_;
};

}  // namespace payorch::testing
