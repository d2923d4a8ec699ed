// payorchd: the orchestrator process. Loads the configuration, opens the store,
// starts the engine, the callback/health/metrics server and the operators' admin
// endpoint on one io_context thread, and drains on SIGTERM/SIGINT (exit 0).
// Exit codes: 0 drained, 1 start-up or runtime failure, 2 usage or configuration.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "config/config.hpp"
#include "bus/config.hpp"
#include "engine/engine.hpp"
#include "engine/log.hpp"
#include "http/callbacks.hpp"
#include "http/server.hpp"
#include "metrics/registry.hpp"
#include "domain/partition.hpp"
#include "app/reconcile_json.hpp"
#include "bus/topology.hpp"
#include "runtime/instance.hpp"

namespace {

using namespace payorch;
using engine::Level;
using engine::Log;

constexpr const char* kUsage = R"(payorchd - the payorch payment orchestrator (Vipps through PayEx)

Usage: payorchd [--config FILE] [--set section.key=value]... [--ready-file FILE]
       payorchd --check-config [--config FILE] [--set ...]

  --config FILE       the configuration (default: config/payorch.toml, or $PAYORCH_CONFIG)
  --set S.K=V         override one setting of the file (repeatable)
  --ready-file FILE   once serving, write "http_port=N", "admin_port=N", "pid=N" lines here
  --check-config      validate the configuration, print it (secrets masked) and exit
  --help              this text

Secrets come from the environment only: PAYORCH_PAYEX_TOKEN, PAYORCH_CALLBACK_SECRET
(at least 32 bytes), PAYORCH_AMQP_PASSWORD (optional). SIGTERM or SIGINT drains: intake
stops, decided work is committed and acked, confirms are awaited, then exit 0.
Endpoints: POST <http.callback_base_url>/<order_id>?token=..., GET /healthz, /readyz,
/metrics on [http]; POST /admin/payments/<order_id>/resolve|republish, GET /admin/ping
on [admin].
Partitioned (bus.topology.partitions > 1), it serves the partitions whose stores'
locks it takes ([instance] partitions, prefer) and takes over the others when their
holder dies or drains; several payorchd instances share the partitions.
)";

struct Args {
  std::string config = "config/payorch.toml";
  std::vector<std::string> overrides;
  std::string ready_file;
  bool check = false;
};

// nullopt: exit with the code in `exit_code`.
std::optional<Args> ParseArgs(int argc, char** argv, int& exit_code) {
  Args a;
  if (const char* env = std::getenv("PAYORCH_CONFIG"); env && *env) a.config = env;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      std::string prefix = std::string(name) + "=";
      if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
      if (arg == name && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      return std::nullopt;
    } else if (arg == "--check-config") {
      a.check = true;
    } else if (auto v = value("--config")) {
      a.config = *v;
    } else if (auto v = value("--set")) {
      a.overrides.push_back(*v);
    } else if (auto v = value("--ready-file")) {
      a.ready_file = *v;
    } else {
      std::cerr << "payorchd: unknown or incomplete argument '" << arg
                << "' (see payorchd --help)\n";
      exit_code = 2;
      return std::nullopt;
    }
  }
  return a;
}

// The path part of the public callback URL: "/callbacks/payex/".
std::string CallbackPrefix(const std::string& url) {
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  std::string path = slash == std::string::npos ? "/" : url.substr(slash);
  if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
  if (path.empty() || path.back() != '/') path += '/';
  return path;
}

// "http://127.0.0.1:0/x" -> "http://127.0.0.1:<port>/x"; other URLs unchanged.
std::string WithBoundPort(const std::string& url, uint16_t port) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto path = url.find('/', scheme + 3);
  std::string authority = url.substr(scheme + 3, path == std::string::npos ? std::string::npos
                                                                           : path - scheme - 3);
  if (authority.size() < 2 || authority.substr(authority.size() - 2) != ":0") return url;
  authority.resize(authority.size() - 1);
  authority += std::to_string(port);
  return url.substr(0, scheme + 3) + authority + (path == std::string::npos ? "" : url.substr(path));
}

