#include "ctl/ctl.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <future>
#include <cmath>
#include <iostream>

#include "ctl/context.hpp"
#include "domain/partition.hpp"

namespace payorch::ctl {
namespace {

constexpr const char* kMainHelp =
    R"(payorchctl: the operator's CLI of payorch, for the dead-letter queue and payments.

Usage: payorchctl [--config FILE] [--set section.key=value]... [-o table|json] COMMAND ...

Dead-letter queue (the broker):
  dlq list                 dead letters: id, reason, routing key, order, event, age, size
  dlq show ID              one dead letter: reason, headers, the body decoded
  dlq replay               publish dead letters back where they came from (recorded)
  dlq purge                delete dead letters
  dlq replays [ID]         the record of replays: who, when, why, which messages
Payments (the store, and payorchd's admin endpoint):
  payment show ORDER       state, amounts, operations, timeline, outbox, next action
  payment list             payments by phase, age or doubt
  payment resolve ORDER    ask payorchd to resolve the payment now (it reads PayEx)
  payment republish ORDER  ask payorchd to publish the payment's events again
  payment parked           payment events the bus refused for good, held for an operator
  payment export           money operations changed in a window, for finance (-o csv)
Money against PayEx (payorchd reads PayEx):
  reconcile                compare payments with PayEx: --since DURATION or --order ID

Options (before or after the command):
  --config FILE            payorchd's configuration (default config/payorch.toml)
  --set section.key=VALUE  override a setting, as payorchd's --set (repeatable)
  -o, --output FORMAT      table (for people, the default), json (one document), or
                           csv (reconcile and payment export)
  -h, --help               this help; after a command, that command's help

payorchctl works while payorchd runs: it reads the store as one more WAL reader,
holds dead letters it works on without acking them (so they are never lost), and
asks payorchd over its admin endpoint (admin.listen_address, admin.port) where a
payment must change. MSISDNs are always masked.
Exit codes: 0 ok, 1 failure (the message says what to do), 2 usage error.
)";

constexpr const char* kDlqHelp = R"(Usage: payorchctl dlq list|show|replay|purge|replays ...

The dead-letter queue (bus.topology.dead_letter_queue) holds order events payorchd
could not read (x-payorch-error: unsupported_content_type, malformed_body,
missing_event_id, invalid_event_id, missing_order_id, invalid_order_id,
missing_kind) and those the broker
dead-lettered (x-death reason: delivery_limit, rejected).

A message's ID is its AMQP message_id (the event_id, by the contract) when it has
one, else "h-" and 12 hex digits of a hash of its body, headers and routing key.
Both stay the same while the message waits. Copies of one message share an ID.

Run 'payorchctl dlq COMMAND --help' for one command.
)";

constexpr const char* kFilterHelp = R"(Filters (all given must match):
  --error CODE             the reason: an x-payorch-error code or an x-death reason
  --routing-key KEY        the original routing key, e.g. order.shipped
  --order ORDER_ID         the order of the event (messages whose body decodes)
  --since DURATION         dead-lettered at most this long ago, e.g. 30m, 2h
)";

constexpr const char* kListHelp = R"(Usage: payorchctl dlq list [filters] [--limit N]

Lists dead letters in queue order: ID, REASON, ROUTING KEY (the original one),
ORDER, EVENT, AGE (since dead-lettering), SIZE (bytes of body). Non-destructive:
the messages are taken without acking on a channel of their own and given back,
in their order, when the listing is done.

  --reason CODE            the same as --error
  --limit N                show at most N messages (default 100)
)";

constexpr const char* kShowHelp = R"(Usage: payorchctl dlq show ID

One dead letter: why it is there (reason and detail), where it came from (the
original exchange and routing key), its properties and headers, and the body:
decoded into the contract's JSON form when it decodes (MSISDNs masked), else as
text or hex with the decoder's complaint. Non-destructive, like dlq list.
)";

constexpr const char* kReplayHelp =
    R"(Usage: payorchctl dlq replay (ID...|--all|filters) --reason TEXT [--dry-run]
                              [--rate N/s] [--who NAME] [--yes]

