#include "world.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "engine/engine.hpp"
#include "engine/log.hpp"
#include "fake_bus.hpp"
#include "fake_payex.hpp"
#include "metrics/registry.hpp"
#include "sim_loop.hpp"
#include "store/store.hpp"

namespace payorch::sim {
namespace {

using domain::OrderEvent;
constexpr int64_t kStart = 1'800'000'000'000;  // ms since the epoch: the world's t=0

domain::Policy SimPolicy() {
  domain::Policy p;
  p.confirmation_timeout = 60s;
  p.msisdn_timeout = 120s;
  p.first_poll = 2s;
  p.poll_max = 10s;
  p.slow_poll = 30s;
  p.backoff_base = 500ms;
  p.backoff_cap = 10s;
  p.call_watchdog = 10s;     // the fake PayEx's requests time out after 4 s
  p.transit_horizon = 30s;   // late effects land within 20 s, reads lag 4 s at most
  return p;
}

// payorchd as one process: its store connection, its ports, its engine.
struct Process {
  Process(Loop& loop, const std::string& path, const engine::Options& options,
          FakeBroker& broker, FakePayex& payex, std::mt19937_64& rng, double stall_rate,
          CrashHook crash)
      : store(store::Store::Open(path, StoreOptions())),
        clock(loop),
        source(loop, broker),
        publisher(loop, broker),
        executor(loop, payex),
        writer(loop, store, rng, stall_rate, crash),
        engine(options, engine::Ports{source, publisher, executor, clock, writer}, store,
               registry) {
    executor.set_crash_hook(std::move(crash));
  }

  static store::Options StoreOptions() {
    store::Options o;
    o.quick_check = false;
    o.cache_kib = 1024;
    return o;
  }

  store::Store store;
  SimClock clock;
  SimSource source;
  SimPublisher publisher;
  SimPayexPort executor;
  SimWriter writer;
  metrics::Registry registry;
  engine::Engine engine;
  bool stopped = false;
};

class World {
 public:
  World(uint64_t seed, Hostility hostility, bool trace)
      : seed_(seed),
        rng_(seed * 0x9E3779B97F4A7C15ull + 1),
        loop_(domain::FromMillis(kStart)),
        trace_(trace),
        model_options_(DrawModel(rng_)),
        broker_(loop_, rng_, BusFaults{}),
        payex_(loop_, rng_, model_options_, PayexFaults{}) {
    path_ = (std::filesystem::path("/dev/shm") /
             ("payorch-sim-" + std::to_string(::getpid()) + "-" + std::to_string(seed) + ".db"))
                .string();
    RemoveStore();
    DrawHostility(hostility);
    DrawOptions();
  }

  ~World() { RemoveStore(); }

  WorldReport Run() {
    engine::SetLogSink(trace_ ? engine::Level::kDebug : engine::Level::kWarn,
                       [this](engine::Level, std::string_view line) { Line(line); });
    Note("world " + std::to_string(seed_) + ": " + describe_);
    MakeOrders();
    StartProcess();
    ScheduleCrashes();
    // The hostile part of the world, then quiet: faults off, the process up.
    loop_.RunUntil(At(kHostileFor));
    Quiet();
    loop_.RunUntil(At(kSettleUntil));
    Check();
    report_.events_run = loop_.executed();
    report_.late_effects = payex_.late_effects();
    report_.calls_expired = seen_["event=payex.call_expired"];
    report_.call_watchdogs = seen_["event=payex.call_watchdog"];
    report_.calls_dropped = seen_["event=payex.call_dropped"];
    report_.parked = seen_["event=payment_event.parked"];
    if (process_) Exit();
    engine::SetLogSink(engine::Level::kWarn, nullptr);
    return report_;
  }

 private:
  static constexpr Duration kPublishWithin = 90s;
  static constexpr Duration kHostileFor = 4min;
  static constexpr Duration kSettleUntil = 45min;

  Time At(Duration d) const { return domain::FromMillis(kStart) + d; }
  double Roll() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }

