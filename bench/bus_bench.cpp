// Bus throughput against the real broker (scripts/broker start): publish with
// confirms and consume with acks, at the same time, through one quorum queue as in
// the contract. Prints, in one run, the raw ceiling (rabbitmq-c used directly, the
// best simple way: pipelined confirms, multiple-acks) and the same through the
// adapter (bus::Publisher + bus::Consumer, decoding every event), as medians of a
// few runs, and their ratio (goal: >= 80%). Figures only; asserts nothing.
//   bus_bench [--messages N] [--runs R] [--window W] [--prefetch P] [--url amqp://...]
//             [--only raw|adapter] [--router P]
// --router P adds, per run, the partitioned path (issue 13): publish to the orders
// queue, bus::Router forwards each event to one of P partition queues, a consumer per
// partition acks; its rate counts events out of the partitions.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "bus/router.hpp"
#include "bus/topology.hpp"
#include "codec/codec.hpp"

namespace {

using namespace payorch;
using Clock = std::chrono::steady_clock;

struct Options {
  int messages = 20000;
  int runs = 3;
  int window = 1000;  // publishes in flight (both variants)
  int prefetch = 256;
  std::string url;
  std::string only;  // "raw" or "adapter": run one variant (for profiling)
  int router = 0;    // partitions of the router measurement; 0: none
};

std::string DefaultUrl() {
  if (const char* u = std::getenv("PAYORCH_AMQP_URL"); u && *u) return u;
  std::ifstream file(std::string(PAYORCH_SOURCE_DIR) + "/build/broker/url");
  std::string url;
  if (file && std::getline(file, url)) return url;
  return "";
}

std::string Suffix() {
  std::mt19937_64 rng(std::random_device{}());
  return std::to_string(rng() % 1000000000);
}

// A typical order event: a purchase with a description and metadata, ~150 bytes.
std::string SampleBody() {
  domain::PurchaseRequested p;
  p.amount = 1500;
  p.vat_amount = 300;
  p.currency = "NOK";
  p.description = "Blåbærsyltetøy, 2 glass";
  p.msisdn = "+4798765432";
  p.metadata = {{"channel", "web"}, {"cart", "c-9"}};
  domain::OrderEvent e;
  e.event_id = "evt-00000000-0000-0000-0000-000000000000";
  e.order_id = "order-000000000";
  e.occurred_at = domain::FromMillis(1'717'171'717'000);
  e.kind = p;
  return codec::EncodeOrderEvent(e);
}

// --- Raw rabbitmq-c ----------------------------------------------------------

void Die(const std::string& what) {
  std::fprintf(stderr, "bus_bench: %s\n", what.c_str());
  std::exit(1);
}

void CheckReply(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) Die(std::string("raw: ") + what + " failed");
}

amqp_connection_state_t RawConnect(const std::string& url) {
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back(0);
  amqp_connection_info info;
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK) Die("bad url " + url);
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK)
    Die("broker not running: start it with scripts/broker start");
  std::string vhost = (info.vhost && *info.vhost) ? info.vhost : "/";
  CheckReply(amqp_login(conn, vhost.c_str(), 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, info.user,
                        info.password),
             "login");
  amqp_channel_open(conn, 1);
  CheckReply(amqp_get_rpc_reply(conn), "channel.open");
  return conn;
}

