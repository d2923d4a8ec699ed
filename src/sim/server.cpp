// Connection handling for payex-sim. Every request is bounded: header and body
// sizes (413/400 problems, never a crash), the time a request may take to arrive
// and the time an idle keep-alive connection is kept. Simulated time runs at
// 1/time_scale of real time and is rebased whenever the scale changes, so it never
// jumps backwards.
#include "sim/server.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "sim/model.hpp"

namespace payorch::sim {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsParseError(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

struct Server::Impl {
  SimConfig config;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::unique_ptr<Model> model;
  asio::steady_timer timer{io};
  int64_t armed_due = INT64_MAX;
  std::thread thread;
  uint16_t port = 0;
  bool stopping = false;
  // Simulated clock: sim = sim_base + (steady - steady_base) / scale.
  int64_t sim_base = 0;
  Clock::time_point steady_base;
  double scale = 1.0;

  explicit Impl(SimConfig c) : config(std::move(c)) {}

  int64_t SimNow() {
    double scale_now = model ? model->config().time_scale : config.time_scale;
    auto now = Clock::now();
    if (scale_now != scale) {  // rebase so the simulated clock stays continuous
      sim_base = SimAt(now);
      steady_base = now;
      scale = scale_now;
    }
    return SimAt(now);
  }
  int64_t SimAt(Clock::time_point t) const {
    double real_ms = std::chrono::duration<double, std::milli>(t - steady_base).count();
    return sim_base + static_cast<int64_t>(real_ms / scale);
  }

  void Bind() {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(config.listen, ec);
    if (ec) throw std::runtime_error("payex-sim: bad listen address '" + config.listen + "'");
    tcp::endpoint ep(addr, static_cast<unsigned short>(config.port));
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("payex-sim: cannot listen on " + config.listen + ":" +
                               std::to_string(config.port) + ": " + ec.message());
    port = acceptor.local_endpoint().port();
    if (config.api_base.empty()) {
      std::string host = addr.is_v6() ? "[" + config.listen + "]" : config.listen;
      config.api_base = "http://" + host + ":" + std::to_string(port);
    }
    sim_base = WallMs();
    steady_base = Clock::now();
    scale = config.time_scale;
    model = std::make_unique<Model>(config, sim_base);
    model->SetBases(config.api_base, config.ecom_base);
    if (!config.port_file.empty()) {
      std::ofstream f(config.port_file);
      f << port << "\n";
    }
    asio::co_spawn(io, Accept(), [](std::exception_ptr e) {
      if (e) std::cerr << "event=sim.error where=accept\n";
    });
    asio::co_spawn(io, TimerLoop(), [](std::exception_ptr e) {
      if (e) std::cerr << "event=sim.error where=timer\n";
    });
  }

  void Flush() {
    for (auto& line : model->TakeLog()) std::cerr << line << "\n";
  }

  // Wakes the timer loop when something became due earlier than it sleeps.
  void Rearm() {
    Flush();
    auto next = model->NextDue();
    if (next && *next < armed_due) timer.cancel();
  }

  asio::awaitable<void> TimerLoop() {
    for (;;) {
      if (stopping) co_return;
      for (CallbackJob& job : model->Advance(SimNow())) {
        asio::co_spawn(io, SendCallback(std::move(job)), [](std::exception_ptr e) {
          if (e) std::cerr << "event=sim.error where=callback\n";
        });
      }
      Flush();
      auto next = model->NextDue();
      if (next) {
        armed_due = *next;
        double real = static_cast<double>(*next - SimNow()) * scale;
        timer.expires_after(
            std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, real) * 1000.0)));
      } else {
        armed_due = INT64_MAX;
        timer.expires_after(std::chrono::hours(24));
      }
      co_await timer.async_wait(kTuple);
    }
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) co_return;
        // e.g. EMFILE: keep serving the connections we have, retry shortly.
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(kTuple);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io, Session(std::move(socket)), [](std::exception_ptr e) {
        if (e) std::cerr << "event=sim.error where=session\n";
      });
    }
  }

  static std::string Lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }

  asio::awaitable<void> Reply(beast::tcp_stream& stream, const HttpResponse& r, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, "payex-sim");
    res.set(http::field::content_type, r.content_type);
    res.keep_alive(keep_alive);
    res.body() = r.body;
    res.prepare_payload();
    stream.expires_after(std::chrono::milliseconds(model->config().read_timeout_ms));
    co_await http::async_write(stream, res, kTuple);
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      const SimConfig& cfg = model->config();
      http::request_parser<http::string_body> parser;
      parser.body_limit(static_cast<uint64_t>(std::max<int64_t>(cfg.max_body_bytes, 0)));
      parser.header_limit(16 * 1024);
      stream.expires_after(std::chrono::milliseconds(cfg.idle_timeout_ms));
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      boost::system::error_code ec = hec;
      if (!ec) {
        stream.expires_after(std::chrono::milliseconds(cfg.read_timeout_ms));
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kTuple);
        ec = bec;
      }
      if (ec == http::error::body_limit) {
        co_await Reply(stream,
                       TransportProblem(413, "The request body is larger than " +
                                                 std::to_string(cfg.max_body_bytes) + " bytes"),
                       false);
        break;
      }
      if (ec == http::error::header_limit) {
        co_await Reply(stream, TransportProblem(431, "The request header is too large"), false);
        break;
      }
      if (ec && IsParseError(ec)) {
        co_await Reply(stream, TransportProblem(400, "Malformed HTTP request: " + ec.message()),
                       false);
        break;
      }
      if (ec) break;  // closed, reset or too slow
      auto& req = parser.get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      for (char& c : r.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      r.target = std::string(req.target());
      for (const auto& f : req)
        r.headers.emplace_back(Lower(f.name_string()), std::string(f.value()));
      r.body = std::move(req.body());
      bool keep_alive = req.keep_alive();
      FaultPlan plan = model->PlanFaults(r);
      if (plan.latency_ms > 0) {
        asio::steady_timer wait(io, std::chrono::milliseconds(plan.latency_ms));
        co_await wait.async_wait(kTuple);
        if (stopping) break;
      }
      HttpResponse resp = model->Handle(r, plan, SimNow());
      Rearm();
      if (resp.disposition == Disposition::kDrop) {
        boost::system::error_code ignored;
        stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
        stream.socket().close(ignored);
        co_return;
      }
      if (resp.disposition == Disposition::kHang) {
        asio::steady_timer wait(io, std::chrono::milliseconds(resp.hang_ms));
        co_await wait.async_wait(kTuple);
        break;
      }
      if (resp.disposition == Disposition::kTruncate) {
        std::string head = "HTTP/1.1 " + std::to_string(resp.status) +
                           " OK\r\nServer: payex-sim\r\nContent-Type: " + resp.content_type +
                           "\r\nContent-Length: " + std::to_string(resp.body.size()) + "\r\n\r\n" +
                           resp.body.substr(0, resp.body.size() / 2);
        stream.expires_after(std::chrono::milliseconds(cfg.read_timeout_ms));
        co_await asio::async_write(stream, asio::buffer(head), kTuple);
        break;
      }
      co_await Reply(stream, resp, keep_alive);
      if (!keep_alive) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.socket().close(ignored);
  }

  asio::awaitable<void> SendCallback(CallbackJob job) {
    using namespace asio::experimental::awaitable_operators;
    int status = 0;
    std::string error;
    auto timeout = std::chrono::milliseconds(model->config().callback_timeout_ms);
    auto url = boost::urls::parse_uri(job.url);
    if (!url || Lower(url->scheme()) != "http") {
      error = url ? "only http callback URLs are supported by payex-sim" : "bad callback URL";
    } else {
      std::string host(url->host_address());
      std::string port = url->has_port() ? std::string(url->port()) : "80";
      bool port_ok = !port.empty() && port.size() <= 5 &&
                     port.find_first_not_of("0123456789") == std::string::npos &&
                     std::stoi(port) > 0 && std::stoi(port) <= 65535;
      if (!port_ok) port = "0";
      std::string target(url->encoded_target());
      if (target.empty()) target = "/";
      std::vector<tcp::endpoint> endpoints;
      boost::system::error_code ec;
      auto addr = asio::ip::make_address(host, ec);
      if (port == "0") {
        error = "bad port in the callback URL";
      } else if (!ec) {
        endpoints.emplace_back(addr, static_cast<unsigned short>(std::stoi(port)));
      } else {
        tcp::resolver resolver(io);
        asio::steady_timer t(io, timeout);
        auto which = co_await (resolver.async_resolve(host, port, kTuple) || t.async_wait(kTuple));
        if (which.index() == 0) {
          auto [rec, results] = std::get<0>(which);
          if (!rec)
            for (const auto& e : results) endpoints.push_back(e.endpoint());
          else
            error = "resolve: " + rec.message();
        } else {
          error = "resolve: timed out";
        }
      }
      if (!endpoints.empty()) {
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        auto [cec, ep] = co_await stream.async_connect(endpoints, kTuple);
        if (cec) {
          error = "connect: " + cec.message();
        } else {
          http::request<http::string_body> req{http::verb::post, target, 11};
          req.set(http::field::host, url->has_port() ? host + ":" + port : host);
          req.set(http::field::content_type, "application/json");
          req.set(http::field::user_agent, "payex-sim/1");
          req.keep_alive(false);
          req.body() = job.body;
          req.prepare_payload();
          auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
          if (wec) {
            error = "write: " + wec.message();
          } else {
            beast::flat_buffer buffer;
            http::response_parser<http::string_body> parser;
            parser.body_limit(64 * 1024);
            auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kTuple);
            if (rec) {
              error = "read: " + rec.message();
            } else {
              status = static_cast<int>(parser.get().result_int());
            }
          }
          boost::system::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        }
      }
    }
    if (stopping) co_return;
    if (model->config().log_level >= 1)
      std::cerr << "event=sim.callback id=" << job.id << " status=" << status
                << (error.empty() ? "" : " error=\"" + error + "\"") << "\n";
    model->CallbackDone(job.id, status, std::move(error), SimNow());
    Rearm();
  }

  void Shutdown() {
    stopping = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    timer.cancel();
    io.stop();
  }
};

Server::Server(SimConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Server::~Server() {
  Stop();
}

void Server::Start() {
  impl_->Bind();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void Server::Run(const std::function<void(uint16_t)>& on_listening) {
  impl_->Bind();
  asio::signal_set signals(impl_->io, SIGINT, SIGTERM);
  signals.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) impl_->Shutdown();
  });
  if (on_listening) on_listening(impl_->port);
  impl_->io.run();
}

void Server::Stop() {
  if (!impl_) return;
  if (impl_->thread.joinable()) {
    asio::post(impl_->io, [impl = impl_.get()] { impl->Shutdown(); });
    impl_->thread.join();
  }
}

uint16_t Server::port() const {
  return impl_->port;
}

std::string Server::base_url() const {
  return impl_->config.api_base;
}

}  // namespace payorch::sim