Publishes dead letters back to their original exchange with their original routing
key (x-payorch-original-* headers, or the broker's x-death), keeping body, content
type, message_id and the other properties; the x-payorch-* and x-death headers are
dropped, x-payorch-replayed-by and x-payorch-replay-id added, user_id left out.
Every matching message is taken and held (without ack) before the question, and
exactly those are replayed: what is dead-lettered meanwhile stays. Each is acked
in the dead-letter queue only after the broker confirmed its copy and the replay
record has it. Copies of one message (same ID and body) are published once; every
copy is acked with it. Different bodies under one ID are each replayed.

Safe to run twice or at once: a held message is invisible to other replayers, so
two operators replaying the same queue at once replay each message once. If a
replayer dies between publishing and acking, the message returns to the
dead-letter queue; replaying it again is harmless, since payorchd's inbox ignores
an event_id it has processed.

Every replay is recorded in the store (dlq replays): who, when, why, the filter,
each message, the outcome.

  ID...                    these messages (all must be in the queue, else nothing is replayed)
  --all                    every message
  --reason TEXT            why you replay (required except with --dry-run); free text,
                           never an error code: select those with --error CODE
  --dry-run                publish, ack and record nothing: say for each message what
                           replaying would do against the payment's current state
                           (already processed / valid / would be rejected / still malformed
                           / duplicate copy), in queue order: each message sees the
                           payment as the ones before it in this run would leave it
  --rate N/s               at most N messages per second
  --who NAME               recorded as the operator (default: $USER)
  --yes                    do not ask; without it payorchctl asks on a terminal and
                           refuses when stdin is not one
A progress bar on a terminal (stderr); plain lines every few seconds otherwise.
)";

constexpr const char* kPurgeHelp = R"(Usage: payorchctl dlq purge (ID...|--all|filters) [--yes]

Deletes dead letters for good. With --all, every message that is ready (not held
by a running replay). The matching messages are taken and held before the
question, and exactly those are deleted: what is dead-lettered meanwhile stays.
Asks for confirmation on a terminal unless --yes, and refuses without a terminal
and without --yes.

  ID...                    these messages (all must be in the queue, else nothing is purged)
  --all                    every ready message
  --reason CODE            the same as --error
  --yes                    do not ask
)";

constexpr const char* kReplaysHelp = R"(Usage: payorchctl dlq replays [ID] [--limit N]

Without ID: the latest replays, newest first: ID, WHO, STARTED, FINISHED, MESSAGES,
OUTCOME (running, completed, failed; "running" without an end after the replayer
died), FILTER, REASON. With ID: that replay and each message it replayed.

  --limit N                at most N replays (default 50)
)";

constexpr const char* kPaymentHelp = R"(Usage: payorchctl payment show|list|resolve|republish|parked|export ...

show, list and export read the store; resolve, republish and parked ask the running payorchd
through its admin endpoint (admin.listen_address, admin.port).
Run 'payorchctl payment COMMAND --help' for one command.
)";

constexpr const char* kPaymentShowHelp = R"(Usage: payorchctl payment show ORDER_ID

One payment from the store: phase, PayEx payment id, the payer's MSISDN (masked),
amounts authorized, captured, cancelled, reversed and remaining, its operations
with their status, the PayEx calls (outcome, latency), the timeline (history),
its payment events (published and confirmed, or not yet) and the next scheduled
action.
)";

constexpr const char* kPaymentListHelp =
    R"(Usage: payorchctl payment list [--state PHASE] [--older-than DURATION] [--in-doubt]
                               [--limit N]

Payments, the longest unchanged first.
  --state PHASE            new, creating, awaiting_msisdn, authorizing, awaiting_payer,
                           aborting, authorized, failed, aborted
  --older-than DURATION    unchanged for at least this long, e.g. 10m, 2h, 1d = 24h
  --in-doubt               only payments with an operation whose outcome is unknown
  --limit N                at most N payments (default 1000)
)";

constexpr const char* kResolveHelp = R"(Usage: payorchctl payment resolve ORDER_ID

Asks payorchd (POST /admin/payments/ORDER_ID/resolve on its admin endpoint) to
resolve the payment now: it reads the payment at PayEx and decides on what it
finds, as it would at its next poll. Needs payorchd running.
)";

constexpr const char* kRepublishHelp = R"(Usage: payorchctl payment republish ORDER_ID

Asks payorchd (POST /admin/payments/ORDER_ID/republish on its admin endpoint) to
publish every payment event of the order again, with the same event ids (consumers
deduplicate). Needs payorchd running.
)";

constexpr const char* kParkedHelp = R"(Usage: payorchctl payment parked

