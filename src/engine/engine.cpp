#include "engine/engine.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/consumer.hpp"
#include "bus/publisher.hpp"
#include "bus/topology.hpp"
#include "domain/decide.hpp"
#include "engine/log.hpp"
#include "http/callback_token.hpp"
#include "http/metrics.hpp"
#include "payex/asio_client.hpp"
#include "store/store.hpp"

namespace payorch::engine {

namespace asio = boost::asio;
using domain::Time;
using SteadyClock = std::chrono::steady_clock;

namespace {

Time Now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

double Seconds(SteadyClock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Publishes in flight at once from the outbox; per order at most one (below).
constexpr size_t kRelayWindow = 2048;
// Unsent outbox rows read per store query.
constexpr size_t kRelayLoad = 2048;
// Payments kept in memory; beyond it, the cache is trimmed after a commit (every
// entry is then equal to its row, so any may go).
constexpr size_t kCacheMax = 200'000;
// How long a drain waits for PayEx calls and confirms before giving up on them
// (both are safe to abandon: a restart reads PayEx and republishes).
constexpr auto kDrainWait = std::chrono::seconds(15);

const char* PhaseOrNone(const std::optional<domain::Phase>& p) {
  return p ? domain::PhaseName(*p) : "none";
}

}  // namespace

class Engine::Impl {
 public:
  Impl(asio::any_io_executor ex, const app::Config& config, http::Registry& metrics)
      : ex_(ex),
        config_(config),
        metrics_(metrics),
        timer_(ex),
        rate_timer_(ex),
        relay_timer_(ex),
        mark_timer_(ex),
        drain_timer_(ex),
        gather_timer_(ex) {
    store::Options so = config.store.options;
    // Checkpoints run on a thread of their own (below), so a commit never pays for one.
    so.wal_autocheckpoint_pages = 0;
    // Three connections to one WAL file: the writer thread commits, the engine
    // thread reads what is committed, the checkpointer copies the WAL back.
    writer_store_.emplace(store::Store::Open(config.store.path, so));
    store::Options co = so;
    co.quick_check = false;
    co.create_if_missing = false;
    store_.emplace(store::Store::Open(config.store.path, co));
    checkpoint_store_.emplace(store::Store::Open(config.store.path, co));

    // A broker with an incompatible queue is a start-up error, not a retry loop. A
    // broker that is down is not: the links connect (and declare) when it is back.
    try {
      bus::DeclareTopology(config.bus);
    } catch (const bus::TopologyError&) {
      throw;
    } catch (const bus::BusError& e) {
      Log(Level::kWarn, "bus.unreachable_at_start",
          {{"error", e.what()}, {"action", "starting anyway; the links keep retrying"}});
    }

    payex::ClientOptions po = config.payex;
    std::string secret = config.callback_secret;
    po.callback_token = [secret](const std::string& order_id) {
      return http::CallbackToken(secret, order_id);
    };
    // One line per PayEx call at debug level; not even built otherwise.
    if (LogEnabled(Level::kDebug))
      po.log = [](std::string_view line) { LogLine(Level::kDebug, line); };
    client_ = std::make_unique<payex::AsioClient>(ex, std::move(po));

    RegisterMetrics();
  }

  ~Impl() {
    StopWriter();
    StopCheckpointer();
    if (consumer_) consumer_->Stop();
    if (publisher_) publisher_->Stop();
  }

  // ---- start and stop ---------------------------------------------------------

  void Start(std::function<void()> on_stopped) {
    on_stopped_ = std::move(on_stopped);
    StartCheckpointer();
    StartWriter();

    // Whatever was in flight when the last process ended is in doubt: read PayEx.
    std::vector<std::string> resumed = store_->PaymentsWithCallsInFlight();
    for (const std::string& order_id : resumed) Apply(order_id, domain::Resume{}, "resume");
    // (Unsent events are the relay's first load; payorch_outbox_backlog counts them.
    // RowCounts here would scan every payment and inbox row for one log field.)
    Log(Level::kInfo, "engine.resumed", {{"calls_in_doubt", std::to_string(resumed.size())}});
    Flush();
    WakeRelay();
    ArmTimer();

    consumer_ = std::make_unique<bus::Consumer>(
        config_.bus,
        [this](bus::Delivery d) { HandOver(intake_, std::move(d), [this] { DrainIntake(); }); });
    // The bus adapter logs its own connects and losses; a new connection may send
    // what waited for it.
    publisher_ = std::make_unique<bus::Publisher>(config_.bus, [this](const bus::LinkStatus& s) {
      if (s.connected) asio::post(ex_, [this] { WakeRelay(); });
    });
    publisher_->Start();
    consumer_->Start();
    Log(Level::kInfo, "engine.started",
        {{"store", config_.store.path}, {"max_batch", std::to_string(config_.engine.max_batch)},
         {"max_concurrent_calls", std::to_string(config_.engine.max_concurrent_calls)}});
  }