void RawClose(amqp_connection_state_t conn) {
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

double RawRun(const Options& o, const bus::BusConfig& config, const std::string& body) {
  const std::string& exchange = config.topology.orders_exchange;
  const std::string key = "order.purchase_requested";
  amqp_connection_state_t pub = RawConnect(o.url);
  amqp_confirm_select(pub, 1);
  CheckReply(amqp_get_rpc_reply(pub), "confirm.select");
  amqp_connection_state_t sub = RawConnect(o.url);
  amqp_basic_qos(sub, 1, 0, static_cast<uint16_t>(o.prefetch), 0);
  CheckReply(amqp_get_rpc_reply(sub), "basic.qos");
  amqp_basic_consume(sub, 1, amqp_cstring_bytes(config.topology.orders_queue.c_str()),
                     amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  CheckReply(amqp_get_rpc_reply(sub), "basic.consume");

  auto start = Clock::now();
  std::thread consumer([&] {
    int received = 0;
    uint64_t last = 0, acked = 0;
    while (received < o.messages) {
      amqp_frame_t frame;
      timeval tv{0, 100'000};
      int st = amqp_simple_wait_frame_noblock(sub, &frame, &tv);
      if (st == AMQP_STATUS_OK && frame.frame_type == AMQP_FRAME_METHOD &&
          frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        last = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded)->delivery_tag;
        amqp_message_t message;
        CheckReply(amqp_read_message(sub, 1, &message, 0), "read_message");
        amqp_destroy_message(&message);
        ++received;
      } else if (st != AMQP_STATUS_OK && st != AMQP_STATUS_TIMEOUT) {
        Die("raw consumer lost its connection");
      }
      // Ack everything read so far in one multiple-ack once nothing more is buffered.
      if (last > acked && !amqp_frames_enqueued(sub) && !amqp_data_in_buffer(sub)) {
        amqp_basic_ack(sub, 1, last, 1);
        acked = last;
      }
      amqp_maybe_release_buffers(sub);
    }
    if (last > acked) amqp_basic_ack(sub, 1, last, 1);
  });

  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG;
  props.content_type = amqp_cstring_bytes("application/x-protobuf");
  props.delivery_mode = 2;
  props.type = amqp_cstring_bytes("payorch.v1.OrderEvent");
  std::vector<char> acked_flags(o.messages + 1, 0);
  uint64_t published = 0, confirmed = 0, lowest = 1;
  while (confirmed < static_cast<uint64_t>(o.messages)) {
    while (published < static_cast<uint64_t>(o.messages) &&
           published - confirmed < static_cast<uint64_t>(o.window)) {
      std::string id = "m-" + std::to_string(published);
      props.message_id = amqp_cstring_bytes(id.c_str());
      if (amqp_basic_publish(pub, 1, amqp_cstring_bytes(exchange.c_str()),
                             amqp_cstring_bytes(key.c_str()), 0, 0, &props,
                             amqp_bytes_t{body.size(), const_cast<char*>(body.data())}) != 0)
        Die("raw publish failed");
      ++published;
    }
    bool can_send = published < static_cast<uint64_t>(o.messages) &&
                    published - confirmed < static_cast<uint64_t>(o.window);
    amqp_frame_t frame;
    timeval tv{0, can_send ? 0 : 100'000};
    int st = amqp_simple_wait_frame_noblock(pub, &frame, &tv);
    if (st == AMQP_STATUS_OK && frame.frame_type == AMQP_FRAME_METHOD &&
        frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      uint64_t from = ack->multiple ? lowest : ack->delivery_tag;
      for (uint64_t t = from; t <= ack->delivery_tag; ++t)
        if (!acked_flags[t]) {
          acked_flags[t] = 1;
          ++confirmed;
        }
      while (lowest <= static_cast<uint64_t>(o.messages) && acked_flags[lowest]) ++lowest;
    } else if (st != AMQP_STATUS_OK && st != AMQP_STATUS_TIMEOUT) {
      Die("raw publisher lost its connection");
    }
    amqp_maybe_release_buffers(pub);
  }
  consumer.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  RawClose(sub);
  RawClose(pub);
  return o.messages / seconds;
}

// --- Through the adapter -------------------------------------------------------

double AdapterRun(const Options& o, const bus::BusConfig& base, const std::string& body) {
  bus::BusConfig config = base;
  config.max_in_flight = static_cast<size_t>(o.window);
  config.prefetch = static_cast<uint16_t>(o.prefetch);
  config.declare_topology = false;  // declared once by main(), as payorchd does at start

  // Done when every message is both confirmed and consumed; whichever callback
  // counts the last one wakes main (no polling: its CPU would count as the adapter's).
  std::atomic<int> outstanding{2 * o.messages};
  std::promise<void> all_done;
  auto count_one = [&] {
    if (--outstanding == 0) all_done.set_value();
  };
  bus::Consumer* self = nullptr;
  bus::Consumer consumer(config, [&](bus::Delivery d) {
    // What the engine does after its commit: ack through the consumer's queue.
    self->Ack(d.generation, d.delivery_tag);
    count_one();
  });
  self = &consumer;
  bus::Publisher publisher(config);
  consumer.Start();
  publisher.Start();
  while (!consumer.Status().connected || !publisher.Status().connected)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::atomic<int> confirmed{0}, failed{0};
  auto start = Clock::now();
  for (int i = 0; i < o.messages; ++i) {
    bus::Message m;
    m.exchange = config.topology.orders_exchange;
    m.routing_key = "order.purchase_requested";
    m.body = body;
    m.properties.content_type = "application/x-protobuf";
    m.properties.delivery_mode = 2;
    m.properties.message_id = "m-" + std::to_string(i);
    m.properties.type = "payorch.v1.OrderEvent";
    publisher.Publish(std::move(m), [&](bus::PublishResult r) {
      (r.Ok() ? confirmed : failed)++;
      count_one();
    });
  }
  all_done.get_future().wait();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  consumer.Stop();
  publisher.Stop();
  if (failed) Die("adapter: " + std::to_string(failed.load()) + " publishes failed");
  return o.messages / seconds;
}

// --- Through the router of a partitioned payorch ----------------------------------

double RouterRun(const Options& o, const bus::BusConfig& base, int partitions) {
  bus::BusConfig config = base;
  config.max_in_flight = static_cast<size_t>(o.window);
  config.prefetch = static_cast<uint16_t>(o.prefetch);
  config.topology.partitions = static_cast<uint32_t>(partitions);
  // A topology of its own (the orders queue gets a single active consumer), deleted
  // at the end without touching the other measurements'.
  for (std::string* name :
       {&config.topology.orders_exchange, &config.topology.orders_queue,
        &config.topology.dead_letter_exchange, &config.topology.dead_letter_queue,
        &config.topology.payments_exchange})
    *name += ".routed";
  config.topology.partitions_exchange = config.topology.orders_exchange + ".partitions";
  bus::DeclareTopology(config);
  config.declare_topology = false;

  // Bodies made first: 1,000 orders, so every partition gets its share.
  std::vector<std::string> bodies;
  for (int i = 0; i < o.messages; ++i) {
    auto event = codec::DecodeOrderEvent(SampleBody(), "application/x-protobuf").Event();
    event.order_id = "order-" + std::to_string(i % 1000);
    event.event_id = "evt-" + std::to_string(i);
    bodies.push_back(codec::EncodeOrderEvent(event));
  }
  std::atomic<int> outstanding{2 * o.messages};
  std::promise<void> all_done;
  auto count_one = [&] {
    if (--outstanding == 0) all_done.set_value();
  };
  std::vector<std::unique_ptr<bus::Consumer>> sinks;
  for (int p = 0; p < partitions; ++p) {
    bus::BusConfig c = config;
    c.consume_queue = bus::PartitionQueue(config.topology, static_cast<uint32_t>(p));
    c.consumer_tag = "bench-partition-" + std::to_string(p);
    sinks.push_back(std::make_unique<bus::Consumer>(c, [&, p](bus::Delivery d) {
      sinks[static_cast<size_t>(p)]->Ack(d.generation, d.delivery_tag);
      count_one();
    }));
  }
  bus::Router router(config);
  bus::Publisher publisher(config);
  for (auto& s : sinks) s->Start();
  router.Start();
  publisher.Start();
  auto connected = [&] {
    for (auto& s : sinks)
      if (!s->Status().connected) return false;
    return router.ConsumerStatus().connected && router.PublisherStatus().connected &&
           publisher.Status().connected;
  };
  while (!connected()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::atomic<int> failed{0};
  auto start = Clock::now();
  for (int i = 0; i < o.messages; ++i) {
    bus::Message m;
    m.exchange = config.topology.orders_exchange;
    m.routing_key = "order.purchase_requested";
    m.body = std::move(bodies[static_cast<size_t>(i)]);
    m.properties.content_type = "application/x-protobuf";
    m.properties.delivery_mode = 2;
    m.properties.type = "payorch.v1.OrderEvent";
    publisher.Publish(std::move(m), [&](bus::PublishResult r) {
      if (!r.Ok()) failed++;
      count_one();
    });
  }
  // (A copy the router could not forward never arrives: give up rather than hang.)
  if (all_done.get_future().wait_for(std::chrono::minutes(2)) != std::future_status::ready)
    Die("router: " + std::to_string(outstanding.load()) +
        " publishes or deliveries missing after 2 minutes (refused: " +
        std::to_string(router.GetStats().refused) + ")");
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  router.Stop();
  for (auto& s : sinks) s->Stop();
  publisher.Stop();
  bus::Admin(config, "bus_bench cleanup").DeleteTopology(config.topology);
  if (failed) Die("router: " + std::to_string(failed.load()) + " publishes failed");
  return o.messages / seconds;
}

// CPU seconds (user + system) used by this process so far: the client's cost, which
// on a small machine is taken from the broker.
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.url = DefaultUrl();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--messages")
      o.messages = std::atoi(argv[i + 1]);
    else if (flag == "--runs")
      o.runs = std::atoi(argv[i + 1]);
    else if (flag == "--window")
      o.window = std::atoi(argv[i + 1]);
    else if (flag == "--prefetch")
      o.prefetch = std::atoi(argv[i + 1]);
    else if (flag == "--url")
      o.url = argv[i + 1];
    else if (flag == "--only")
      o.only = argv[i + 1];
    else if (flag == "--router")
      o.router = std::atoi(argv[i + 1]);
    else
      Die("unknown flag " + flag);
  }
  if (o.url.empty()) Die("broker not running: start it with scripts/broker start");

  std::string suffix = Suffix();
  bus::BusConfig config;
  config.url = o.url;
  config.topology.orders_exchange = "bench.orders." + suffix;
  config.topology.orders_queue = "bench.orders." + suffix;
  config.topology.dead_letter_exchange = "bench.orders.dlx." + suffix;
  config.topology.dead_letter_queue = "bench.orders.dead." + suffix;
  config.topology.payments_exchange = "bench.payments." + suffix;
  try {
    bus::DeclareTopology(config);
  } catch (const std::exception& e) {
    Die(std::string("broker not running: start it with scripts/broker start (") + e.what() + ")");
  }
  std::string body = SampleBody();
  std::printf(
      "bus_bench: %d messages of %zu bytes per run, %d runs, window %d, prefetch %d, "
      "quorum queue, persistent\n",
      o.messages, body.size(), o.runs, o.window, o.prefetch);

  std::vector<double> raw, adapter, raw_cpu, adapter_cpu, routed;
  for (int run = 0; run < o.runs; ++run) {
    // Alternating, so that a slow phase of the machine hits both alike.
    double c0 = CpuSeconds();
    raw.push_back(o.only == "adapter" ? 1 : RawRun(o, config, body));
    double c1 = CpuSeconds();
    adapter.push_back(o.only == "raw" ? 1 : AdapterRun(o, config, body));
    double c2 = CpuSeconds();
    raw_cpu.push_back((c1 - c0) * 1e6 / o.messages);
    adapter_cpu.push_back((c2 - c1) * 1e6 / o.messages);
    std::printf(
        "  run %d: raw %.0f msg/s (%.1f us client CPU/msg), adapter %.0f msg/s (%.1f us/msg)\n",
        run + 1, raw.back(), raw_cpu.back(), adapter.back(), adapter_cpu.back());
    if (o.router > 1) {
      routed.push_back(RouterRun(o, config, o.router));
      std::printf("  run %d: through the router to %d partitions %.0f msg/s\n", run + 1, o.router,
                  routed.back());
    }
  }
  double r = Median(raw), a = Median(adapter);
  std::printf("raw rabbitmq-c  (publish+confirm, consume+ack): %8.0f msg/s (median)\n", r);
  std::printf("payorch bus adapter (same, with decoding):       %8.0f msg/s (median)\n", a);
  std::printf(
      "adapter / raw: %.0f%% (goal >= 80%%); client CPU per message: raw %.1f us, adapter %.1f "
      "us\n",
      100.0 * a / r, Median(raw_cpu), Median(adapter_cpu));
  if (!routed.empty())
    std::printf("router to %d partitions (publish, route, consume+ack): %8.0f msg/s (median), "
                "%.0f%% of raw\n",
                o.router, Median(routed), 100.0 * Median(routed) / r);

  bus::Admin admin(config, "bus_bench cleanup");
  admin.DeleteTopology(config.topology);
  return 0;
}
