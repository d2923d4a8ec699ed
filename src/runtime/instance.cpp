#include "runtime/instance.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <optional>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/router.hpp"
#include "domain/partition.hpp"
#include "engine/log.hpp"
#include "metrics/registry.hpp"
#include "runtime/daemon.hpp"
#include "runtime/store_lock.hpp"

namespace payorch::runtime {

using engine::Level;
using engine::Log;
using Steady = std::chrono::steady_clock;

namespace {

// A partition this instance holds. Members in this order: the daemon is destroyed
// first (its last commit done), then the lock is released, then the metrics scope.
struct HeldPartition {
  uint32_t partition = 0;
  config::Config config;                     // store.path and the queue of this partition
  std::unique_ptr<metrics::Registry> scope;  // {partition="N"}; null unpartitioned
  std::optional<StoreLock> lock;
  std::optional<Daemon> daemon;
  bool stopped = false;
};

double MillisSince(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

std::string Fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

class Instance::Impl {
 public:
  Impl(boost::asio::any_io_executor ex, const config::Config& config, metrics::Registry& metrics)
      : executor_(ex),
        config_(config),
        metrics_(metrics),
        partitions_(config.bus.topology.partitions),
        may_serve_(config::PartitionList(config.instance.partitions, partitions_)),
        prefer_(config::PartitionList(config.instance.prefer, partitions_)),
        poll_(ex) {
    if (partitions_ > 1) {
      router_ = std::make_unique<bus::Router>(config.bus);
      // A scope without labels: its collector stops when this instance is gone.
      own_metrics_ = std::make_unique<metrics::Registry>(metrics_, metrics::Labels{});
      own_metrics_->on_collect([this](metrics::Registry& m) { Export(m); });
    }
  }

  void Start(std::function<void()> on_stopped) {
    on_stopped_ = std::move(on_stopped);
    started_ = Steady::now();
    if (partitions_ == 1) {
      // As before partitions: the one store, its lock taken or start-up refused.
      Take(0, /*must=*/true);
      return;
    }
    Log(Level::kInfo, "instance.starting",
        {{"partitions", std::to_string(partitions_)},
         {"may_serve", config_.instance.partitions},
         {"prefer", config_.instance.prefer}});
    for (uint32_t p : prefer_)
      if (std::binary_search(may_serve_.begin(), may_serve_.end(), p)) Take(p, /*must=*/false);
    router_->Start();
    Poll();
  }

  void Drain() {
    if (draining_) return;
    draining_ = true;
    poll_.cancel();
    if (router_) router_->Stop();  // what it did not forward goes back to the orders queue
    for (auto& h : held_)
      if (h->daemon && !h->stopped) h->daemon->Drain();
    MaybeStopped();
  }

  engine::Engine* EngineFor(const std::string& order_id) {
    return EngineOf(domain::PartitionOf(order_id, partitions_));
  }

  std::vector<engine::Engine*> Engines() {
    std::vector<engine::Engine*> out;
    for (auto& h : held_)
      if (h->daemon && !h->stopped) out.push_back(&h->daemon->engine());
    return out;
  }

  uint32_t partitions() const { return partitions_; }

  std::vector<uint32_t> Held() const {
    std::vector<uint32_t> out;
    for (const auto& h : held_)
      if (h->daemon && !h->stopped) out.push_back(h->partition);
    std::sort(out.begin(), out.end());
    return out;
  }

  engine::EngineStatus Status() const {
    if (partitions_ == 1) {
      if (!held_.empty() && held_[0]->daemon) return held_[0]->daemon->engine().Status();
      engine::EngineStatus s;
      s.store_ok = false;
      s.detail = "starting";
      return s;
    }
    engine::EngineStatus s;
    s.consumer_connected = true;
    s.publisher_connected = true;
    s.draining = draining_;
    s.fatal = fatal_;
    std::vector<std::string> why;
    for (const auto& h : held_) {
      if (!h->daemon || h->stopped) continue;
      engine::EngineStatus e = h->daemon->engine().Status();
      s.store_ok = s.store_ok && e.store_ok;
      s.consumer_connected = s.consumer_connected && e.consumer_connected;
      s.publisher_connected = s.publisher_connected && e.publisher_connected;
      s.draining = s.draining || e.draining;
      s.fatal = s.fatal || e.fatal;
      if (!e.Ready()) why.push_back("partition " + std::to_string(h->partition) + ": " + e.detail);
    }
    for (const Instance::Failure& f : Failures())
      why.push_back("partition " + std::to_string(f.partition) + " failed (attempt " +
                    std::to_string(f.attempts) + ", next in " + Fixed1(f.retry_in_s) +
                    " s): " + f.error);
    if (Held().empty()) {
      s.store_ok = false;
      why.push_back("standby: holds none of its partitions (" + config_.instance.partitions +
                    "); another instance serves them");
    }
    if (router_) {
      if (!router_->ConsumerStatus().connected || !router_->PublisherStatus().connected) {
        s.consumer_connected = false;
        why.push_back("router: not connected to the broker");
      }
    }
    for (const auto& w : why) s.detail += (s.detail.empty() ? "" : "; ") + w;
    return s;
  }

  bool Fatal() const { return fatal_; }
  bool Draining() const { return draining_; }

  std::vector<Instance::Failure> Failures() const {
    std::vector<Instance::Failure> out;
    const auto now = Steady::now();
    for (const auto& [p, f] : failed_) {
      if (!f.pending || Holds(p)) continue;
      Instance::Failure o;
      o.partition = p;
      o.attempts = f.attempts;
      o.error = f.error;
      o.retry_in_s = std::max(0.0, std::chrono::duration<double>(f.retry_at - now).count());
      out.push_back(std::move(o));
    }
    return out;
  }

 private:
  engine::Engine* EngineOf(uint32_t p) {
    for (auto& h : held_)
      if (h->partition == p && h->daemon && !h->stopped) return &h->daemon->engine();
    return nullptr;
  }

  bool Holds(uint32_t p) const {
    for (const auto& h : held_)
      if (h->partition == p) return true;
    return false;
  }

  // Takes partition p when its lock is free. `must`: unpartitioned, a held lock or
  // any failure is a start-up error (thrown). Partitioned, a partition that fails to
  // start is released and tried again later (Failed).
  void Take(uint32_t p, bool must) {
    if (draining_) return;
    if (auto f = failed_.find(p); f != failed_.end() && Steady::now() < f->second.retry_at)
      return;
    auto held = std::make_unique<HeldPartition>();
    held->partition = p;
    held->config = config_;
    if (partitions_ > 1) {
      held->config.store.path = config::PartitionStorePath(config_.store.path, p);
      held->config.bus.consume_queue = bus::PartitionQueue(config_.bus.topology, p);
      held->scope = std::make_unique<metrics::Registry>(
          metrics_, metrics::Labels{{"partition", std::to_string(p)}});
    }
    const std::string& path = held->config.store.path;
    if (!must && !held->config.store.options.create_if_missing &&
        !std::filesystem::exists(path)) {
      // Its volume is attached elsewhere (or not yet): never start an empty store
      // beside the real one. Taken once the store is there and its lock free.
      if (absent_.insert(p).second)
        Log(Level::kInfo, "partition.store_absent",
            {{"partition", std::to_string(p)},
             {"store", path},
             {"action", "waiting for it (store.create_if_missing = false)"}});
      return;
    }
    const auto t0 = Steady::now();
    try {
      std::filesystem::path dir = std::filesystem::path(path).parent_path();
      if (!dir.empty() && held->config.store.options.create_if_missing)
        std::filesystem::create_directories(dir);
      if (must) {
        held->lock.emplace(StoreLock::Acquire(path));
      } else {
        std::string holder;
        auto lock = StoreLock::TryAcquire(path, &holder);
        if (!lock) {
          holders_[p] = holder;
          // Another instance took it after it failed here: not ours to report.
          if (auto f = failed_.find(p); f != failed_.end()) f->second.pending = false;
          return;
        }
        held->lock.emplace(std::move(*lock));
      }
      held->daemon.emplace(executor_, held->config, held->scope ? *held->scope : metrics_, p);
    } catch (const std::exception& e) {
      if (must) throw;
      Failed(p, "partition.start_failed", e.what());
      return;  // `held` goes: its half-built daemon, then the lock
    }
    HeldPartition* raw = held.get();
    held_.push_back(std::move(held));
    try {
      raw->daemon->Start([this, raw] { OnStopped(*raw); });
    } catch (const std::exception& e) {
      if (must) throw;
      // A half-started engine (a thread or descriptor that could not be made) may
      // have work on its writer: it is not destroyed under it. The instance goes
      // (exit 1) and its supervisor restarts it, as after any crash.
      raw->stopped = true;
      Log(Level::kError, "partition.start_failed",
          {{"partition", std::to_string(p)},
           {"error", e.what()},
           {"action", "stopping this instance (exit 1)"}});
      fatal_ = true;
      Drain();
      return;
    }
    if (auto f = failed_.find(p); f != failed_.end()) f->second.pending = false;
    if (partitions_ > 1) {
      auto it = holders_.find(p);
      Log(Level::kInfo, "partition.serving",
          {{"partition", std::to_string(p)},
           {"store", path},
           {"queue", raw->config.bus.ConsumeQueue()},
           {"took_over_from", it == holders_.end() ? "" : "pid " + it->second},
           {"start_ms", Fixed1(MillisSince(t0))}});
    }
  }

  // Tries every partition it may serve and does not hold, again and again.
  void Poll() {
    if (draining_) return;
    const bool grace_over = Steady::now() - started_ >= config_.instance.standby_delay;
    if (grace_over && !grace_logged_ && prefer_.size() < partitions_) {
      grace_logged_ = true;
      Log(Level::kInfo, "instance.standby_delay_over",
          {{"action", "taking over any partition of " + config_.instance.partitions +
                          " whose holder is gone"}});
    }
    for (uint32_t p : may_serve_) {
      if (draining_) return;
      if (Holds(p)) continue;
      if (!grace_over && !std::binary_search(prefer_.begin(), prefer_.end(), p)) continue;
      Take(p, /*must=*/false);
    }
    if (draining_) return;
    poll_.expires_after(config_.instance.poll_interval);
    poll_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Poll();
    });
  }

