#include "engine/engine.hpp"

#include <algorithm>
#include <chrono>

#include "domain/decide.hpp"
#include "engine/call_executor.hpp"
#include "engine/context.hpp"
#include "engine/decider.hpp"
#include "engine/due_timer.hpp"
#include "engine/group_commit.hpp"
#include "engine/intake.hpp"
#include "engine/log.hpp"
#include "engine/outbox_relay.hpp"
#include "metrics/registry.hpp"

namespace payorch::engine {

void Context::StoreBroken(const std::string& why) {
  if (fatal) return;
  fatal = true;
  fatal_reason = why;
  Log(Level::kError, "engine.fatal",
      {{"error", why}, {"action", "stopping; restart on the consistent file"}});
  if (on_fatal) ports.clock.Post(on_fatal);
}

class Engine::Impl {
 public:
  Impl(const Options& options, Ports ports, store::Store& store, metrics::Registry& metrics)
      : options_(options),
        ctx_(options_, ports, store, metrics),
        commit_(ctx_, [this](const CommitJob& job, Released r) { OnCommitted(job, std::move(r)); }),
        decider_(ctx_, commit_),
        intake_(ctx_, decider_, commit_),
        calls_(ctx_, decider_,
               [this](const domain::PayexCall& call, const domain::PayexResult& r) {
                 decider_.Apply(call.order_id, r, "payex_result", &r);
                 commit_.Schedule();
               }),
        due_(ctx_, decider_, commit_),
        relay_(ctx_, commit_),
        drain_timer_(ports.clock.MakeTimer()) {
    ctx_.on_fatal = [this] { Stop(); };
    RegisterMetrics();
  }

  ~Impl() {
    if (!ctx_.stopped) {
      ctx_.stopped = true;
      ctx_.ports.source.Stop();
      ctx_.ports.publisher.Stop();
      ctx_.ports.writer.Stop(/*discard=*/true);
    }
  }

  void Start(std::function<void()> on_stopped) {
    on_stopped_ = std::move(on_stopped);
    // Whatever was in flight when the last process ended is in doubt: read PayEx.
    std::vector<std::string> resumed;
    try {
      ctx_.gauges.Load(ctx_.store.Gauges());
      resumed = ctx_.store.PaymentsWithCallsInFlight();
    } catch (const std::exception& e) {
      ctx_.StoreBroken(e.what());
      return;
    }
    for (const std::string& order_id : resumed)
      decider_.Apply(order_id, domain::Resume{}, "resume");
    Log(Level::kInfo, "engine.resumed", {{"calls_in_doubt", std::to_string(resumed.size())}});
    commit_.Flush();
    relay_.Wake(true);
    due_.Arm();
    ctx_.ports.publisher.Start([this] { relay_.Wake(); });
    ctx_.ports.source.Start([this](Delivery d) { intake_.OnDelivery(std::move(d)); });
    Log(Level::kInfo, "engine.started",
        {{"max_batch", std::to_string(options_.max_batch)},
         {"max_concurrent_calls", std::to_string(options_.max_concurrent_calls)}});
  }

  void Drain() {
    if (ctx_.draining || ctx_.stopped) return;
    ctx_.draining = true;
    drain_deadline_ = ctx_.ports.clock.Monotonic() + options_.drain_wait;
    Log(Level::kInfo, "engine.draining",
        {{"decisions_pending", std::to_string(commit_.collected())},
         {"payex_calls_in_flight", std::to_string(calls_.in_flight())},
         {"publishes_in_flight", std::to_string(relay_.in_flight())}});
    due_.Stop();
    commit_.Flush();
    DrainStep();
  }

  void StoreDamaged(const std::string& why) {
    if (!ctx_.stopped) ctx_.StoreBroken(why);
  }

  HintOutcome OnCallback(const std::string& order_id, const char* input_name) {
    domain::Payment* p = decider_.Find(order_id);
    if (!p || p->payment_id.empty()) return HintOutcome::kUnknownPayment;
    decider_.Apply(order_id, domain::CallbackHint{}, input_name, nullptr,
                   /*record=*/std::string_view(input_name) == "resolve");
    commit_.Schedule();
    return HintOutcome::kAccepted;
  }

  std::vector<ParkedEvent> Parked() const { return relay_.Parked(); }