Asks payorchd (GET /admin/outbox/parked on its admin endpoint) for the payment
events the bus refused for good (bigger than bus.max_message_bytes, or properties
AMQP cannot carry): one per order, with the order's later events waiting behind
it, and why. They stay unsent in the outbox. Fix the cause (raise the limit, or the
broker's), then 'payorchctl payment republish ORDER' sends the order's events from
the parked one on; a restart of payorchd tries them again too. Needs payorchd
running.
)";

constexpr const char* kReconcileHelp =
    R"(Usage: payorchctl reconcile --since DURATION | --order ORDER_ID [-o table|json|csv]

Compares payorch's record of each payment changed in the window (or of one order)
with PayEx's: payorchd reads the payment at PayEx with every transaction
(GET /admin/payments/ORDER/reconcile on its admin endpoint) and compares the
authorized, captured, cancelled and reversed amounts, each money operation's
transaction (by payeeReference and amount), and the payment's state. Lists every
mismatch; a payment with a call in flight or in doubt is "unsettled" (run again
later). Progress goes to stderr. Exit 1 when anything mismatched or could not be
read. Needs payorchd running (it holds the PayEx credentials).
  --since DURATION         payments changed in this window, e.g. 1h, 24h
  --order ORDER_ID         one payment
)";

constexpr const char* kExportHelp =
    R"(Usage: payorchctl payment export --since DURATION [-o csv|json|table]

For finance: one row per money operation (authorization, capture, cancellation,
reversal) of the payments changed in the window, from the stores: order,
PayEx payment, operation, its shipment or refund id, status, amount and VAT
(minor units), payeeReference, PayEx transaction, when its last call finished.
CSV per RFC 4180 with a header row.
)";

constexpr OptionSpec kFilterOptions[] = {
    {"--error", true}, {"--routing-key", true}, {"--order", true}, {"--since", true}};

struct CommandDef {
  const char* group;
  const char* name;
  std::string help;
  std::vector<OptionSpec> options;
  int (*run)(Context&, const Args&);
};

std::vector<OptionSpec> WithFilters(std::vector<OptionSpec> options) {
  options.insert(options.end(), std::begin(kFilterOptions), std::end(kFilterOptions));
  return options;
}

const std::vector<CommandDef>& Commands() {
  static const std::vector<CommandDef> commands = {
      {"dlq", "list", std::string(kListHelp) + "\n" + kFilterHelp,
       WithFilters({{"--reason", true}, {"--limit", true}}), DlqList},
      {"dlq", "show", kShowHelp, {}, DlqShow},
      {"dlq", "replay", std::string(kReplayHelp) + "\n" + kFilterHelp,
       WithFilters({{"--all", false},
                    {"--reason", true},
                    {"--dry-run", false},
                    {"--rate", true},
                    {"--who", true},
                    {"--yes", false}}),
       DlqReplay},
      {"dlq", "purge", std::string(kPurgeHelp) + "\n" + kFilterHelp,
       WithFilters({{"--all", false}, {"--reason", true}, {"--yes", false}}), DlqPurge},
      {"dlq", "replays", kReplaysHelp, {{"--limit", true}}, DlqReplays},
      {"payment", "show", kPaymentShowHelp, {}, PaymentShow},
      {"payment",
       "list",
       kPaymentListHelp,
       {{"--state", true}, {"--older-than", true}, {"--in-doubt", false}, {"--limit", true}},
       PaymentList},
      {"payment", "resolve", kResolveHelp, {}, PaymentResolve},
      {"payment", "republish", kRepublishHelp, {}, PaymentRepublish},
      {"payment", "parked", kParkedHelp, {}, PaymentParked},
      {"payment", "export", kExportHelp, {{"--since", true}}, PaymentExport},
      {"reconcile", "", kReconcileHelp, {{"--since", true}, {"--order", true}}, Reconcile},
  };
  return commands;
}

const char* GroupHelp(const std::string& group) {
  if (group == "dlq") return kDlqHelp;
  if (group == "payment") return kPaymentHelp;
  if (group == "reconcile") return kReconcileHelp;
  return nullptr;
}

struct Globals {
  std::string config = kDefaultConfig;
  std::vector<std::string> overrides;
  Format format = Format::kTable;
  bool help = false;
  std::vector<std::string> rest;
};