http::Response Text(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

http::Response Json(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

void WriteReadyFile(const std::string& path, uint16_t http_port, uint16_t admin_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "http_port=" << http_port << "\nadmin_port=" << admin_port << "\npid=" << getpid()
      << "\n";
    if (!f) throw std::runtime_error("cannot write the ready file " + tmp);
  }
  std::filesystem::rename(tmp, path);  // readers never see half a file
}

int Run(const Args& args) {
  config::Config cfg;
  try {
    cfg = config::LoadConfig(args.config, args.overrides);
  } catch (const config::ConfigError& e) {
    std::cerr << "payorchd: " << e.what() << "\n";
    return 2;
  }
  engine::InitLogging(static_cast<Level>(cfg.log.level), cfg.log.format == config::LogFormat::kJson);
  if (args.check) {
    std::cout << config::DescribeConfig(cfg) << "\n";
    return 0;
  }
  engine::LogLine(Level::kInfo, config::DescribeConfig(cfg));
  // The bus adapter's own lines (connects, reconnects, dead-lettering) join ours.
  bus::SetLogSink([](std::string_view line) { engine::LogLine(Level::kInfo, line); });

  boost::asio::io_context io(1);
  metrics::Registry metrics;
  // The partitions this process serves (one engine each; one, unpartitioned). Built
  // once the servers listen (below); requests before that get 503.
  std::optional<runtime::Instance> instance;
  runtime::Instance* inst = nullptr;

  http::CallbackOptions cb;
  // Empty http.callback_base_url: PayEx is sent no callbackUrl and polling alone
  // drives the payments; no callback path is served.
  const bool callbacks = !cfg.http.callback_base_url.empty();
  cb.path_prefix = CallbackPrefix(cfg.http.callback_base_url);
  cb.secret = cfg.callback_secret;
  auto log_http = [](std::string_view line) { engine::LogLine(Level::kDebug, line); };
  // A line per request at debug level; not even built otherwise.
  const bool log_requests = engine::LogEnabled(Level::kDebug);

  http::ServerOptions public_options;
  public_options.address = cfg.http.listen_address;
  public_options.port = cfg.http.port;
  public_options.max_body_bytes = cfg.http.max_body_bytes;
  public_options.read_timeout = cfg.http.read_timeout;
  public_options.idle_timeout = cfg.http.idle_timeout;
  public_options.max_connections = cfg.http.max_connections;
  public_options.name = "public";
  public_options.log = log_http;
  public_options.log_requests = log_requests;
  http::Server public_server(
      io.get_executor(), public_options, [&](http::Request req, http::Reply reply) {
        const bool fixed = req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics";
        if (!fixed && callbacks && req.path.rfind(cb.path_prefix, 0) == 0) {
          if (!inst) return reply(Text(503, "starting\n"));
          http::Response r = http::HandleCallback(req, cb, [&](const std::string& order_id) {
            engine::Engine* eng = inst->EngineFor(order_id);
            if (!eng)
              return inst->Draining() ? http::HintResult::kStopping : http::HintResult::kElsewhere;
            return eng->OnCallback(order_id) == engine::HintOutcome::kAccepted
                       ? http::HintResult::kAccepted
                       : http::HintResult::kUnknownPayment;
          });
          metrics
              .counter("payorch_callbacks_total", "PayEx callbacks by HTTP status.",
                       {{"status", std::to_string(r.status)}})
              .Inc();
          reply(std::move(r));
          return;
        }
        if (req.method != "GET") {
          http::Response r = Text(405, "method_not_allowed\n");
          r.headers.emplace_back("Allow", "GET");
          reply(std::move(r));
          return;
        }
        if (req.path == "/healthz") {
          reply(Text(200, "ok\n"));
        } else if (!inst) {
          reply(Text(503, "starting\n"));
        } else if (req.path == "/readyz") {
          engine::EngineStatus s = inst->Status();
          reply(s.Ready() ? Text(200, "ready\n") : Text(503, "not ready: " + s.detail + "\n"));
        } else if (req.path == "/metrics") {
          http::Response r = Text(200, metrics.Render());
          r.content_type = "text/plain; version=0.0.4; charset=utf-8";
          reply(std::move(r));
        } else {
          reply(Text(404, "not_found\n"));
        }
      });

  http::ServerOptions admin_options;
  admin_options.address = cfg.admin.listen_address;
  admin_options.port = cfg.admin.port;
  admin_options.name = "admin";
  admin_options.log = log_http;
  admin_options.log_requests = log_requests;
  http::Server admin_server(
      io.get_executor(), admin_options, [&](http::Request req, http::Reply reply) {
        const std::string prefix = "/admin/payments/";
        if (!inst) return reply(Json(503, "{\"error\":\"starting\"}"));
        if (req.path == "/admin/ping" && req.method == "GET") {
          engine::EngineStatus s = inst->Status();
          std::string held;
          for (uint32_t p : inst->Held()) held += (held.empty() ? "" : ",") + std::to_string(p);
          std::string failed;
          for (const runtime::Instance::Failure& f : inst->Failures())
            failed += std::string(failed.empty() ? "" : ",") +
                      "{\"partition\":" + std::to_string(f.partition) +
                      ",\"attempts\":" + std::to_string(f.attempts) +
                      ",\"error\":" + JsonString(f.error) +
                      ",\"retry_in_ms\":" + std::to_string(static_cast<long>(f.retry_in_s * 1000)) +
                      "}";
          reply(Json(200, "{\"pid\":" + std::to_string(getpid()) +
                              ",\"ready\":" + (s.Ready() ? "true" : "false") +
                              ",\"detail\":" + JsonString(s.detail) +
                              ",\"partitions\":" + std::to_string(inst->partitions()) +
                              ",\"held\":[" + held + "],\"failed\":[" + failed + "]}"));
          return;
        }
        if (req.path == "/admin/outbox/parked" && req.method == "GET") {
          std::string list;
          std::vector<engine::ParkedEvent> parked;
          for (engine::Engine* eng : inst->Engines())
            for (engine::ParkedEvent& p : eng->Parked()) parked.push_back(std::move(p));
          for (const engine::ParkedEvent& p : parked) {
            if (!list.empty()) list += ",";
            list += "{\"order_id\":" + JsonString(p.order_id) +
                    ",\"event_id\":" + JsonString(p.event_id) +
                    ",\"sequence\":" + std::to_string(p.sequence) +
                    ",\"kind\":" + JsonString(p.kind) + ",\"reason\":" + JsonString(p.reason) +
                    ",\"since_ms\":" + std::to_string(domain::ToMillis(p.since)) +
                    ",\"waiting_behind\":" + std::to_string(p.waiting_behind) + "}";
          }
          reply(Json(200, "{\"parked\":[" + list + "]}"));
          return;
        }
        if (req.path.rfind(prefix, 0) == 0) {
          std::string rest = req.path.substr(prefix.size());
          auto slash = rest.rfind('/');
          if (slash != std::string::npos && slash > 0) {
            std::string order_id = rest.substr(0, slash);
            std::string action = rest.substr(slash + 1);
            if (action == "resolve" || action == "republish" || action == "reconcile") {
              const char* method = action == "reconcile" ? "GET" : "POST";
              if (req.method != method) {
                http::Response r = Json(405, "{\"error\":\"method_not_allowed\"}");
                r.headers.emplace_back("Allow", method);
                reply(std::move(r));
                return;
              }
              Log(action == "reconcile" ? Level::kDebug : Level::kInfo, "admin.request",
                  {{"order_id", order_id}, {"action", action}, {"from", req.remote_address}});
              engine::Engine* eng = inst->EngineFor(order_id);
              if (!eng && inst->Draining()) {
                reply(Json(503, "{\"error\":\"stopping\",\"order_id\":" + JsonString(order_id) +
                                    "}"));
                return;
              }
              if (!eng) {
                reply(Json(503, "{\"error\":\"partition_elsewhere\",\"order_id\":" +
                                    JsonString(order_id) + ",\"partition\":" +
                                    std::to_string(domain::PartitionOf(order_id,
                                                                       inst->partitions())) +
                                    "}"));
                return;
              }
              if (action == "reconcile") {
                // Answered when PayEx has (the read is the engine's, on this thread).
                eng->Reconcile(order_id, [order_id, reply](engine::ReconcileOutcome o) {
                  auto [status, body] = app::ReconcileJson(order_id, o);
                  reply(Json(status, body));
                });
              } else if (action == "resolve") {
                bool ok = eng->Resolve(order_id) == engine::HintOutcome::kAccepted;
                reply(ok ? Json(202, "{\"order_id\":" + JsonString(order_id) +
                                         ",\"accepted\":true}")
                         : Json(404, "{\"error\":\"unknown_order\",\"order_id\":" +
                                         JsonString(order_id) + "}"));
              } else {
                engine::RepublishOutcome o = eng->Republish(order_id);
                reply(o.known ? Json(200, "{\"order_id\":" + JsonString(order_id) +
                                              ",\"events\":" + std::to_string(o.events) + "}")
                              : Json(404, "{\"error\":\"unknown_order\",\"order_id\":" +
                                              JsonString(order_id) + "}"));
              }
              return;
            }
          }
        }
        reply(Json(404, "{\"error\":\"not_found\"}"));
      });

  // The servers' own counts, read at each scrape.
  metrics.on_collect([&](metrics::Registry& m) {
    for (auto [name, server] : {std::pair{"public", &public_server}, {"admin", &admin_server}}) {
      const http::Server::Stats st = server->stats();
      const metrics::Labels l = {{"server", name}};
      m.gauge("payorch_http_open_connections", "Open HTTP connections.", l)
          .Set(static_cast<double>(st.open_connections));
      m.counter("payorch_http_connections_refused_total",
                "New HTTP connections closed at once: all of http.max_connections were "
                "being answered.",
                l)
          .RaiseTo(static_cast<double>(st.over_limit));
      m.counter("payorch_http_connections_evicted_total",
                "Idle or slow HTTP connections cut to make room for a new one "
                "(http.max_connections).",
                l)
          .RaiseTo(static_cast<double>(st.evicted));
      m.counter("payorch_http_timeouts_total",
                "HTTP connections dropped for a request or answer slower than "
                "http.read_timeout.",
                l)
          .RaiseTo(static_cast<double>(st.timeouts));
    }
    // What /readyz answers, for alerting (payorch_ready == 0).
    m.gauge("payorch_ready", "1 when /readyz answers ready (serving), else 0.")
        .Set(inst && inst->Status().Ready() ? 1 : 0);
  });

  int exit_code = 0;
  bool stopping = false;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (!stopping) {
        stopping = true;
        Log(Level::kInfo, "payorchd.signal", {{"signal", std::to_string(sig)}, {"action", "drain"}});
        inst->Drain();
        wait_signal();
      } else {
        Log(Level::kWarn, "payorchd.signal", {{"signal", std::to_string(sig)}, {"action", "exit now"}});
        exit_code = 1;
        io.stop();
      }
    });
  };
  wait_signal();

  try {
    uint16_t http_port = public_server.Start();
    uint16_t admin_port = admin_server.Start();
    // Port 0 in the callback URL means the port just bound (tests, the demo).
    cfg.payex.callback_url_base = WithBoundPort(cfg.payex.callback_url_base, http_port);
    instance.emplace(io.get_executor(), cfg, metrics);
    instance->Start([&] {
      public_server.Stop();
      admin_server.Stop();
      signals.cancel();
      if (instance->Fatal()) exit_code = 1;
      io.stop();
    });
    inst = &*instance;
    Log(Level::kInfo, "payorchd.serving",
        {{"http", cfg.http.listen_address + ":" + std::to_string(http_port)},
         {"admin", cfg.admin.listen_address + ":" + std::to_string(admin_port)},
         {"callback_path", callbacks ? cb.path_prefix : std::string("none: polling alone")},
         {"pid", std::to_string(getpid())}});
    if (!args.ready_file.empty()) WriteReadyFile(args.ready_file, http_port, admin_port);
  } catch (const bus::TlsError& e) {
    // The broker's certificate or name refused: the configuration (bus.url,
    // bus.tls_ca_file) must change; a restart would only fail again (exit 2).
    Log(Level::kError, "payorchd.start_failed", {{"error", e.what()}});
    std::cerr << "payorchd: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    Log(Level::kError, "payorchd.start_failed", {{"error", e.what()}});
    std::cerr << "payorchd: " << e.what() << "\n";
    return 1;
  }

  io.run();
  Log(Level::kInfo, "payorchd.exit", {{"code", std::to_string(exit_code)}});
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  int code = 0;
  std::optional<Args> args = ParseArgs(argc, argv, code);
  if (!args) return code;
  try {
    return Run(*args);
  } catch (const std::exception& e) {
    std::cerr << "payorchd: " << e.what() << "\n";
    return 1;
  }
}