  void Drain() {
    if (draining_ || stopped_) return;
    draining_ = true;
    drain_deadline_ = SteadyClock::now() + kDrainWait;
    Log(Level::kInfo, "engine.draining",
        {{"decisions_pending", std::to_string(batch_.commits.size())},
         {"payex_calls_in_flight", std::to_string(calls_in_flight_)},
         {"publishes_in_flight", std::to_string(relay_in_flight_)}});
    timer_.cancel();
    rate_timer_.cancel();
    Flush();
    DrainStep();
  }

  void DrainStep() {
    if (stopped_) return;
    // Calls committed as in flight but never sent (intake stopped): tell the state
    // machine the truth, "not sent" (transient), so the next start retries them
    // instead of treating them as in doubt.
    if (!call_queue_.empty()) {
      std::list<domain::PayexCall> unsent;
      unsent.swap(call_queue_);
      for (const auto& call : unsent) {
        domain::PayexResult r;
        r.call_id = call.call_id;
        r.result = domain::ResultClass::kTransient;
        Apply(call.order_id, r, "payex_result", &r);
      }
    }
    Flush();
    bool calls_done = calls_in_flight_ == 0 && batches_in_flight_ == 0 && batch_.commits.empty();
    bool relay_done = relay_in_flight_ == 0 && relay_pending_.empty() && !relay_more_;
    bool late = SteadyClock::now() >= drain_deadline_;
    if ((calls_done && relay_done) || late) {
      if (late)
        Log(Level::kWarn, "engine.drain_timeout",
            {{"payex_calls_in_flight", std::to_string(calls_in_flight_)},
             {"publishes_in_flight", std::to_string(relay_in_flight_)},
             {"note", "left to the next start: calls are read back, events republished"}});
      Stop();
      return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) DrainStep();
    });
  }