// Global options are recognised anywhere on the line: operators add -o json at the end.
Globals TakeGlobals(const std::vector<std::string>& args) {
  Globals g;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& name) -> std::string {
      if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
      return args[++i];
    };
    auto inline_value = [&](const std::string& prefix) -> std::optional<std::string> {
      if (a.rfind(prefix + "=", 0) == 0) return a.substr(prefix.size() + 1);
      return std::nullopt;
    };
    std::string format;
    if (a == "--") {
      g.rest.insert(g.rest.end(), args.begin() + static_cast<long>(i), args.end());
      break;
    } else if (a == "-h" || a == "--help") {
      g.help = true;
    } else if (a == "--config") {
      g.config = value(a);
    } else if (auto v = inline_value("--config")) {
      g.config = *v;
    } else if (a == "--set") {
      g.overrides.push_back(value(a));
    } else if (auto v = inline_value("--set")) {
      g.overrides.push_back(*v);
    } else if (a == "-o" || a == "--output") {
      format = value(a);
    } else if (auto v = inline_value("--output")) {
      format = *v;
    } else if (a.size() > 2 && a.rfind("-o", 0) == 0 && a[2] != '-') {
      format = a.substr(2);
    } else {
      g.rest.push_back(a);
    }
    if (!format.empty()) {
      if (format == "json") {
        g.format = Format::kJson;
      } else if (format == "csv") {
        g.format = Format::kCsv;
      } else if (format == "table" || format == "text") {
        g.format = Format::kTable;
      } else {
        throw UsageError("-o " + format + ": the output format is table, json or csv");
      }
    }
  }
  return g;
}

const char* kUsageHint = "run 'payorchctl --help' for the commands";

}  // namespace

// --- Args ---------------------------------------------------------------------

bool Args::Has(const std::string& name) const {
  return std::find(flags.begin(), flags.end(), name) != flags.end() || values.count(name) > 0;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

Args ParseArgs(const std::string& command, const std::vector<std::string>& tokens,
               std::span<const OptionSpec> spec) {
  Args args;
  args.command = command;
  bool only_positional = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (only_positional || t.empty() || t[0] != '-' || t == "-") {
      args.positional.push_back(t);
      continue;
    }
    if (t == "--") {
      only_positional = true;
      continue;
    }
    std::string name = t;
    std::optional<std::string> inline_value;
    if (size_t eq = t.find('='); eq != std::string::npos && t.rfind("--", 0) == 0) {
      name = t.substr(0, eq);
      inline_value = t.substr(eq + 1);
    }
    const OptionSpec* found = nullptr;
    for (const auto& s : spec)
      if (name == s.name) found = &s;
    if (!found)
      throw UsageError("unknown option " + name + " for '" + command + "' (see payorchctl " +
                       command + " --help)");
    if (!found->takes_value) {
      if (inline_value) throw UsageError(name + " takes no value");
      args.flags.push_back(name);
      continue;
    }
    if (inline_value) {
      args.values[name].push_back(*inline_value);
    } else {
      if (i + 1 >= tokens.size())
        throw UsageError(name + " needs a value (see payorchctl " + command + " --help)");
      args.values[name].push_back(tokens[++i]);
    }
  }
  return args;
}

// --- Context ------------------------------------------------------------------

