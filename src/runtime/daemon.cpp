#include "runtime/daemon.hpp"

#include <filesystem>
#include <optional>

#include <boost/asio/post.hpp>

#include "bus/topology.hpp"
#include "engine/log.hpp"
#include "http/callback_token.hpp"
#include "metrics/registry.hpp"
#include "runtime/asio_clock.hpp"
#include "runtime/bus_ports.hpp"
#include "runtime/checkpointer.hpp"
#include "runtime/integrity_check.hpp"
#include "runtime/payex_port.hpp"
#include "runtime/writer_thread.hpp"

namespace payorch::runtime {

using engine::Level;
using engine::Log;

engine::Options EngineOptions(const config::Config& c) {
  engine::Options o;
  o.policy = c.payments;
  o.max_batch = c.engine.max_batch;
  o.commit_delay = c.engine.commit_delay;
  o.max_concurrent_calls = c.engine.max_concurrent_calls;
  o.cache_max = c.engine.cache_payments;
  o.payex_rate_limit = c.engine.payex_rate_limit;
  return o;
}

namespace {

// Whether the store is small enough to be checked before serving (else beside).
bool CheckFirst(const config::Config& config) {
  std::uintmax_t bytes = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(config.store.path + suffix, ec);
    if (!ec) bytes += size;
  }
  return bytes <= static_cast<std::uintmax_t>(config.store.quick_check_first_mib) << 20;
}

// Three connections to one WAL file: the writer thread commits, the engine thread
// reads what is committed, the checkpointer copies the WAL back.
struct Stores {
  Stores(const config::Config& config, uint32_t partition) {
    RefuseIfMarkedDamaged(config.store.path);
    store::Options so = config.store.options;
    // A big store is checked beside the engine (IntegrityCheck), not before it.
    so.quick_check = so.quick_check && CheckFirst(config);
    checked_first = so.quick_check;
    // Checkpoints run on a thread of their own, so a commit never pays for one.
    so.wal_autocheckpoint_pages = 0;
    try {
      writer.emplace(store::Store::Open(config.store.path, so));
    } catch (const store::StoreError& e) {
      if (so.quick_check && std::string(e.what()).find("quick_check found damage") !=
                                std::string::npos)
        MarkDamaged(config.store.path, e.what());
      throw;
    }
    writer->BindPartition(partition, config.bus.topology.partitions);
    store::Options co = so;
    co.quick_check = false;
    co.create_if_missing = false;
    reader.emplace(store::Store::Open(config.store.path, co));
    checkpoint.emplace(store::Store::Open(config.store.path, co));
  }
  std::optional<store::Store> writer, reader, checkpoint;
  bool checked_first = false;
};

payex::ClientOptions PayexOptions(const config::Config& config) {
  payex::ClientOptions po = config.payex;
  std::string secret = config.callback_secret;
  po.callback_token = [secret](const std::string& order_id) {
    return http::CallbackToken(secret, order_id);
  };
  // One line per PayEx call at debug level; not even built otherwise.
  if (engine::LogEnabled(Level::kDebug))
    po.log = [](std::string_view line) { engine::LogLine(Level::kDebug, line); };
  return po;
}

}  // namespace

struct Daemon::Parts {
  Parts(boost::asio::any_io_executor ex, const config::Config& config, metrics::Registry& metrics,
        uint32_t partition)
      : options(EngineOptions(config)),
        stores(config, partition),
        clock(ex),
        source(config.bus, clock),
        publisher(config.bus, clock),
        payex(ex, PayexOptions(config)),
        writer(*stores.writer, clock, options.commit_attempts),
        engine(options, engine::Ports{source, publisher, payex, clock, writer}, *stores.reader,
               metrics) {}

  engine::Options options;
  Stores stores;
  AsioClock clock;
  BusSource source;
  BusPublisher publisher;
  PayexPort payex;
  WriterThread writer;
  std::optional<Checkpointer> checkpointer;
  engine::Engine engine;
  // After the engine: destroyed first, so its verdict never finds the engine gone.
  std::optional<IntegrityCheck> integrity;
};

Daemon::Daemon(boost::asio::any_io_executor executor, const config::Config& config,
               metrics::Registry& metrics, uint32_t partition) {
  // A broker with an incompatible queue is a start-up error, not a retry loop. A
  // broker that is down is not: the links connect (and declare) when it is back.
  auto parts = std::make_unique<Parts>(executor, config, metrics, partition);
  executor_ = executor;
  store_path_ = config.store.path;
  check_store_ = config.store.options.quick_check;
  try {
    bus::DeclareTopology(config.bus);
  } catch (const bus::TopologyError&) {
    throw;
  } catch (const bus::TlsError&) {
    throw;  // a wrong CA or host name: a start-up error, not an outage to wait out
  } catch (const bus::BusError& e) {
    Log(Level::kWarn, "bus.unreachable_at_start",
        {{"error", e.what()}, {"action", "starting anyway; the links keep retrying"}});
  }
  parts_ = std::move(parts);
}

Daemon::~Daemon() = default;

void Daemon::Start(std::function<void()> on_stopped) {
  parts_->checkpointer.emplace(*parts_->stores.checkpoint);
  if (check_store_ && !parts_->stores.checked_first) {
    // Serving at once; the check's verdict comes back to the engine thread.
    auto executor = executor_;
    engine::Engine* engine = &parts_->engine;
    const std::string path = store_path_;
    parts_->integrity.emplace(
        store_path_, [executor, engine, path](std::optional<std::string> damage, double seconds) {
          if (damage) MarkDamaged(path, *damage);
          boost::asio::post(executor, [engine, damage = std::move(damage), seconds] {
            if (!damage) {
              Log(Level::kInfo, "store.checked",
                  {{"result", "ok"}, {"seconds", std::to_string(seconds)}});
              return;
            }
            Log(Level::kError, "store.damaged",
                {{"error", *damage},
                 {"action", "stopping: restore the store from a backup, then remove its "
                            ".damaged marker (payorch never repairs or resets a store)"}});
            engine->StoreDamaged(*damage);
          });
        });
  }
  parts_->engine.Start([this, on_stopped = std::move(on_stopped)] {
    parts_->integrity.reset();
    parts_->checkpointer.reset();
    if (!parts_->engine.Fatal()) {
      store::WriteResult r = parts_->stores.reader->Checkpoint();
      (void)r;
    }
    if (on_stopped) on_stopped();
  });
}

void Daemon::Drain() {
  parts_->engine.Drain();
}

engine::Engine& Daemon::engine() {
  return parts_->engine;
}

}  // namespace payorch::runtime