  void Reconcile(const std::string& order_id, std::function<void(ReconcileOutcome)> done) {
    using S = ReconcileOutcome::Status;
    ReconcileOutcome out;
    if (ctx_.draining || ctx_.fatal) {
      out.status = S::kStopping;
      return done(std::move(out));
    }
    const domain::Payment* p = decider_.Find(order_id);
    if (!p) {
      out.status = S::kUnknownOrder;
      return done(std::move(out));
    }
    if (p->payment_id.empty()) {
      out.status = S::kNotCreated;
      out.payment = *p;
      return done(std::move(out));
    }
    domain::PayexCall call;
    call.kind = domain::OpKind::kRead;
    call.order_id = order_id;
    call.payment_id = p->payment_id;
    call.expand = "authorizations,captures,cancellations,reversals";
    // What the record was when the read left: a change before its answer (a call's
    // outcome landing) makes the comparison unsettled, not a mismatch.
    const domain::Payment before = *p;
    ctx_.ports.payex.Execute(
        call, [this, alive = std::weak_ptr<bool>(alive_), order_id, before,
               done = std::move(done)](domain::PayexResult r) mutable {
          if (!alive.lock()) return;
          ReconcileOutcome out;
          if (r.result != domain::ResultClass::kSuccess || !r.snapshot) {
            out.status = S::kPayexError;
            out.error = std::string("PayEx read ") + domain::ResultClassName(r.result) +
                        (r.problem ? ": " + r.problem->title : std::string());
            return done(std::move(out));
          }
          const domain::Payment* now = decider_.Find(order_id);
          out.payment = now ? *now : before;
          out.payex = *r.snapshot;
          out.result = domain::Reconcile(out.payment, out.payex);
          if (!now || now->last_call_id != before.last_call_id || now->ops != before.ops ||
              now->balance != before.balance) {
            out.result.unsettled = true;
            out.result.unsettled_why = "the payment changed while PayEx was read";
            out.result.mismatches.clear();
          }
          done(std::move(out));
        });
  }

  RepublishOutcome Republish(const std::string& order_id) {
    RepublishOutcome out;
    if (!decider_.Find(order_id)) return out;
    out.known = true;
    std::vector<store::OutboxRow> rows;
    try {
      rows = ctx_.store.OutboxFor(order_id);
    } catch (const std::exception& e) {
      ctx_.StoreBroken(e.what());
      return out;
    }
    out.events = relay_.Republish(order_id, std::move(rows));
    // The operator's action belongs in the payment's timeline.
    decider_.Record(order_id, "republish",
                    "operator republished " + std::to_string(out.events) + " events");
    Log(Level::kInfo, "payment.republish",
        {{"order_id", order_id}, {"events", std::to_string(out.events)}});
    commit_.Schedule();
    return out;
  }

  EngineStatus Status() const {
    EngineStatus s;
    s.store_ok = !ctx_.fatal;
    const LinkState in = ctx_.ports.source.State();
    const LinkState out = ctx_.ports.publisher.State();
    s.consumer_connected = in.connected;
    s.publisher_connected = out.connected;
    s.draining = ctx_.draining;
    s.fatal = ctx_.fatal;
    if (ctx_.fatal) s.detail = "store failed: " + ctx_.fatal_reason;
    else if (ctx_.draining) s.detail = "shutting down";
    else if (!in.connected) s.detail = "consumer not connected: " + in.last_error;
    else if (!out.connected) s.detail = "publisher not connected: " + out.last_error;
    return s;
  }

  EngineCounts Counts() const {
    EngineCounts c;
    c.cached = decider_.cached();
    c.calls_queued = calls_.queued();
    c.calls_in_flight = calls_.in_flight();
    c.commits_in_flight = commit_.in_flight();
    c.publishes_in_flight = relay_.in_flight();
    return c;
  }

  bool fatal() const { return ctx_.fatal; }

 private:
  // In commit order: acks, calls, the relay, the timer.
  void OnCommitted(const CommitJob& job, Released r) {
    decider_.Committed(job);
    intake_.Committed(job);
    if (ctx_.stopped) return;
    for (const Ack& a : r.acks) ctx_.ports.source.Ack(a.generation, a.tag);
    calls_.Enqueue(std::move(r.calls));
    if (r.events) relay_.Wake(true);
    if (!job.commits.empty()) due_.Arm();
    decider_.Trim();
  }