domain::Time Context::Now() const {
  if (io_.now) return io_.now();
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::optional<std::string> Context::Env(std::string_view name) const {
  return io_.env ? io_.env(name) : config::ProcessEnv()(name);
}

const config::Config& Context::Config() {
  if (!config_) {
    try {
      config_ =
          config::LoadConfig(config_path_, overrides_, CtlEnv(io_.env ? io_.env : config::ProcessEnv()));
    } catch (const config::ConfigError& e) {
      std::string hint;
      if (config_path_ == kDefaultConfig && e.line() == 0 && e.setting().empty())
        hint = " (payorchctl reads payorchd's configuration: give it with --config FILE)";
      throw Failure(std::string("configuration: ") + e.what() + hint);
    }
  }
  return *config_;
}

bus::Admin Context::ConnectBus(const std::string& purpose) {
  const config::Config& c = Config();
  std::string who = Env("USER").value_or("");
  try {
    return bus::Admin(c.bus, "payorchctl " + purpose + (who.empty() ? "" : " (" + who + ")"));
  } catch (const bus::BusError& e) {
    // The password never goes to a terminal or a log; every node of a cluster named.
    const std::string url = bus::RedactUrls(c.bus.url);
    throw Failure("cannot reach the broker at " + url + ": " + e.what() +
                  ". Is RabbitMQ running? Check bus.url in " + c.file +
                  " (and PAYORCH_AMQP_PASSWORD)");
  }
}

uint32_t Context::Partitions() { return Config().bus.topology.partitions; }

uint32_t Context::PartitionOf(const std::string& order_id) {
  return domain::PartitionOf(order_id, Partitions());
}

store::Store Context::OpenStore(bool write, uint32_t partition) {
  const config::Config& c = Config();
  const std::string path =
      Partitions() > 1 ? config::PartitionStorePath(c.store.path, partition) : c.store.path;
  store::Options options = c.store.options;
  options.create_if_missing = false;
  options.quick_check = false;
  options.read_only = !write;
  options.migrate = false;  // only payorchd migrates; never under a running one
  try {
    return store::Store::Open(path, options);
  } catch (const store::StoreError& e) {
    std::string hint;
    if (e.code() == store::ErrorCode::kMissing)
      hint = Partitions() > 1
                 ? ". payorchctl never creates a store: partition " + std::to_string(partition) +
                       " has none yet (no payorchd has served it), or store.path (in " + c.file +
                       ") is not payorchd's"
                 : ". payorchctl never creates the store: point store.path (in " + c.file +
                       " or with --set store.path=FILE) at payorchd's file";
    throw Failure(std::string(e.what()) + hint);
  }
}

uint32_t Context::DeadLetterDepth(bus::Admin& admin) {
  const std::string& q = Config().bus.topology.dead_letter_queue;
  auto depth = admin.QueueDepth(q);
  if (!depth)
    throw Failure("the dead-letter queue '" + q +
                  "' does not exist on the broker: payorchd declares it when it starts; check "
                  "bus.topology.dead_letter_queue in " +
                  Config().file);
  return *depth;
}

// --- argument values ------------------------------------------------------------

double ParseRate(const std::string& text) {
  std::string number = text;
  if (number.size() > 2 && number.substr(number.size() - 2) == "/s")
    number.resize(number.size() - 2);
  try {
    size_t used = 0;
    double rate = std::stod(number, &used);
    if (used == number.size() && std::isfinite(rate) && rate > 0) return rate;
  } catch (const std::exception&) {
  }
  throw UsageError("--rate " + text + ": expected messages per second, e.g. 50/s or 0.5/s");
}

std::chrono::milliseconds ParseDurationArg(const std::string& option, const std::string& text) {
  // Longer than this is a typo (and `now - d` would overflow the clock).
  constexpr int64_t kMaxDays = 100 * 366;
  const std::string too_long =
      option + " " + text + ": too long a duration (at most " + std::to_string(kMaxDays) + "d)";
  std::string t = text;
  // Days are not in payorchd's duration syntax, but operators ask for them.
  if (t.size() > 1 && t.back() == 'd' && t.find_first_not_of("0123456789") == t.size() - 1) {
    int64_t days = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size() - 1, days);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && days > kMaxDays))
      throw UsageError(too_long);
    if (ec == std::errc() && end == t.data() + t.size() - 1) return std::chrono::hours(24) * days;
  }
  if (auto d = config::ParseDuration(t)) {
    if (*d > std::chrono::hours(24) * kMaxDays) throw UsageError(too_long);
    return *d;
  }
  // ParseDuration refuses a number that overflows: say so rather than "expected".
  if (!t.empty() && t.find_first_not_of("0123456789smh") == std::string::npos &&
      t.find_first_of("0123456789") == 0 && t.find_first_of("smh") != std::string::npos)
    throw UsageError(too_long);
  throw UsageError(option + " " + text + ": expected a duration such as 90s, 30m, 2h or 1d");
}

size_t ParseCount(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    long long n = std::stoll(text, &used);
    if (used == text.size() && n > 0) return static_cast<size_t>(n);
  } catch (const std::exception&) {
  }
  throw UsageError(option + " " + text + ": expected a positive number");
}