  void Line(std::string_view line) {
    for (auto& [needle, n] : seen_)
      if (line.find(needle) != std::string_view::npos) ++n;
    std::string s = "t=" + std::to_string((domain::ToMillis(loop_.now()) - kStart)) + "ms " +
                    std::string(line);
    if (trace_) std::printf("%s\n", s.c_str());
    tail_.push_back(std::move(s));
    if (tail_.size() > 60) tail_.pop_front();
  }
  void Note(const std::string& what) {
    Line("sim: " + what);
  }

  void Fail(const std::string& what) {
    if (!report_.ok) return;
    report_.ok = false;
    report_.failure = what;
  }

  // What this world's PayEx does where its documentation is silent.
  static testing::ModelOptions DrawModel(std::mt19937_64& rng) {
    auto roll = [&] { return std::uniform_real_distribution<double>(0, 1)(rng); };
    testing::ModelOptions mo;
    mo.duplicates = static_cast<testing::DuplicateMode>(rng() % 3);
    mo.initialized_rate = roll() < 0.3 ? 0.1 : 0.0;
    mo.tx_failed_rate = roll() < 0.3 ? 0.1 : 0.0;
    mo.instant_approve_rate = roll() < 0.2 ? 0.5 : 0.0;
    mo.auth_initialized_rate = roll() < 0.2 ? 0.2 : 0.0;
    mo.abort_while_awaiting = roll() < 0.8;
    mo.pending_while_awaiting = roll() < 0.3;
    return mo;
  }

  void DrawHostility(Hostility h) {
    crashes_wanted_ = h.crashes ? static_cast<int>(rng_() % 4) : 0;
    // Crashes at exact steps: after a commit before its acks, right after a PayEx
    // call left, right after an ack, after the broker took an event unconfirmed.
    step_crashes_left_ = h.crashes ? static_cast<int>(rng_() % 3) : 0;
    drains_wanted_ = h.crashes && Roll() < 0.3 ? 1 : 0;
    if (h.faults && Roll() < 0.85) {
      const double level = Roll() < 0.3 ? 2.0 : 1.0;
      bus_faults_.duplicate = 0.08 * level;
      bus_faults_.drop_consumer = 0.02 * level;
      bus_faults_.nack = 0.03 * level;
      bus_faults_.confirm_lost = 0.02 * level;
      bus_faults_.refuse = 0.01 * level;
      payex_faults_.transient = 0.05 * level;
      payex_faults_.doubt_before = 0.04 * level;
      payex_faults_.doubt_after = 0.05 * level;
      payex_faults_.late = 0.06 * level;
      payex_faults_.hang = 0.01 * level;
      payex_faults_.callback_lost = 0.3;
      payex_faults_.callback_duplicate = 0.2;
      payex_faults_.initialized_settles = 0.1;
      stall_rate_ = 0.01 * level;
    }
    broker_.set_faults(bus_faults_);
    payex_.set_faults(payex_faults_);
    broker_.set_crash_hook([this](const char* where) { MaybeCrashAt(where); });
    const char* dup[] = {"replay", "reject", "allow"};
    describe_ = std::string("duplicates=") + dup[static_cast<int>(model_options_.duplicates)] +
                " crashes=" + std::to_string(crashes_wanted_) +
                " drains=" + std::to_string(drains_wanted_) +
                " payex_late=" + std::to_string(payex_faults_.late);
  }

  void DrawOptions() {
    options_.policy = SimPolicy();
    options_.max_batch = static_cast<size_t>(Between(1, 64));
    options_.commit_delay = Roll() < 0.3 ? 5ms : 0ms;
    options_.max_concurrent_calls = static_cast<size_t>(Between(1, 16));
    // Sometimes a tight rate limit: calls queue, and some wait past their send_by.
    options_.payex_rate_limit = Roll() < 0.2 ? 2 : 0;
    options_.cache_max = Roll() < 0.3 ? 2 : 1000;
    // Sometimes the relay reads the outbox a row or a few at a time.
    options_.outbox_page = Roll() < 0.3 ? static_cast<size_t>(Between(1, 3)) : 2048;
    options_.drain_wait = 15s;
  }

  // ---- order services ----------------------------------------------------------

  OrderEvent Ev(const std::string& order, int n, domain::OrderEventKind kind) {
    OrderEvent ev;
    ev.order_id = order;
    ev.event_id = order + "-e" + std::to_string(n);
    ev.occurred_at = loop_.now();
    ev.kind = std::move(kind);
    return ev;
  }