  void OnStopped(HeldPartition& h) {
    h.stopped = true;
    if (!draining_ && partitions_ > 1) {
      // An engine that stopped by itself stopped on a fatal error (a damaged store, a
      // commit that cannot be made): that partition is released and retried later;
      // the others go on.
      std::string why = h.daemon->engine().Status().detail;
      Failed(h.partition, "partition.stopped", why.empty() ? "its engine stopped" : why);
      Release(&h);
      return;
    }
    if (h.daemon->engine().Fatal()) fatal_ = true;
    if (!draining_) {
      // Unpartitioned, an engine that stopped by itself stopped on a fatal error: the
      // instance goes (exit 1) and its supervisor restarts it.
      Log(Level::kError, "partition.stopped",
          {{"partition", std::to_string(h.partition)},
           {"action", "stopping this instance (exit 1)"}});
      fatal_ = true;
      Drain();
      return;
    }
    MaybeStopped();
  }

  // A partition that failed: backs off (1 s doubling to 5 min; the count starts again
  // after an hour without failing), logs, counts.
  void Failed(uint32_t p, const char* event, const std::string& error) {
    const auto now = Steady::now();
    Failure& f = failed_[p];
    if (f.attempts > 0 && now - f.last >= std::chrono::hours(1)) f.attempts = 0;
    f.attempts = std::min(f.attempts + 1, 30);
    f.last = now;
    f.error = error;
    f.pending = true;
    const std::chrono::milliseconds backoff =
        std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000LL << std::min(f.attempts - 1, 9)),
                                            std::chrono::minutes(5));
    f.retry_at = now + backoff;
    ++failures_total_;
    Log(Level::kError, event,
        {{"partition", std::to_string(p)},
         {"error", error},
         {"attempt", std::to_string(f.attempts)},
         {"action", "released it (another instance may take it); serving the other "
                    "partitions; trying it again in " +
                        Fixed1(std::chrono::duration<double>(backoff).count()) + " s"}});
  }

  // Destroys a stopped partition after the current handler (its daemon may be
  // calling us): its last commit done, then its lock released.
  void Release(HeldPartition* h) {
    boost::asio::post(executor_, [this, h, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.lock()) return;
      auto it = std::find_if(held_.begin(), held_.end(),
                             [h](const auto& owned) { return owned.get() == h; });
      if (it != held_.end()) held_.erase(it);
      MaybeStopped();
    });
  }

  void MaybeStopped() {
    if (!draining_ || notified_) return;
    for (const auto& h : held_)
      if (h->daemon && !h->stopped) return;
    notified_ = true;
    // After the current handler: Drain() may be inside a daemon's callback.
    boost::asio::post(executor_, [this, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.lock() && on_stopped_) on_stopped_();
    });
  }

  void Export(metrics::Registry& m) {
    const bus::Router::Stats st = router_->GetStats();
    m.counter("payorch_router_forwarded_total",
              "Order events the router moved to their partition's queue (confirmed).")
        .RaiseTo(static_cast<double>(st.forwarded));
    m.counter("payorch_router_resent_total",
              "Copies the router sent again after the broker did not confirm them.")
        .RaiseTo(static_cast<double>(st.resent));
    m.counter("payorch_router_dead_lettered_total",
              "Undecodable order events the router moved to the dead-letter queue.")
        .RaiseTo(static_cast<double>(st.dead_lettered + st.refused));
    m.gauge("payorch_partitions", "Partitions of the deployment (bus.topology.partitions).")
        .Set(static_cast<double>(partitions_));
    m.gauge("payorch_partitions_held", "Partitions this instance serves.")
        .Set(static_cast<double>(Held().size()));
    m.gauge("payorch_partitions_failed",
            "Partitions this instance released after a failure and will try again.")
        .Set(static_cast<double>(Failures().size()));
    m.counter("payorch_partition_failures_total",
              "Partitions that failed to start or whose engine stopped on a fatal error.")
        .RaiseTo(static_cast<double>(failures_total_));
  }

  boost::asio::any_io_executor executor_;
  const config::Config config_;
  metrics::Registry& metrics_;
  const uint32_t partitions_;
  const std::vector<uint32_t> may_serve_;
  const std::vector<uint32_t> prefer_;
  boost::asio::steady_timer poll_;
  std::unique_ptr<bus::Router> router_;
  struct Failure {
    bool pending = false;  // released after a failure, not yet served again (by anyone)
    int attempts = 0;
    Steady::time_point last{}, retry_at{};
    std::string error;
  };
  std::map<uint32_t, Failure> failed_;
  uint64_t failures_total_ = 0;
  std::vector<std::unique_ptr<HeldPartition>> held_;
  std::map<uint32_t, std::string> holders_;  // the pid last seen holding a partition
  std::set<uint32_t> absent_;                 // partitions whose store was not there
  std::function<void()> on_stopped_;
  Steady::time_point started_{};
  bool draining_ = false;
  bool fatal_ = false;
  bool notified_ = false;
  bool grace_logged_ = false;
  // Posted handlers run only while this lives.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<metrics::Registry> own_metrics_;  // last: its collector reads the above
};

Instance::Instance(boost::asio::any_io_executor executor, const config::Config& config,
                   metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(executor, config, metrics)) {}
Instance::~Instance() = default;
void Instance::Start(std::function<void()> on_stopped) { impl_->Start(std::move(on_stopped)); }
void Instance::Drain() { impl_->Drain(); }
engine::Engine* Instance::EngineFor(const std::string& order_id) {
  return impl_->EngineFor(order_id);
}
std::vector<engine::Engine*> Instance::Engines() { return impl_->Engines(); }
uint32_t Instance::partitions() const { return impl_->partitions(); }
std::vector<uint32_t> Instance::Held() const { return impl_->Held(); }
engine::EngineStatus Instance::Status() const { return impl_->Status(); }
bool Instance::Fatal() const { return impl_->Fatal(); }
bool Instance::Draining() const { return impl_->Draining(); }
std::vector<Instance::Failure> Instance::Failures() const { return impl_->Failures(); }

}  // namespace payorch::runtime