bool Confirm(Context& ctx, const std::string& question, const std::string& refusal,
             const std::function<void(std::chrono::milliseconds)>& keep_alive) {
  if (!ctx.io().stdin_is_tty || !ctx.io().in) throw UsageError(refusal);
  ctx.err() << question << " [y/N] " << std::flush;
  std::string answer;
  bool got = false;
  if (keep_alive) {
    // The answer is read on a thread of its own; this thread keeps the broker
    // connection alive meanwhile (the connection is this thread's only).
    std::istream* in = ctx.io().in;
    auto reading = std::async(std::launch::async, [in, &answer] {
      return static_cast<bool>(std::getline(*in, answer));
    });
    while (reading.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready)
      keep_alive(std::chrono::milliseconds(200));
    got = reading.get();
  } else {
    got = static_cast<bool>(std::getline(*ctx.io().in, answer));
  }
  if (!got) return false;
  while (!answer.empty() && (answer.back() == ' ' || answer.back() == '\r')) answer.pop_back();
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

// --- Main ---------------------------------------------------------------------------

config::EnvLookup CtlEnv(config::EnvLookup env) {
  return [env = std::move(env)](std::string_view name) -> std::optional<std::string> {
    auto v = env ? env(name) : std::nullopt;
    if (v && !v->empty()) return v;
    if (name == config::kPayexTokenEnv) return "payorchctl-does-not-call-payex";
    if (name == config::kCallbackSecretEnv) return "payorchctl-does-not-check-callbacks-so-no-secret";
    return v;
  };
}

Io ProcessIo() {
  Io io;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.in = &std::cin;
  io.stdin_is_tty = isatty(STDIN_FILENO) == 1;
  io.stderr_is_tty = isatty(STDERR_FILENO) == 1;
  io.env = config::ProcessEnv();
  return io;
}

int Main(const std::vector<std::string>& argv, Io& io) {
  std::ostream& err = *io.err;
  Globals g;
  try {
    g = TakeGlobals(argv);
  } catch (const UsageError& e) {
    err << "payorchctl: " << e.what() << "; " << kUsageHint << "\n";
    return kExitUsage;
  }
  std::vector<std::string>& rest = g.rest;
  if (rest.empty() || rest[0] == "help") {
    if (g.help || (!rest.empty() && rest[0] == "help")) {
      *io.out << kMainHelp;
      return kExitOk;
    }
    err << kMainHelp;
    return kExitUsage;
  }
  const std::string group = rest[0];
  const char* group_help = GroupHelp(group);
  if (!group_help) {
    err << "payorchctl: unknown command '" << group << "'; " << kUsageHint << "\n";
    return kExitUsage;
  }
  const CommandDef* def = nullptr;
  size_t first_arg = 2;
  if (rest.size() > 1)
    for (const auto& c : Commands())
      if (group == c.group && rest[1] == c.name) def = &c;
  for (const auto& c : Commands())  // a command of one word: payorchctl reconcile ...
    if (!def && group == c.group && *c.name == '\0') {
      def = &c;
      first_arg = 1;
    }
  if (!def) {
    if (rest.size() == 1 && g.help) {
      *io.out << group_help;
      return kExitOk;
    }
    if (rest.size() == 1)
      err << "payorchctl " << group << ": which command?\n\n" << group_help;
    else
      err << "payorchctl: unknown command '" << group << " " << rest[1] << "'; run 'payorchctl "
          << group << " --help' for its commands\n";
    return kExitUsage;
  }
  const std::string command =
      std::string(def->group) + (*def->name ? std::string(" ") + def->name : "");
  if (g.format == Format::kCsv && command != "reconcile" && command != "payment export") {
    err << "payorchctl " << command << ": -o csv is for reconcile and payment export\n";
    return kExitUsage;
  }
  if (g.help) {
    *io.out << def->help;
    return kExitOk;
  }
  Context ctx(io, g.config, g.overrides, g.format);
  try {
    Args args =
        ParseArgs(command, std::vector<std::string>(rest.begin() + static_cast<long>(first_arg),
                                                    rest.end()),
                  def->options);
    return def->run(ctx, args);
  } catch (const UsageError& e) {
    err << "payorchctl " << command << ": " << e.what() << "\n";
    return kExitUsage;
  } catch (const Failure& e) {
    err << "payorchctl " << command << ": " << e.what() << "\n";
    return kExitFailure;
  } catch (const bus::BusError& e) {
    err << "payorchctl " << command << ": broker: " << e.what() << "\n";
    return kExitFailure;
  } catch (const store::StoreError& e) {
    err << "payorchctl " << command << ": " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    err << "payorchctl " << command << ": " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace payorch::ctl