  // Stops the links; acks already requested are sent first (Consumer::Stop).
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    draining_ = true;
    timer_.cancel();
    rate_timer_.cancel();
    relay_timer_.cancel();
    mark_timer_.cancel();
    drain_timer_.cancel();
    gather_timer_.cancel();
    if (consumer_) consumer_->Stop();
    if (publisher_) publisher_->Stop();
    client_->Close();
    StopWriter();
    StopCheckpointer();
    if (!fatal_) {
      store::WriteResult r = store_->Checkpoint();
      (void)r;
    }
    Log(fatal_ ? Level::kError : Level::kInfo, "engine.stopped",
        {{"fatal", fatal_ ? "true" : "false"}});
    if (on_stopped_) {
      auto f = std::move(on_stopped_);
      on_stopped_ = nullptr;
      f();
    }
  }

  // ---- inputs -------------------------------------------------------------------

  void OnDelivery(bus::Delivery d) {
    if (draining_) return;  // not acked: the broker delivers it again after we close
    const domain::OrderEvent& ev = d.event;
    const char* kind = domain::OrderEventKindName(ev.kind);
    if (pending_inbox_.count(ev.event_id)) {
      // The same event is in the batch being collected: ack both after its commit.
      batch_.acks.push_back({d.generation, d.delivery_tag});
      Consumed(kind, "duplicate");
      ScheduleFlush();
      return;
    }
    bool seen = false;
    try {
      seen = store_->HasEvent(ev.event_id);
    } catch (const std::exception& e) {
      StoreBroken(e.what());
      return;
    }
    if (seen) {
      Consumed(kind, "duplicate");
      Log(Level::kInfo, "order_event.duplicate",
          {{"order_id", ev.order_id}, {"event_id", ev.event_id}, {"kind", kind}});
      consumer_->Ack(d.generation, d.delivery_tag);
      return;
    }
    Applied a = Apply(ev.order_id, ev, "order_event");
    if (!a.ok) {
      consumer_->Reject(d.generation, d.delivery_tag, true);
      return;
    }
    bool rejected = false;
    for (const auto& out : a.events)
      if (out.kind == domain::EventKind::kRejected && out.caused_by_event_id == ev.event_id)
        rejected = true;
    Consumed(kind, rejected ? "rejected" : "accepted");
    pending_inbox_[ev.event_id] = last_job_ + 1;  // the job this batch will become
    batch_.acks.push_back({d.generation, d.delivery_tag});
    ScheduleFlush();
  }

  HintOutcome OnCallback(const std::string& order_id, const char* input_name) {
    domain::Payment* p = Find(order_id);
    if (!p || p->payment_id.empty()) return HintOutcome::kUnknownPayment;
    Apply(order_id, domain::CallbackHint{}, input_name, nullptr,
          /*record=*/std::string_view(input_name) == "resolve");
    ScheduleFlush();
    return HintOutcome::kAccepted;
  }

  RepublishOutcome Republish(const std::string& order_id) {
    RepublishOutcome out;
    domain::Payment* p = Find(order_id);
    if (!p) return out;
    out.known = true;
    std::vector<store::OutboxRow> rows;
    try {
      rows = store_->OutboxFor(order_id);
    } catch (const std::exception& e) {
      StoreBroken(e.what());
      return out;
    }
    for (auto& row : rows) {
      if (relay_seqs_.count(row.seq)) continue;  // already on its way
      relay_seqs_.insert(row.seq);
      // An unsent row is published as usual (and marked sent); a sent one again.
      const bool again = row.sent_at.has_value();
      // Before the order's later rows still waiting: its events stay in sequence.
      auto pos = std::find_if(relay_pending_.begin(), relay_pending_.end(), [&](const RelayRow& r) {
        return r.row.event.order_id == order_id && r.row.seq > row.seq;
      });
      relay_pending_.insert(pos, RelayRow{std::move(row), again});
      ++out.events;
    }
    // The operator's action belongs in the payment's timeline.
    store::Commit c;
    c.phase_before = p->phase;
    c.after = *p;
    c.input_name = "republish";
    c.note = "operator republished " + std::to_string(out.events) + " events";
    c.at = Now();
    batch_.commits.push_back(std::move(c));
    uncommitted_[order_id] = last_job_ + 1;
    Log(Level::kInfo, "payment.republish",
        {{"order_id", order_id}, {"events", std::to_string(out.events)}});
    ScheduleFlush();
    WakeRelay();
    return out;
  }

  EngineStatus Status() const {
    EngineStatus s;
    s.store_ok = !fatal_;
    s.consumer_connected = consumer_ && consumer_->Status().connected;
    s.publisher_connected = publisher_ && publisher_->Status().connected;
    s.draining = draining_;
    s.fatal = fatal_;
    if (fatal_) s.detail = "store failed: " + fatal_reason_;
    else if (draining_) s.detail = "shutting down";
    else if (!s.consumer_connected)
      s.detail = "consumer not connected: " + (consumer_ ? consumer_->Status().last_error : "");
    else if (!s.publisher_connected)
      s.detail = "publisher not connected: " + publisher_->Status().last_error;
    return s;
  }

  bool fatal() const { return fatal_; }

 private:
  struct Ack {
    uint64_t generation;
    uint64_t tag;
  };
  struct Batch {
    std::vector<store::Commit> commits;
    std::vector<Ack> acks;
    std::vector<domain::PayexCall> calls;
    bool events = false;
    SteadyClock::time_point opened{};
  };
  template <typename T>
  struct Mailbox {
    std::mutex mu;
    std::vector<T> items;
  };
  struct WriterJob {
    uint64_t id = 0;
    Batch batch;
    std::vector<int64_t> sent;
  };
  struct Applied {
    bool ok = true;
    std::vector<domain::PaymentEvent> events;
  };
  struct RelayRow {
    store::OutboxRow row;
    bool republish = false;  // already marked sent: do not mark again
  };
  struct Confirm {
    RelayRow row;
    bus::PublishResult result;
  };

  // ---- deciding ------------------------------------------------------------------

  // The cached payment, else its row, else nullptr.
  domain::Payment* Find(const std::string& order_id) {
    auto it = cache_.find(order_id);
    if (it != cache_.end()) return &it->second;
    std::optional<domain::Payment> loaded;
    try {
      loaded = store_->LoadPayment(order_id);
    } catch (const std::exception& e) {
      StoreBroken(e.what());
      return nullptr;
    }
    if (!loaded) return nullptr;
    return &cache_.emplace(order_id, std::move(*loaded)).first->second;
  }

  // record: write the decision even when it changes nothing (an operator's action
  // belongs in the payment's timeline).
  Applied Apply(const std::string& order_id, const domain::Input& input, const char* input_name,
                const domain::PayexResult* result = nullptr, bool record = false) {
    Applied out;
    if (fatal_) {
      out.ok = false;
      return out;
    }
    domain::Payment* found = Find(order_id);
    if (fatal_) {
      out.ok = false;
      return out;
    }
    std::optional<domain::Phase> before;
    domain::Payment fresh;
    if (found) {
      before = found->phase;
    } else {
      fresh.order_id = order_id;
    }
    const domain::Payment& current = found ? *found : fresh;
    const Time now = Now();
    domain::Decision d = domain::Decide(config_.payments, current, input, now);
    metrics_.counter("payorch_decisions_total", "Decisions of the payment state machine, by input.",
                     {{"input", input_name}})
        .Inc();

    // A decision that changes nothing but the time (a callback with nothing to
    // learn, a stale result) is not written: no fsync for it.
    bool changed = !d.events.empty() || !d.calls.empty() || d.accepted_event || !found || record;
    if (!changed) {
      const Time stamped = d.next.updated_at;
      d.next.updated_at = current.updated_at;
      changed = !(d.next == current);
      d.next.updated_at = stamped;
    }
    if (!changed) return out;

    store::Commit c;
    c.phase_before = before;
    c.input_name = input_name;
    c.note = d.note;
    c.at = now;
    if (d.accepted_event) c.inbox_event_id = std::get<domain::OrderEvent>(input).event_id;
    // A call that is no longer in flight after this decision is finished: by its
    // result, or abandoned (watchdog, restart).
    const uint64_t old_call = current.in_flight.call_id;
    if (old_call != 0 && d.next.in_flight.call_id != old_call) {
      store::CallFinished f;
      f.call_id = old_call;
      if (result && result->call_id == old_call) {
        f.result = domain::ResultClassName(result->result);
        f.latency_ms = result->latency_ms;
      } else {
        f.result = "abandoned";
      }
      c.finished = f;
    }
    c.events = d.events;
    c.calls = d.calls;
    c.after = d.next;

    if (LogEnabled(Level::kInfo)) {
      Fields f{{"order_id", order_id},
               {"input", input_name},
               {"phase", std::string(PhaseOrNone(before)) + "->" + domain::PhaseName(d.next.phase)}};
      if (!d.calls.empty()) f.emplace_back("call", domain::OpKindName(d.calls[0].kind));
      for (const auto& ev : d.events) f.emplace_back("emits", domain::EventKindName(ev.kind));
      if (!d.note.empty()) f.emplace_back("note", d.note);
      Log(Level::kInfo, "payment.decided", f);
    }

    out.events = d.events;
    batch_.events = batch_.events || !d.events.empty();
    for (auto& call : d.calls) batch_.calls.push_back(call);
    if (batch_.commits.empty()) batch_.opened = SteadyClock::now();
    batch_.commits.push_back(std::move(c));
    uncommitted_[order_id] = last_job_ + 1;  // the job this batch will become
    if (found) {
      *found = std::move(d.next);
    } else {
      cache_.emplace(order_id, std::move(d.next));
    }
    return out;
  }

  void ScheduleFlush() {
    if (batch_.commits.size() >= config_.engine.max_batch) {
      Flush();
      return;
    }
    if (flush_posted_) return;
    flush_posted_ = true;
    // Posted behind whatever is ready now: decisions arriving together share a commit.
    asio::post(ex_, [this] {
      flush_posted_ = false;
      Flush();
    });
  }

  // Group commit: hands the decisions collected so far (plus confirmed publishes to
  // mark) to the writer thread as one transaction. While the writer is busy with
  // one, the next batch grows (up to engine.max_batch), so the batch size follows
  // the load and the engine thread never waits for an fsync. Acks, calls and the
  // relay follow in OnCommitted, in commit order.
  void Flush() {
    if (fatal_) return;
    if (batch_.commits.empty() && batch_.acks.empty() && sent_to_mark_.empty()) return;
    if (batches_in_flight_ > 0 && batch_.commits.size() < config_.engine.max_batch) return;
    const auto gather = config_.engine.commit_delay;
    if (gather.count() > 0 && !draining_ && batch_.commits.size() < config_.engine.max_batch &&
        !batch_.commits.empty()) {
      auto first = batch_.opened;
      if (SteadyClock::now() - first < gather) {
        if (!gather_timer_armed_) {
          gather_timer_armed_ = true;
          gather_timer_.expires_at(first + gather);
          gather_timer_.async_wait([this](boost::system::error_code ec) {
            gather_timer_armed_ = false;
            if (!ec) Flush();
          });
        }
        return;
      }
    }
    auto job = std::make_shared<WriterJob>();
    job->batch = std::move(batch_);
    batch_ = Batch{};
    job->sent = std::move(sent_to_mark_);
    sent_to_mark_.clear();
    job->id = ++last_job_;
    ++batches_in_flight_;
    {
      std::lock_guard lock(writer_mu_);
      writer_queue_.push_back(std::move(job));
    }
    writer_cv_.notify_one();
  }

  void OnCommitted(const std::shared_ptr<WriterJob>& job, const store::WriteResult& r,
                   SteadyClock::duration elapsed) {
    --batches_in_flight_;
    const Batch& b = job->batch;
    if (!r.ok) {
      // Later batches were decided on top of this one: nothing after it may land.
      // Stop; the next start decides again from the file (deliveries are redelivered,
      // calls in flight are read back).
      Log(Level::kError, "store.commit_failed",
          {{"code", store::ErrorCodeName(r.code)},
           {"decisions", std::to_string(b.commits.size())},
           {"error", r.message}});
      metrics_.counter("payorch_commit_failures_total", "Group commits that failed.").Inc();
      StoreBroken(r.message);
      return;
    }
    for (const auto& c : b.commits) {
      if (!c.inbox_event_id.empty()) {
        auto it = pending_inbox_.find(c.inbox_event_id);
        if (it != pending_inbox_.end() && it->second <= job->id) pending_inbox_.erase(it);
      }
      auto u = uncommitted_.find(c.after.order_id);
      if (u != uncommitted_.end() && u->second <= job->id) uncommitted_.erase(u);
    }
    if (!b.commits.empty()) {
      metrics_.counter("payorch_commits_total", "Group commits (one transaction each).").Inc();
      metrics_
          .histogram("payorch_commit_batch_size", "Decisions per group commit.",
                     {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
          .Observe(static_cast<double>(b.commits.size()));
      metrics_
          .histogram("payorch_commit_seconds", "Time of one group commit, fsync included.",
                     http::LatencyBucketsSeconds())
          .Observe(Seconds(elapsed));
    }
    if (stopped_) return;
    for (const Ack& a : b.acks) consumer_->Ack(a.generation, a.tag);
    for (const auto& call : b.calls) call_queue_.push_back(call);
    PumpCalls();
    if (b.events) {
      relay_more_ = true;
      WakeRelay();
    }
    if (!b.commits.empty()) ArmTimer();
    if (cache_.size() > kCacheMax) TrimCache();
    if (batches_in_flight_ == 0) Flush();  // what gathered meanwhile
  }

  // The writer thread: commits batches in the order they were handed over.
  void StartWriter() {
    writer_thread_ = std::thread([this] {
      for (;;) {
        std::shared_ptr<WriterJob> job;
        {
          std::unique_lock lock(writer_mu_);
          writer_cv_.wait(lock, [&] { return writer_stop_ || !writer_queue_.empty(); });
          if (writer_queue_.empty()) return;
          job = std::move(writer_queue_.front());
          writer_queue_.pop_front();
        }
        store::WriteResult r;
        auto t0 = SteadyClock::now();
        if (writer_failed_) {
          r.ok = false;
          r.code = store::ErrorCode::kIo;
          r.message = "an earlier commit failed";
        } else {
          r = writer_store_->CommitBatch(job->batch.commits, job->sent, Now());
          writer_failed_ = !r.ok;
        }
        auto elapsed = SteadyClock::now() - t0;
        asio::post(ex_, [this, job, r = std::move(r), elapsed] { OnCommitted(job, r, elapsed); });
      }
    });
  }

  // Commits what was handed over, then ends the thread.
  void StopWriter() {
    if (!writer_thread_.joinable()) return;
    {
      std::lock_guard lock(writer_mu_);
      writer_stop_ = true;
      if (fatal_) writer_queue_.clear();
    }
    writer_cv_.notify_all();
    writer_thread_.join();
  }

  void StoreBroken(const std::string& why) {
    if (fatal_) return;
    fatal_ = true;
    fatal_reason_ = why;
    Log(Level::kError, "engine.fatal",
        {{"error", why}, {"action", "stopping; restart on the consistent file"}});
    asio::post(ex_, [this] { Stop(); });
  }

  // Payments whose decisions are all committed equal their rows: any of them may
  // go (a later input loads the row again). Down to half, so trims are rare.
  void TrimCache() {
    size_t before = cache_.size();
    for (auto it = cache_.begin(); it != cache_.end() && cache_.size() > kCacheMax / 2;) {
      if (!uncommitted_.count(it->first)) {
        it = cache_.erase(it);
      } else {
        ++it;
      }
    }
    Log(Level::kDebug, "engine.cache_trimmed",
        {{"before", std::to_string(before)}, {"after", std::to_string(cache_.size())}});
  }

  // ---- PayEx calls ----------------------------------------------------------------

  void PumpCalls() {
    while (!call_queue_.empty() && !draining_ &&
           calls_in_flight_ < config_.engine.max_concurrent_calls) {
      if (!TakeToken()) return;
      domain::PayexCall call = std::move(call_queue_.front());
      call_queue_.pop_front();
      // A call that waited for a slot may have been given up meanwhile (the watchdog
      // made it in doubt, a read or a new attempt replaced it): never send it late.
      domain::Payment* p = Find(call.order_id);
      if (!p || p->in_flight.call_id != call.call_id) {
        metrics_.counter("payorch_payex_calls_dropped_total",
                         "Queued PayEx calls dropped unsent because the payment moved on.")
            .Inc();
        Log(Level::kWarn, "payex.call_dropped",
            {{"order_id", call.order_id}, {"call_id", std::to_string(call.call_id)},
             {"kind", domain::OpKindName(call.kind)}});
        continue;
      }
      ++calls_in_flight_;
      asio::co_spawn(ex_, RunCall(std::move(call)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          Log(Level::kError, "payex.call_crashed", {{"error", ex.what()}});
        }
      });
    }
  }

  // The global rate limit toward PayEx: a token bucket refilled continuously.
  bool TakeToken() {
    const double rate = config_.engine.payex_rate_limit;
    if (rate <= 0) return true;
    const double burst = std::max(1.0, rate / 20);
    auto now = SteadyClock::now();
    tokens_ = std::min(burst, tokens_ + Seconds(now - tokens_at_) * rate);
    tokens_at_ = now;
    if (tokens_ >= 1) {
      tokens_ -= 1;
      return true;
    }
    if (!rate_timer_armed_) {
      rate_timer_armed_ = true;
      auto wait = std::chrono::duration<double>((1 - tokens_) / rate);
      rate_timer_.expires_after(std::chrono::duration_cast<SteadyClock::duration>(wait));
      rate_timer_.async_wait([this](boost::system::error_code ec) {
        rate_timer_armed_ = false;
        if (!ec) PumpCalls();
      });
    }
    return false;
  }

  asio::awaitable<void> RunCall(domain::PayexCall call) {
    const auto t0 = SteadyClock::now();
    domain::PayexResult r;
    try {
      r = co_await client_->Execute(call);
    } catch (const std::exception& e) {
      // Unknown whether it reached PayEx: in doubt, resolved by reading.
      Log(Level::kError, "payex.call_failed", {{"order_id", call.order_id}, {"error", e.what()}});
      r = domain::PayexResult{};
      r.result = domain::ResultClass::kInDoubt;
    }
    r.call_id = call.call_id;
    --calls_in_flight_;
    const char* op = domain::OpKindName(call.kind);
    const char* outcome = domain::ResultClassName(r.result);
    metrics_
        .counter("payorch_payex_calls_total", "PayEx calls by operation and outcome.",
                 {{"operation", op}, {"outcome", outcome}})
        .Inc();
    metrics_
        .histogram("payorch_payex_call_seconds", "Latency of PayEx calls by operation.",
                   http::LatencyBucketsSeconds(), {{"operation", op}})
        .Observe(Seconds(SteadyClock::now() - t0));
    if (r.result == domain::ResultClass::kTransient || r.result == domain::ResultClass::kInDoubt)
      metrics_
          .counter("payorch_retries_total",
                   "PayEx outcomes that lead to a retry (transient) or a read (in doubt).",
                   {{"operation", op}, {"reason", outcome}})
          .Inc();
    if (!stopped_ && !fatal_) {
      Apply(call.order_id, r, "payex_result", &r);
      ScheduleFlush();
    }
    PumpCalls();
  }

  // ---- timers -----------------------------------------------------------------------

  // One timer in memory: the earliest due_at of any payment (the rows are the timers).
  void ArmTimer() {
    if (draining_ || fatal_) return;
    std::optional<Time> next;
    try {
      next = store_->NextDueAt();
    } catch (const std::exception& e) {
      StoreBroken(e.what());
      return;
    }
    if (!next) {
      if (timer_at_) timer_.cancel();
      timer_at_.reset();
      return;
    }
    Time at = *next;
    if (Now() < quiet_until_) at = std::max(at, quiet_until_);
    if (timer_at_ && *timer_at_ == at) return;
    timer_at_ = at;
    auto delay = at - Now();
    if (delay.count() < 0) delay = domain::Duration(0);
    timer_.expires_after(delay);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      timer_at_.reset();
      OnTimer();
    });
  }

  void OnTimer() {
    if (draining_ || fatal_) return;
    std::vector<std::string> due;
    try {
      due = store_->DuePayments(Now(), config_.engine.max_batch);
    } catch (const std::exception& e) {
      StoreBroken(e.what());
      return;
    }
    size_t before = batch_.commits.size();
    size_t ticked = 0;
    for (const std::string& order_id : due) {
      // A row with a decision still on its way to disk is older than the payment:
      // that commit re-arms the timer with the row's new due time.
      if (uncommitted_.count(order_id)) continue;
      ++ticked;
      Apply(order_id, domain::Tick{}, "tick");
    }
    if (ticked > 0 && batch_.commits.size() == before) {
      // Due rows whose decision changed nothing: never spin on them; look again
      // in a second (a fixed point, so later commits do not push it away).
      quiet_until_ = Now() + std::chrono::seconds(1);
      Log(Level::kWarn, "engine.tick_without_change", {{"payments", std::to_string(ticked)}});
    }
    if (batch_.commits.size() != before) {
      ScheduleFlush();
    } else if (ticked > 0 || due.empty()) {
      ArmTimer();
    }  // else: every due payment has a commit on its way, which re-arms the timer
  }

  // ---- the outbox relay -------------------------------------------------------------

  void WakeRelay() {
    if (relay_posted_ || stopped_) return;
    relay_posted_ = true;
    asio::post(ex_, [this] {
      relay_posted_ = false;
      RelayRound();
    });
  }

  void RelayRound() {
    if (stopped_ || fatal_) return;
    if (relay_more_ && relay_pending_.size() < kRelayLoad / 2) {
      std::vector<store::OutboxRow> rows;
      try {
        rows = store_->UnsentOutbox(kRelayLoad, relay_cursor_);
      } catch (const std::exception& e) {
        StoreBroken(e.what());
        return;
      }
      relay_more_ = rows.size() == kRelayLoad;
      for (auto& row : rows) {
        relay_cursor_ = std::max(relay_cursor_, row.seq);
        if (!relay_seqs_.insert(row.seq).second) continue;
        relay_pending_.push_back(RelayRow{std::move(row), false});
      }
    }
    if (relay_pending_.empty()) return;
    if (!publisher_ || !publisher_->Status().connected) {
      RetryRelayLater();
      return;
    }
    // Per order one publish at a time, in seq order: a consumer sees an order's
    // events in sequence even across connection losses and retries.
    for (auto it = relay_pending_.begin();
         it != relay_pending_.end() && relay_in_flight_ < kRelayWindow;) {
      const std::string& order_id = it->row.event.order_id;
      if (!relay_busy_orders_.insert(order_id).second) {
        ++it;
        continue;
      }
      ++relay_in_flight_;
      auto row = std::make_shared<RelayRow>(std::move(*it));
      it = relay_pending_.erase(it);
      publisher_->PublishPaymentEvent(row->row.event, [this, row](bus::PublishResult res) {
        HandOver(confirms_, Confirm{std::move(*row), std::move(res)}, [this] { DrainConfirms(); });
      });
    }
    if (relay_more_ && relay_pending_.size() < kRelayLoad / 2) WakeRelay();
  }

  // Work from the bus threads: queued under a lock, and the engine thread is woken
  // once per burst rather than once per message (each wake-up is a syscall).
  template <typename T, typename F>
  void HandOver(Mailbox<T>& box, T item, F drain) {
    bool wake;
    {
      std::lock_guard lock(box.mu);
      wake = box.items.empty();
      box.items.push_back(std::move(item));
    }
    if (wake) asio::post(ex_, std::move(drain));
  }

  template <typename T>
  std::vector<T> Take(Mailbox<T>& box) {
    std::vector<T> items;
    std::lock_guard lock(box.mu);
    items.swap(box.items);
    return items;
  }

  void DrainIntake() {
    for (auto& d : Take(intake_)) OnDelivery(std::move(d));
  }

  void DrainConfirms() {
    for (auto& c : Take(confirms_)) OnPublished(std::move(c.row), std::move(c.result));
  }

  void OnPublished(RelayRow row, bus::PublishResult res) {
    --relay_in_flight_;
    relay_busy_orders_.erase(row.row.event.order_id);
    metrics_
        .counter("payorch_events_published_total", "Payment events published, by result.",
                 {{"result", bus::PublishStatusName(res.status)}})
        .Inc();
    if (res.Ok()) {
      relay_backoff_ = std::chrono::milliseconds(0);
      relay_seqs_.erase(row.row.seq);
      Log(Level::kDebug, "payment_event.published",
          {{"order_id", row.row.event.order_id},
           {"event_id", row.row.event.event_id},
           {"kind", domain::EventKindName(row.row.event.kind)}});
      if (!row.republish) {
        sent_to_mark_.push_back(row.row.seq);
        ScheduleMark();
      }
      WakeRelay();
      return;
    }
    Log(Level::kWarn, "payment_event.publish_failed",
        {{"order_id", row.row.event.order_id},
         {"event_id", row.row.event.event_id},
         {"status", bus::PublishStatusName(res.status)},
         {"detail", res.detail}});
    // Back to the front: the order's later events are behind it in the list.
    relay_pending_.push_front(std::move(row));
    RetryRelayLater();
  }

  void RetryRelayLater() {
    if (relay_timer_armed_ || stopped_) return;
    relay_backoff_ = std::clamp(relay_backoff_ * 2, std::chrono::milliseconds(100),
                                std::chrono::milliseconds(5000));
    relay_timer_armed_ = true;
    relay_timer_.expires_after(relay_backoff_);
    relay_timer_.async_wait([this](boost::system::error_code ec) {
      relay_timer_armed_ = false;
      if (!ec) WakeRelay();
    });
  }

  // Confirms are marked with the next group commit, or after a few milliseconds
  // when no decision comes along (a lost mark only means one more publish).
  void ScheduleMark() {
    if (!batch_.commits.empty() || mark_timer_armed_) return;
    mark_timer_armed_ = true;
    mark_timer_.expires_after(std::chrono::milliseconds(5));
    mark_timer_.async_wait([this](boost::system::error_code ec) {
      mark_timer_armed_ = false;
      if (!ec) Flush();
    });
  }

  // ---- status, metrics, checkpoints ------------------------------------------------

  void Consumed(const char* kind, const char* result) {
    metrics_
        .counter("payorch_events_consumed_total", "Order events consumed, by kind and result.",
                 {{"kind", kind}, {"result", result}})
        .Inc();
  }

  void RegisterMetrics() {
    metrics_.on_collect([this](http::Registry& m) {
      if (consumer_) {
        auto st = consumer_->GetStats();
        auto& c = m.counter("payorch_dead_lettered_total",
                            "Messages moved to the dead-letter queue (undecodable).");
        if (st.dead_lettered > c.value()) c.Inc(static_cast<double>(st.dead_lettered) - c.value());
      }
      m.gauge("payorch_payex_calls_in_flight", "PayEx calls in flight.")
          .Set(static_cast<double>(calls_in_flight_));
      m.gauge("payorch_payex_calls_queued", "PayEx calls waiting for a slot or the rate limit.")
          .Set(static_cast<double>(call_queue_.size()));
      m.gauge("payorch_payments_cached", "Payments held in memory.")
          .Set(static_cast<double>(cache_.size()));
      if (fatal_) return;
      try {
        store::PaymentGauges g = store_->Gauges();
        for (int i = 0; i <= static_cast<int>(domain::Phase::kAborted); ++i) {
          const char* name = domain::PhaseName(static_cast<domain::Phase>(i));
          int64_t n = 0;
          for (const auto& [phase, count] : g.by_phase)
            if (phase == name) n = count;
          m.gauge("payorch_payments", "Payments by state.", {{"state", name}})
              .Set(static_cast<double>(n));
        }
        m.gauge("payorch_outbox_backlog", "Payment events committed and not yet confirmed.")
            .Set(static_cast<double>(g.outbox_unsent));
        double age = 0;
        if (g.oldest_doubt)
          age = std::max<double>(0, std::chrono::duration<double>(Now() - *g.oldest_doubt).count());
        m.gauge("payorch_oldest_in_doubt_seconds",
                "Age of the oldest unresolved in-doubt operation (0: none).")
            .Set(age);
      } catch (const std::exception& e) {
        Log(Level::kWarn, "metrics.store_failed", {{"error", e.what()}});
      }
    });
  }

  // Copies the WAL into the database file off the engine thread, so a commit never
  // waits for a checkpoint (store_bench measured this as the faster path).
  void StartCheckpointer() {
    checkpoint_stop_ = false;
    checkpoint_thread_ = std::thread([this] {
      std::unique_lock lock(checkpoint_mu_);
      while (!checkpoint_stop_) {
        checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(250));
        if (checkpoint_stop_) break;
        lock.unlock();
        store::WriteResult r = checkpoint_store_->Checkpoint();
        if (!r.ok) Log(Level::kWarn, "store.checkpoint_failed", {{"error", r.message}});
        lock.lock();
      }
    });
  }

  void StopCheckpointer() {
    if (!checkpoint_thread_.joinable()) return;
    {
      std::lock_guard lock(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpoint_thread_.join();
  }

  asio::any_io_executor ex_;
  const app::Config& config_;
  http::Registry& metrics_;
  std::optional<store::Store> store_;  // the engine thread's reads
  std::optional<store::Store> writer_store_;
  std::optional<store::Store> checkpoint_store_;
  std::thread writer_thread_;
  std::mutex writer_mu_;
  std::condition_variable writer_cv_;
  std::deque<std::shared_ptr<WriterJob>> writer_queue_;
  bool writer_stop_ = false;
  bool writer_failed_ = false;  // writer thread only
  size_t batches_in_flight_ = 0;
  uint64_t last_job_ = 0;
  std::unique_ptr<payex::AsioClient> client_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Publisher> publisher_;
  std::function<void()> on_stopped_;

  Mailbox<bus::Delivery> intake_;
  Mailbox<Confirm> confirms_;
  std::unordered_map<std::string, domain::Payment> cache_;
  Batch batch_;
  // Order events decided but not yet committed -> the writer job that will commit them.
  std::unordered_map<std::string, uint64_t> pending_inbox_;
  bool flush_posted_ = false;

  std::list<domain::PayexCall> call_queue_;
  size_t calls_in_flight_ = 0;
  double tokens_ = 1;
  SteadyClock::time_point tokens_at_ = SteadyClock::now();
  asio::steady_timer timer_;
  std::optional<Time> timer_at_;
  Time quiet_until_{};  // after a tick that changed nothing: no tick before this
  // Orders with a decision not yet committed -> the writer job that will commit it.
  std::unordered_map<std::string, uint64_t> uncommitted_;
  asio::steady_timer rate_timer_;
  bool rate_timer_armed_ = false;

  std::list<RelayRow> relay_pending_;
  std::unordered_set<int64_t> relay_seqs_;  // pending or in flight
  std::unordered_set<std::string> relay_busy_orders_;
  size_t relay_in_flight_ = 0;
  int64_t relay_cursor_ = 0;
  bool relay_more_ = true;
  bool relay_posted_ = false;
  asio::steady_timer relay_timer_;
  bool relay_timer_armed_ = false;
  std::chrono::milliseconds relay_backoff_{0};
  std::vector<int64_t> sent_to_mark_;
  asio::steady_timer mark_timer_;
  bool mark_timer_armed_ = false;

  bool draining_ = false;
  bool stopped_ = false;
  bool fatal_ = false;
  std::string fatal_reason_;
  SteadyClock::time_point drain_deadline_;
  asio::steady_timer drain_timer_;
  asio::steady_timer gather_timer_;
  bool gather_timer_armed_ = false;

  std::thread checkpoint_thread_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_stop_ = false;
};

Engine::Engine(asio::any_io_executor executor, const app::Config& config,
               http::Registry& metrics)
    : impl_(std::make_unique<Impl>(executor, config, metrics)) {}
Engine::~Engine() = default;
void Engine::Start(std::function<void()> on_stopped) { impl_->Start(std::move(on_stopped)); }
void Engine::Drain() { impl_->Drain(); }
HintOutcome Engine::OnCallback(const std::string& order_id) {
  return impl_->OnCallback(order_id, "callback");
}
HintOutcome Engine::Resolve(const std::string& order_id) {
  return impl_->OnCallback(order_id, "resolve");
}
RepublishOutcome Engine::Republish(const std::string& order_id) {
  return impl_->Republish(order_id);
}
EngineStatus Engine::Status() const { return impl_->Status(); }
bool Engine::Fatal() const { return impl_->fatal(); }

}  // namespace payorch::engine
