// payex_bench: requests per second and latency percentiles of the PayEx client's
// pool against payex-sim on loopback, for reads (GET with $expand) and captures
// (with operation hrefs from the cached payment resource, and with a fresh GET
// before every capture). Client and simulator each run on one thread, as in
// payorchd: the client on this thread's io_context, the simulator on its own.
// Prints figures; asserts nothing.
//   payex_bench [--seconds S] [--concurrency N] [--connections N] [--runs N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "payex/asio_client.hpp"
#include "sim/server.hpp"

namespace {
namespace asio = boost::asio;
using namespace payorch;
using Clock = std::chrono::steady_clock;

struct Args {
  double seconds = 3;
  int concurrency = 64;
  size_t connections = 32;
  int runs = 3;
  int payments = 2000;
};

struct Figures {
  double rps = 0;                                       // HTTP requests per second (sim's count)
  double calls = 0;                                     // client calls per second
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;  // call latency, microseconds
  uint64_t failures = 0;
};

double Pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return static_cast<double>(v[i]);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

domain::PayexResult RunOne(asio::io_context& io, payex::AsioClient& c, domain::PayexCall call) {
  domain::PayexResult out;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out = co_await c.Execute(call); }, asio::detached);
  io.restart();
  io.run();
  return out;
}

enum class Mode { kGet, kCapture };

Figures Measure(asio::io_context& io, payex::AsioClient& client,
                const std::vector<std::string>& ids, Mode mode, const Args& args, int run,
                uint64_t& http_requests) {
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  uint64_t calls = 0, failures = 0;
  uint64_t before = client.Stats().requests;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(args.seconds));
  for (int w = 0; w < args.concurrency; ++w) {
    asio::co_spawn(
        io,
        [&, w]() -> asio::awaitable<void> {
          uint64_t n = 0;
          while (Clock::now() < end) {
            domain::PayexCall call;
            call.call_id = ++n;
            call.order_id = "bench";
            call.payment_id = ids[(static_cast<size_t>(w) * 7919 + n) % ids.size()];
            if (mode == Mode::kGet) {
              call.kind = domain::OpKind::kRead;
            } else {
              call.kind = domain::OpKind::kCapture;
              call.amount = 1;
              call.description = "bench";
              call.payee_reference =
                  "B" + std::to_string(run) + "x" + std::to_string(w) + "x" + std::to_string(n);
            }
            auto t0 = Clock::now();
            auto r = co_await client.Execute(call);
            lat.push_back(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
            ++calls;
            if (r.result != domain::ResultClass::kSuccess) ++failures;
          }
        },
        asio::detached);
  }
  io.restart();
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  http_requests = client.Stats().requests - before;
  Figures f;
  f.rps = static_cast<double>(http_requests) / secs;
  f.calls = static_cast<double>(calls) / secs;
  f.p50 = Pct(lat, 0.50);
  f.p90 = Pct(lat, 0.90);
  f.p99 = Pct(lat, 0.99);
  f.p999 = Pct(lat, 0.999);
  f.max = lat.empty() ? 0 : static_cast<double>(*std::max_element(lat.begin(), lat.end()));
  f.failures = failures;
  return f;
}

void Print(const char* name, const std::vector<Figures>& runs) {
  auto med = [&](double Figures::*m) {
    std::vector<double> v;
    for (const auto& f : runs) v.push_back(f.*m);
    return Median(v);
  };
  uint64_t failures = 0;
  for (const auto& f : runs) failures += f.failures;
  std::printf("%-26s %9.0f %9.0f %8.0f %8.0f %8.0f %8.0f %9.0f %8llu\n", name, med(&Figures::rps),
              med(&Figures::calls), med(&Figures::p50), med(&Figures::p90), med(&Figures::p99),
              med(&Figures::p999), med(&Figures::max), static_cast<unsigned long long>(failures));
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds"))
      args.seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--concurrency"))
      args.concurrency = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--connections"))
      args.connections = static_cast<size_t>(std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--runs"))
      args.runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--payments"))
      args.payments = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr,
                   "usage: payex_bench [--seconds S] [--concurrency N] [--connections N] [--runs "
                   "N] [--payments N]\n");
      return 2;
    }
  }
  sim::SimConfig sc;
  sc.log_level = 0;
  sc.time_scale = 0.001;
  sc.callbacks = false;
  sim::Server server(sc);
  server.Start();

  asio::io_context io(1);
  auto make_client = [&](std::chrono::milliseconds ttl) {
    payex::ClientOptions o;
    o.base_url = server.base_url();
    o.allow_plain_http = true;
    o.token = sc.token;
    o.payee_id = sc.payee_id;
    o.max_connections = args.connections;
    o.operations_cache_ttl = ttl;
    o.request_timeout = std::chrono::seconds(10);
    return std::make_unique<payex::AsioClient>(io.get_executor(), o);
  };
  auto client = make_client(std::chrono::minutes(10));

  // Authorized payments with room for many 1-øre captures (+4799999986 approves at once).
  std::vector<std::string> ids;
  for (int i = 0; i < args.payments; ++i) {
    domain::PayexCall create;
    create.kind = domain::OpKind::kCreate;
    create.order_id = "bench-" + std::to_string(i);
    create.payee_reference = "BP" + std::to_string(i);
    domain::PurchaseRequested p;
    p.amount = 1'000'000'000;
    p.currency = "NOK";
    p.description = "bench";
    create.purchase = p;
    auto r = RunOne(io, *client, create);
    if (!r.snapshot) {
      std::fprintf(stderr, "create failed\n");
      return 1;
    }
    domain::PayexCall auth;
    auth.kind = domain::OpKind::kAuthorize;
    auth.payment_id = r.snapshot->payment_id;
    auth.msisdn = "+4799999986";
    if (RunOne(io, *client, auth).result != domain::ResultClass::kSuccess) {
      std::fprintf(stderr, "authorize failed\n");
      return 1;
    }
    ids.push_back(r.snapshot->payment_id);
  }
  std::vector<std::string> read_ids(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 500));

  std::printf(
      "payex_bench: client and payex-sim on loopback, one thread each; %d coroutines, "
      "pool of %zu connections, %.1fs per run, median of %d runs\n",
      args.concurrency, args.connections, args.seconds, args.runs);
  std::printf("%-26s %9s %9s %8s %8s %8s %8s %9s %8s\n", "", "http/s", "calls/s", "p50 us",
              "p90 us", "p99 us", "p99.9 us", "max us", "failed");
  uint64_t http = 0;
  std::vector<Figures> get, cap_cached, cap_fresh;
  for (int run = 0; run < args.runs; ++run)
    get.push_back(Measure(io, *client, read_ids, Mode::kGet, args, run, http));
  Print("GET payment ($expand)", get);
  // The reads above cached every payment resource the captures below use.
  for (int run = 0; run < args.runs; ++run) {
    for (const auto& id : ids) {  // make sure every payment's resource is cached
      domain::PayexCall read;
      read.kind = domain::OpKind::kRead;
      read.payment_id = id;
      if (run == 0) RunOne(io, *client, read);
    }
    cap_cached.push_back(Measure(io, *client, ids, Mode::kCapture, args, run, http));
  }
  Print("capture (cached hrefs)", cap_cached);
  auto fresh = make_client(std::chrono::milliseconds(0));
  for (int run = 0; run < args.runs; ++run)
    cap_fresh.push_back(Measure(io, *fresh, ids, Mode::kCapture, args, 100 + run, http));
  Print("capture (GET + POST)", cap_fresh);
  client->Close();
  fresh->Close();
  io.restart();
  io.run();
  server.Stop();
  return 0;
}