  void MakeOrders() {
    burst_ = Roll() < 0.3;
    const int orders = static_cast<int>(Between(1, burst_ ? 12 : 6));
    report_.orders = static_cast<uint64_t>(orders);
    for (int k = 0; k < orders; ++k) {
      const std::string order = "o" + std::to_string(seed_) + "-" + std::to_string(k);
      std::vector<OrderEvent> script;
      int n = 0;
      const int64_t total = Between(100, 10'000);
      domain::PurchaseRequested pr;
      pr.amount = total;
      pr.vat_amount = total / 5;
      pr.currency = "NOK";
      pr.description = "Order " + std::to_string(k);
      const bool msisdn_now = Roll() < 0.7;
      if (msisdn_now) pr.msisdn = "+4798765432";
      script.push_back(Ev(order, ++n, pr));
      if (!msisdn_now && Roll() < 0.8)
        script.push_back(Ev(order, ++n, domain::PayerMsisdnProvided{"98765432"}));
      const int shipments = static_cast<int>(Between(0, 3));
      int64_t left = total;
      for (int i = 0; i < shipments; ++i) {
        int64_t a = Roll() < 0.1 ? left + Between(1, 500) : Between(1, std::max<int64_t>(left, 1));
        if (a <= left) left -= a;
        script.push_back(
            Ev(order, ++n, domain::OrderShipped{"s" + std::to_string(i), a, a / 5, ""}));
      }
      if (Roll() < 0.35) script.push_back(Ev(order, ++n, domain::OrderCancelled{"changed mind"}));
      const int refunds = static_cast<int>(Between(0, 2));
      for (int i = 0; i < refunds; ++i)
        script.push_back(Ev(order, ++n, domain::RefundRequested{"r" + std::to_string(i),
                                                                 Between(1, total), 0, ""}));
      // Published in order, at random times within the first minute and a half;
      // in some worlds every order starts at the same moment (a burst).
      std::vector<int64_t> times;
      for (size_t i = 0; i < script.size(); ++i)
        times.push_back(burst_ && i == 0 ? 1000 : Between(0, kPublishWithin.count()));
      std::sort(times.begin(), times.end());
      for (size_t i = 0; i < script.size(); ++i) {
        OrderEvent ev = script[i];
        published_.push_back(ev);
        loop_.At(At(Duration(times[i])), [this, ev]() mutable {
          ev.occurred_at = loop_.now();
          broker_.PublishOrderEvent(ev);
        });
      }
      report_.order_events += script.size();
    }
  }

  // ---- payorchd's life ----------------------------------------------------------

  void StartProcess() {
    if (process_) return;
    Note("payorchd starts (epoch " + std::to_string(loop_.epoch()) + ")");
    try {
      process_ = std::make_unique<Process>(loop_, path_, options_, broker_, payex_, rng_,
                                           quiet_ ? 0.0 : stall_rate_,
                                           [this](const char* where) { MaybeCrashAt(where); });
    } catch (const std::exception& e) {
      Fail(std::string("the store does not open after a restart: ") + e.what());
      return;
    }
    Process* p = process_.get();
    payex_.set_callback(loop_.Guard(std::function<void(const std::string&)>(
        [p](const std::string& order_id) { p->engine.OnCallback(order_id); })));
    const uint64_t epoch = loop_.epoch();
    p->engine.Start([this, epoch] {
      // Stopped by a drain (or a broken store): the process exits.
      loop_.After(0ms, [this, epoch] {
        if (loop_.epoch() != epoch || !process_) return;
        if (process_->engine.Fatal()) Fail("the engine stopped on a store failure");
        Exit();
        loop_.After(Duration(Between(100, 3000)), [this] { StartProcess(); });
      });
    });
  }

  // SIGKILL: nothing of the process runs again; the broker takes back its
  // unacked deliveries, its connections close, PayEx keeps what reached it.
  void Exit() {
    payex_.set_callback(nullptr);
    process_.reset();  // whatever its teardown schedules still belongs to it...
    loop_.Crash();     // ...and dies with it
  }

  // A SIGKILL at an exact step, now and then, before anything else runs.
  void MaybeCrashAt(const char* where) {
    if (quiet_ || step_crashes_left_ <= 0 || !process_ || Roll() >= 0.03) return;
    --step_crashes_left_;
    const uint64_t epoch = loop_.epoch();
    loop_.Urgent([this, where, epoch] {
      if (!process_ || loop_.epoch() != epoch) return;
      ++report_.crashes;
      Note(std::string("SIGKILL ") + where);
      Exit();
      loop_.After(Duration(Between(50, 5000)), [this] { StartProcess(); });
    });
  }

  void ScheduleCrashes() {
    for (int i = 0; i < crashes_wanted_; ++i) {
      const Time t = At(Duration(Between(1, kHostileFor.count() - 1)));
      loop_.At(t, [this] {
        if (!process_ || quiet_) return;
        ++report_.crashes;
        Note("SIGKILL");
        Exit();
        loop_.After(Duration(Between(50, 5000)), [this] { StartProcess(); });
      });
    }
    for (int i = 0; i < drains_wanted_; ++i) {
      loop_.At(At(Duration(Between(1, kHostileFor.count() - 1))), [this] {
        if (!process_ || quiet_) return;
        ++report_.drains;
        Note("SIGTERM: drain");
        process_->engine.Drain();
      });
    }
  }

  void Quiet() {
    quiet_ = true;
    Note("faults stop");
    broker_.set_faults(BusFaults{});
    PayexFaults calm;
    calm.read_lag_max = payex_faults_.read_lag_max;
    payex_.set_faults(calm);
    if (!process_) StartProcess();
    // The operator's fix: what the bus refused for good goes out again (a restart
    // would also retry it). The order's later events follow it in sequence.
    for (const engine::ParkedEvent& p : process_->engine.Parked()) {
      Note("republish parked order " + p.order_id);
      process_->engine.Republish(p.order_id);
    }
  }

  // ---- the invariants -------------------------------------------------------------

  // "" when /metrics' payments by state, payments in doubt and outbox backlog are
  // what the store holds, else what differs.
  std::string GaugesAgainstStore() {
    const std::string text = "\n" + process_->registry.Render();
    auto metric = [&](const std::string& series) -> double {
      const size_t at = text.find("\n" + series + " ");
      if (at == std::string::npos) return -1;
      return std::stod(text.substr(at + series.size() + 2));
    };
    store::PaymentFilter all;
    all.limit = 1'000'000;
    std::map<std::string, int64_t> by_phase;
    int64_t in_doubt = 0;
    for (const store::PaymentSummary& p : process_->store.ListPayments(all)) {
      ++by_phase[p.phase];
      if (p.doubt_since) ++in_doubt;
    }
    for (int i = 0; i <= static_cast<int>(domain::Phase::kAborted); ++i) {
      const std::string phase = domain::PhaseName(static_cast<domain::Phase>(i));
      const double shown = metric("payorch_payments{state=\"" + phase + "\"}");
      if (shown != static_cast<double>(by_phase[phase]))
        return "gauge payorch_payments{state=" + phase + "} is " + std::to_string(shown) +
               ", the store has " + std::to_string(by_phase[phase]);
    }
    if (metric("payorch_payments_in_doubt") != static_cast<double>(in_doubt))
      return "gauge payorch_payments_in_doubt is " +
             std::to_string(metric("payorch_payments_in_doubt")) + ", the store has " +
             std::to_string(in_doubt);
    const int64_t unsent = process_->store.RowCounts(loop_.now()).outbox_unsent;
    if (metric("payorch_outbox_backlog") != static_cast<double>(unsent))
      return "gauge payorch_outbox_backlog is " + std::to_string(metric("payorch_outbox_backlog")) +
             ", the store has " + std::to_string(unsent) + " unsent rows";
    return "";
  }

  void Check() {
    if (!report_.ok) return;
    if (!process_) return Fail("payorchd is not running at the end");
    if (process_->engine.Fatal()) return Fail("the engine is fatal at the end");
    if (broker_.queued() != 0)
      return Fail(std::to_string(broker_.queued()) + " order events never acked");
    // Settled means idle: no call, commit or publish is held anywhere (a leaked
    // slot would still let payments finish, slowly, through the watchdog).
    const engine::EngineCounts c = process_->engine.Counts();
    if (!process_->engine.Parked().empty())
      return Fail("order " + process_->engine.Parked().front().order_id +
                  " still has a parked event after its republish");
    if (c.calls_in_flight || c.calls_queued || c.commits_in_flight || c.publishes_in_flight)
      return Fail("the engine is not idle at the end: " + std::to_string(c.calls_in_flight) +
                  " calls in flight, " + std::to_string(c.calls_queued) + " queued, " +
                  std::to_string(c.commits_in_flight) + " commits, " +
                  std::to_string(c.publishes_in_flight) + " publishes");

    // The gauges the engine keeps as it decides (never recounted) equal the store.
    if (std::string why = GaugesAgainstStore(); !why.empty()) return Fail(why);

    // What consumers saw, deduplicated by event_id (the contract's promise).
    std::map<std::string, domain::PaymentEvent> by_id;
    for (const auto& ev : broker_.payment_events()) {
      auto [it, fresh] = by_id.emplace(ev.event_id, ev);
      if (!fresh && !(it->second == ev))
        return Fail("event " + ev.event_id + " published twice with different contents");
    }
    report_.payment_events = by_id.size();
    std::map<std::string, std::vector<const domain::PaymentEvent*>> answers;
    std::map<std::string, std::set<uint64_t>> sequences;
    for (const auto& [id, ev] : by_id) {
      answers[ev.caused_by_event_id].push_back(&ev);
      if (!sequences[ev.order_id].insert(ev.sequence).second)
        return Fail("order " + ev.order_id + ": two events with sequence " +
                    std::to_string(ev.sequence));
      std::string outcome = domain::EventKindName(ev.kind);
      if (domain::IsFailureKind(ev.kind)) outcome += "/" + ev.failure.code;
      report_.outcomes.push_back(outcome);
    }
    std::set<std::string> order_event_ids;
    for (const OrderEvent& ev : published_) order_event_ids.insert(ev.event_id);
    for (const std::string& id : order_event_ids) {
      const size_t n = answers.count(id) ? answers[id].size() : 0;
      if (n != 1) {
        std::string kinds;
        if (n) for (auto* e : answers[id]) kinds += std::string(" ") + domain::EventKindName(e->kind);
        return Fail("order event " + id + " answered " + std::to_string(n) + " times:" + kinds);
      }
    }
    for (const auto& [cause, list] : answers)
      if (!order_event_ids.count(cause))
        return Fail("an answer to " + cause + ", which nobody sent");
    for (const auto& [order, seqs] : sequences)
      if (*seqs.rbegin() != seqs.size())
        return Fail("order " + order + ": sequence gap (" + std::to_string(seqs.size()) +
                    " events, last " + std::to_string(*seqs.rbegin()) + ")");

    if (!payex_.violations().empty())
      return Fail("the in-transit rule was broken: " + payex_.violations().front());
    // Consumers see an order's events in sequence: the first copy of n + 1 comes
    // after the first copy of n.
    {
      std::map<std::string, uint64_t> next;
      std::set<std::string> seen_ids;
      for (const auto& ev : broker_.payment_events()) {
        if (!seen_ids.insert(ev.event_id).second) continue;
        uint64_t& want = next[ev.order_id];
        if (ev.sequence != ++want)
          return Fail("order " + ev.order_id + ": event " + std::to_string(ev.sequence) +
                      " published before event " + std::to_string(want));
      }
    }
    const testing::PayexModel& m = payex_.model();
    for (const auto& [ref, n] : m.EffectsByReference())
      if (n != 1) return Fail("PayEx applied payeeReference " + ref + " " + std::to_string(n) + " times");
    if (m.RuleViolations() != 0)
      return Fail("PayEx money rules broken " + std::to_string(m.RuleViolations()) + " times");

    std::set<std::string> orders;
    for (const OrderEvent& ev : published_) orders.insert(ev.order_id);
    for (const std::string& order : orders) {
      if (m.AuthorizationsAsked(order) > 1)
        return Fail("order " + order + ": the payer's phone was asked " +
                    std::to_string(m.AuthorizationsAsked(order)) + " times");
      if (m.PaymentsWithAuthorization(order) > 1)
        return Fail("order " + order + ": more than one PayEx payment was authorized");
      std::optional<domain::Payment> p;
      try {
        p = process_->store.LoadPayment(order);
      } catch (const std::exception& e) {
        return Fail(std::string("store: ") + e.what());
      }
      const testing::ModelPayment* paid = m.AuthorizedPayment(order);
      const domain::Balance b = p ? p->balance : domain::Balance{};
      if (p) {
        if (std::string bad = domain::CheckInvariants(*p); !bad.empty())
          return Fail("order " + order + ": " + bad);
      }
      if (!paid) {
        if (b.authorized != 0) return Fail("order " + order + ": authorized without PayEx");
        continue;
      }
      // An approval that landed late is never money reserved that payorch does
      // not know of.
      if (!p || p->phase != domain::Phase::kAuthorized)
        return Fail("order " + order + ": PayEx reserved " + std::to_string(paid->Authorized()) +
                    " that payorch does not know of (phase " +
                    (p ? domain::PhaseName(p->phase) : "none") + ")");
      const domain::Balance want{paid->Authorized(), paid->Sum(domain::TxType::kCapture),
                                 paid->Sum(domain::TxType::kCancellation),
                                 paid->Sum(domain::TxType::kReversal)};
      if (!(b == want))
        return Fail("order " + order + ": payorch's ledger (" + Money(b) + ") is not PayEx's (" +
                    Money(want) + ")");
      if (p->payment_id != paid->id) return Fail("order " + order + ": another PayEx payment");
    }
    // Settled: nothing open; and anything unfinished would have a next wake-up.
    for (const std::string& order : orders) {
      auto p = process_->store.LoadPayment(order);
      if (!p) continue;
      bool open = p->in_flight.call_id != 0;
      for (const auto& op : p->ops)
        if (op.status != domain::OpStatus::kDone && op.status != domain::OpStatus::kFailed)
          open = true;
      const bool waiting = p->phase == domain::Phase::kCreating ||
                           p->phase == domain::Phase::kAuthorizing ||
                           p->phase == domain::Phase::kAwaitingPayer ||
                           p->phase == domain::Phase::kAwaitingMsisdn ||
                           p->phase == domain::Phase::kAborting;
      if ((open || waiting) && p->due_at == Time{})
        return Fail("order " + order + ": unfinished (" + domain::PhaseName(p->phase) +
                    ") with no next wake-up");
      if (open || waiting)
        return Fail("order " + order + ": not settled after the world calmed down (" +
                    domain::PhaseName(p->phase) + ")");
    }
  }

  static std::string Money(const domain::Balance& b) {
    return "authorized " + std::to_string(b.authorized) + " captured " +
           std::to_string(b.captured) + " cancelled " + std::to_string(b.cancelled) +
           " reversed " + std::to_string(b.reversed);
  }

  void RemoveStore() {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      std::filesystem::remove(path_ + suffix, ec);
  }

  uint64_t seed_;
  std::mt19937_64 rng_;
  Loop loop_;
  bool trace_;
  testing::ModelOptions model_options_;
  FakeBroker broker_;
  FakePayex payex_;
  BusFaults bus_faults_;
  PayexFaults payex_faults_;
  engine::Options options_;
  std::string path_;
  std::string describe_;
  int crashes_wanted_ = 0;
  int drains_wanted_ = 0;
  int step_crashes_left_ = 0;
  double stall_rate_ = 0;
  std::map<std::string, uint64_t> seen_ = {{"event=payex.call_expired", 0},
                                           {"event=payex.call_watchdog", 0},
                                           {"event=payex.call_dropped", 0},
                                           {"event=payment_event.parked", 0}};
  bool quiet_ = false;
  bool burst_ = false;
  std::unique_ptr<Process> process_;
  std::vector<OrderEvent> published_;
  std::deque<std::string> tail_;
  WorldReport report_;

 public:
  std::vector<std::string> Tail() const { return {tail_.begin(), tail_.end()}; }
};

}  // namespace

WorldReport RunWorld(uint64_t seed, Hostility hostility, bool trace) {
  World world(seed, hostility, trace);
  WorldReport r = world.Run();
  if (!r.ok) r.trace_tail = world.Tail();
  return r;
}

}  // namespace payorch::sim