  void DrainStep() {
    if (ctx_.stopped) return;
    // Calls committed as in flight but never sent (intake stopped): tell the state
    // machine the truth, "not sent" (transient), so the next start retries them
    // instead of treating them as in doubt.
    for (const domain::PayexCall& call : calls_.TakeUnsent()) {
      domain::PayexResult r;
      r.call_id = call.call_id;
      r.result = domain::ResultClass::kTransient;
      decider_.Apply(call.order_id, r, "payex_result", &r);
    }
    commit_.Flush();
    const bool calls_done = calls_.in_flight() == 0 && commit_.Idle();
    const bool relay_done = relay_.Idle();
    const bool late = ctx_.ports.clock.Monotonic() >= drain_deadline_;
    if ((calls_done && relay_done) || late) {
      if (late)
        Log(Level::kWarn, "engine.drain_timeout",
            {{"payex_calls_in_flight", std::to_string(calls_.in_flight())},
             {"publishes_in_flight", std::to_string(relay_.in_flight())},
             {"note", "left to the next start: calls are read back, events republished"}});
      Stop();
      return;
    }
    drain_timer_->Arm(std::chrono::milliseconds(20), [this] { DrainStep(); });
  }

  // Stops the ports; acks already requested are sent first (the source's Stop).
  void Stop() {
    if (ctx_.stopped) return;
    ctx_.stopped = true;
    ctx_.draining = true;
    due_.Stop();
    calls_.Stop();
    relay_.Stop();
    commit_.Stop();
    drain_timer_->Cancel();
    ctx_.ports.source.Stop();
    ctx_.ports.publisher.Stop();
    ctx_.ports.payex.Close();
    ctx_.ports.writer.Stop(/*discard=*/ctx_.fatal);
    Log(ctx_.fatal ? Level::kError : Level::kInfo, "engine.stopped",
        {{"fatal", ctx_.fatal ? "true" : "false"}});
    if (on_stopped_) {
      auto f = std::move(on_stopped_);
      on_stopped_ = nullptr;
      f();
    }
  }

  void RegisterMetrics() {
    ctx_.metrics.on_collect([this](metrics::Registry& m) {
      m.counter("payorch_dead_lettered_total",
                "Messages moved to the dead-letter queue (undecodable).")
          .RaiseTo(static_cast<double>(ctx_.ports.source.DeadLettered()));
      m.gauge("payorch_payex_calls_in_flight", "PayEx calls in flight.")
          .Set(static_cast<double>(calls_.in_flight()));
      m.gauge("payorch_payex_calls_queued", "PayEx calls waiting for a slot or the rate limit.")
          .Set(static_cast<double>(calls_.queued()));
      m.gauge("payorch_payments_cached", "Payments held in memory.")
          .Set(static_cast<double>(decider_.cached()));
      // Kept as the engine decides: no SQL per scrape (engine/gauges.hpp).
      ctx_.gauges.Export(m, ctx_.Now());
    });
  }

  const Options options_;
  Context ctx_;
  GroupCommit commit_;
  Decider decider_;
  Intake intake_;
  CallExecutor calls_;
  DueTimer due_;
  OutboxRelay relay_;
  std::unique_ptr<Timer> drain_timer_;
  Steady drain_deadline_{};
  std::function<void()> on_stopped_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for PayEx reads' answers
};

Engine::Engine(const Options& options, Ports ports, store::Store& store,
               metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(options, ports, store, metrics)) {}
Engine::~Engine() = default;
void Engine::Start(std::function<void()> on_stopped) { impl_->Start(std::move(on_stopped)); }
void Engine::Drain() { impl_->Drain(); }
void Engine::StoreDamaged(const std::string& why) { impl_->StoreDamaged(why); }
HintOutcome Engine::OnCallback(const std::string& order_id) {
  return impl_->OnCallback(order_id, "callback");
}
HintOutcome Engine::Resolve(const std::string& order_id) {
  return impl_->OnCallback(order_id, "resolve");
}
RepublishOutcome Engine::Republish(const std::string& order_id) {
  return impl_->Republish(order_id);
}

void Engine::Reconcile(const std::string& order_id,
                       std::function<void(ReconcileOutcome)> done) {
  impl_->Reconcile(order_id, std::move(done));
}

std::vector<ParkedEvent> Engine::Parked() const {
  return impl_->Parked();
}
EngineStatus Engine::Status() const { return impl_->Status(); }
EngineCounts Engine::Counts() const { return impl_->Counts(); }
bool Engine::Fatal() const { return impl_->fatal(); }

}  // namespace payorch::engine
