// store_bench: committed decisions per second of the SQLite store (WAL,
// synchronous=FULL, a file on disk) for batch sizes 1, 16 and 256, next to the
// raw commit rate of SQLite and the fsync rate of the same directory, measured in
// the same run, and the rate of a less friendly workload (see DecisionMaker).
// Prints medians of a few runs, each on a new file; asserts nothing.
//
//   store_bench [--path DIR] [--seconds N] [--runs R]
//
// DIR (default $TMPDIR or /tmp) must be on the disk to measure: a tmpfs gives
// meaningless figures. Files go to a fresh subdirectory that is removed after.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "store/store.hpp"

namespace {

using payorch::domain::FromMillis;
using payorch::domain::Time;
using Clock = std::chrono::steady_clock;
namespace domain = payorch::domain;
namespace store = payorch::store;

struct Config {
  std::string dir;
  double seconds = 2;
  int runs = 3;
};

struct Rate {
  double per_second = 0;  // operations (fsyncs, transactions, decisions) per second
  double tx_per_second = 0;
  double ms_per_tx = 0;
};

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// ---------------------------------------------------------------------------

Rate FsyncRate(const std::string& dir, double seconds) {
  const std::string path = dir + "/fsync.bin";
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  char block[4096];
  std::memset(block, 'x', sizeof block);
  long n = 0;
  const auto start = Clock::now();
  Clock::duration spent{};
  do {
    block[0] = static_cast<char>(n);
    if (pwrite(fd, block, sizeof block, 0) != sizeof block || fsync(fd) != 0)
      throw std::runtime_error("write/fsync " + path + ": " + std::strerror(errno));
    ++n;
    spent = Clock::now() - start;
  } while (Seconds(spent) < seconds);
  close(fd);
  std::filesystem::remove(path);
  const double rate = n / Seconds(spent);
  return {rate, rate, 1000 / rate};
}

void Check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

// One small INSERT per transaction, the way a naive one-fsync-per-event design
// would commit: the ceiling of anything that commits each decision on its own.
Rate RawSqliteRate(const std::string& dir, double seconds) {
  const std::string path = dir + "/raw.db";
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open raw.db");
  Check(sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
                     nullptr, nullptr, nullptr),
        db, "set up raw.db");
  sqlite3_stmt *begin, *insert, *commit;
  Check(sqlite3_prepare_v2(db, "BEGIN", -1, &begin, nullptr), db, "prepare");
  Check(sqlite3_prepare_v2(db, "INSERT INTO t (v) VALUES (randomblob(100))", -1, &insert, nullptr),
        db, "prepare");
  Check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr), db, "prepare");
  long n = 0;
  const auto start = Clock::now();
  Clock::duration spent{};
  do {
    for (sqlite3_stmt* s : {begin, insert, commit}) {
      Check(sqlite3_step(s), db, "raw commit");
      sqlite3_reset(s);
    }
    ++n;
    spent = Clock::now() - start;
  } while (Seconds(spent) < seconds);
  for (sqlite3_stmt* s : {begin, insert, commit}) sqlite3_finalize(s);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  const double rate = n / Seconds(spent);
  return {rate, rate, 1000 / rate};
}

// ---------------------------------------------------------------------------
// Realistic decisions: each has the payment after it (three ops, a purchase with
// metadata: about 750 bytes encoded), one inbox row, one outbox event, one
// operations row (finishing the previous call) and one history row.
//
// Two workloads differ in where on disk their rows land, which is what the
// commit rate depends on (a WAL commit writes every page it touched):
//  - fresh: orders get two decisions back to back (purchase, then its create
//    result), in the same batch; keys ascend. The best case: commits append.
//  - lifecycle: orders get four decisions (purchase, created, authorized,
//    captured) as thousands progress side by side, so a batch updates payments
//    from about 20 batches earlier; inbox event ids are random UUIDs, as order
//    services send them. Pages all over the file are rewritten.

enum class Workload { kFresh, kLifecycle };

domain::Payment BasePayment() {
  domain::Payment p;
  p.phase = domain::Phase::kAwaitingPayer;
  p.payment_id = "/psp/vipps/payments/5adc265f-f87f-4313-577e-08d3dca1a26c";
  p.purchase_event_id = "6c9e1a3e-0b8e-4d0f-9a57-3b1c2f0e8d11";
  p.purchase = {150000,
                30000,
                "NOK",
                "Order 2024-000123",
                "payer-123",
                "+4798765432",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                "nb-NO",
                {{"basket", "b-123"}, {"channel", "web"}}};
  p.msisdn = "+4798765432";
  p.balance = {150000, 50000, 0, 0};
  const domain::OpKind kinds[] = {domain::OpKind::kCreate, domain::OpKind::kAuthorize,
                                  domain::OpKind::kCapture};
  for (uint32_t i = 1; i <= 3; ++i) {
    domain::Op op;
    op.id = i;
    op.kind = kinds[i - 1];
    op.status = i < 3 ? domain::OpStatus::kDone : domain::OpStatus::kQueued;
    op.payee_reference = "PO1a2b3c4d5e6f7a8b9c0d1e2f3a4b" + std::to_string(i);
    op.ref_id = i == 3 ? "shipment-1" : "";
    op.amount = i == 3 ? 50000 : 150000;
    op.vat_amount = 10000;
    op.description = "Order 2024-000123";
    op.caused_by = "6c9e1a3e-0b8e-4d0f-9a57-3b1c2f0e8d1" + std::to_string(i);
    op.transaction_id = "/psp/vipps/payments/5adc265f/transactions/" + std::to_string(i);
    p.ops.push_back(op);
  }
  p.created_at = FromMillis(1'700'000'000'000);
  p.deadline = FromMillis(1'700'000'600'000);
  p.next_poll_at = FromMillis(1'700'000'003'000);
  return p;
}

class DecisionMaker {
 public:
  DecisionMaker(Workload workload, int run)
      : workload_(workload), run_(run), base_(BasePayment()), rng_(run + 1) {}

  void Next(store::Commit& c) {
    const uint64_t k = step_++;
    uint64_t order_number = 0;
    int stage = 0;  // 0 purchase requested, then PayEx results
    if (workload_ == Workload::kFresh) {
      order_number = k / 2;
      stage = static_cast<int>(k % 2);
    } else if (k % 4 == 0 || active_.size() < kActive) {
      order_number = next_order_++;
      active_.emplace_back(order_number, 0);
    } else {
      std::tie(order_number, stage) = active_.front();
      active_.pop_front();
      if (++stage < 3) active_.emplace_back(order_number, stage);
    }
    char order[48];
    std::snprintf(order, sizeof order, "order-%d-%010llu", run_,
                  static_cast<unsigned long long>(order_number));
    const Time now = FromMillis(1'700'000'000'000 + static_cast<int64_t>(k));
    const uint64_t sequence = static_cast<uint64_t>(stage) + 1;

    c.phase_before = stage == 0 ? std::nullopt : std::optional(domain::Phase::kAwaitingPayer);
    c.after = base_;
    c.after.order_id = order;
    c.after.phase = stage == 0 ? domain::Phase::kCreating : domain::Phase::kAuthorized;
    c.after.last_sequence = sequence;
    c.after.last_call_id = sequence;
    c.after.in_flight = {sequence, 1, now};
    c.after.updated_at = now;
    c.after.due_at = now + std::chrono::minutes(2);
    if (workload_ == Workload::kFresh) {
      c.inbox_event_id = std::string(order) + "-" + std::to_string(sequence);
    } else {
      char uuid[40];
      std::snprintf(uuid, sizeof uuid, "%08x-%04x-4%03x-a%03x-%012llx",
                    static_cast<unsigned>(rng_()), static_cast<unsigned>(rng_() & 0xFFFF),
                    static_cast<unsigned>(rng_() & 0xFFF), static_cast<unsigned>(rng_() & 0xFFF),
                    static_cast<unsigned long long>(rng_() & 0xFFFFFFFFFFFFull));
      c.inbox_event_id = uuid;
    }
    c.events.resize(1);
    domain::PaymentEvent& e = c.events[0];
    e.event_id = "pe:" + c.after.order_id + ":" + std::to_string(sequence);
    e.order_id = c.after.order_id;
    e.payment_id = base_.payment_id;
    e.sequence = sequence;
    e.occurred_at = now;
    e.caused_by_event_id = c.inbox_event_id;
    e.balance = base_.balance;
    e.kind = stage == 0 ? domain::EventKind::kRejected : domain::EventKind::kAuthorized;
    e.amount = 150000;
    c.calls.resize(1);
    domain::PayexCall& call = c.calls[0];
    call.call_id = sequence;
    call.op_id = static_cast<uint32_t>(stage % 3) + 1;
    call.kind = base_.ops[stage % 3].kind;
    call.order_id = c.after.order_id;
    call.payee_reference = base_.ops[stage % 3].payee_reference;
    call.amount = 150000;
    c.finished = stage == 0 ? std::nullopt
                            : std::optional(store::CallFinished{sequence - 1, "success", 180});
    c.input_name = stage == 0 ? "order_event:purchase_requested" : "payex_result";
    c.note = stage == 0 ? "purchase accepted: creating payment" : "payex result: next step";
    c.at = now;
  }

 private:
  static constexpr size_t kActive = 4096;  // lifecycle: payments in progress at once

  Workload workload_;
  int run_;
  domain::Payment base_;
  std::mt19937_64 rng_;
  uint64_t step_ = 0;
  uint64_t next_order_ = 0;
  std::deque<std::pair<uint64_t, int>> active_;
};

// Only CommitBatch is timed: building the commits is the engine's work.
// With background_checkpoint the writer never checkpoints (wal_autocheckpoint off)
// and a second connection on its own thread copies the WAL into the file, as
// payorchd does: the commit path then pays for its WAL append and fsync only.
Rate DecisionRate(const std::string& dir, Workload workload, int run, size_t batch_size,
                  double seconds, bool background_checkpoint = false) {
  const std::string path = dir + "/store-" + std::to_string(batch_size) + ".db";
  Rate rate;
  {
    store::Options options;
    if (background_checkpoint) options.wal_autocheckpoint_pages = 0;
    store::Store s = store::Store::Open(path, options);
    std::atomic<bool> stop{false};
    std::thread checkpointer;
    if (background_checkpoint) {
      checkpointer = std::thread([&] {
        store::Store c = store::Store::Open(path, options);
        while (!stop.load()) {
          (void)c.Checkpoint();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }
    struct Join {
      std::atomic<bool>& stop;
      std::thread& t;
      ~Join() {
        stop = true;
        if (t.joinable()) t.join();
      }
    } join{stop, checkpointer};
    DecisionMaker maker(workload, run);
    std::vector<store::Commit> batch(batch_size);
    long decisions = 0, transactions = 0;
    Clock::duration committing{};
    const auto start = Clock::now();
    while (Seconds(Clock::now() - start) < seconds) {
      for (auto& c : batch) maker.Next(c);
      const auto t0 = Clock::now();
      const store::WriteResult r = s.CommitBatch(batch);
      committing += Clock::now() - t0;
      if (!r) throw std::runtime_error(r.message);
      decisions += static_cast<long>(batch_size);
      ++transactions;
    }
    rate.per_second = decisions / Seconds(committing);
    rate.tx_per_second = transactions / Seconds(committing);
    rate.ms_per_tx = 1000 * Seconds(committing) / transactions;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return rate;
}

Rate Median(std::vector<Rate> rates) {
  std::sort(rates.begin(), rates.end(),
            [](const Rate& a, const Rate& b) { return a.per_second < b.per_second; });
  return rates[rates.size() / 2];
}

std::string FsType(const std::string& dir) {
  struct statfs s {};
  if (statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs (fsync is free here: figures mean nothing)";
    case 0x794C7630: return "overlayfs";
  }
  char magic[32];
  std::snprintf(magic, sizeof magic, "fs magic 0x%lx", static_cast<unsigned long>(s.f_type));
  return magic;
}

Config ParseArgs(int argc, char** argv) {
  Config config;
  const char* tmp = std::getenv("TMPDIR");
  config.dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--path") {
      config.dir = value();
    } else if (arg == "--seconds") {
      config.seconds = std::stod(value());
    } else if (arg == "--runs") {
      config.runs = std::stoi(value());
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: store_bench [--path DIR] [--seconds N] [--runs R]\n");
      std::exit(0);
    } else {
      throw std::runtime_error("unknown argument " + arg + " (try --help)");
    }
  }
  if (config.seconds <= 0 || config.runs < 1)
    throw std::runtime_error("--seconds must be > 0 and --runs >= 1");
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Config config = ParseArgs(argc, argv);
    std::string tmpl = config.dir + "/store-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("cannot create a directory in " + config.dir + ": " +
                               std::strerror(errno));
    const std::string dir = tmpl;
    struct Removal {
      std::string dir;
      ~Removal() { std::filesystem::remove_all(dir); }
    } removal{dir};

    std::printf("store_bench: %s (%s), SQLite %s, WAL, synchronous=FULL\n", dir.c_str(),
                FsType(dir).c_str(), sqlite3_libversion());
    std::printf("median of %d runs of %.1f s each; decisions: only CommitBatch is timed\n\n",
                config.runs, config.seconds);
    std::printf("%-36s %14s %12s %12s\n", "measurement", "per second", "tx/s", "ms per tx");

    const auto row = [&](const std::string& name, const char* unit,
                         const std::function<Rate(int)>& measure) {
      std::vector<Rate> rates;
      for (int run = 0; run < config.runs; ++run) rates.push_back(measure(run));
      const Rate m = Median(rates);
      std::printf("%-36s %10.0f %-3s %12.0f %12.3f\n", name.c_str(), m.per_second, unit,
                  m.tx_per_second, m.ms_per_tx);
      std::fflush(stdout);
      return m;
    };
    row("fsync (4 KiB overwrite + fsync)", "", [&](int) { return FsyncRate(dir, config.seconds); });
    const Rate raw = row("raw SQLite commit (1 INSERT per tx)", "tx",
                         [&](int) { return RawSqliteRate(dir, config.seconds); });
    Rate fresh_256;
    for (size_t batch : {size_t{1}, size_t{16}, size_t{256}}) {
      fresh_256 = row("decisions, fresh, batch " + std::to_string(batch), "dec", [&](int run) {
        return DecisionRate(dir, Workload::kFresh, run, batch, config.seconds);
      });
    }
    row("decisions, lifecycle, batch 256", "dec",
        [&](int run) { return DecisionRate(dir, Workload::kLifecycle, run, 256, config.seconds); });
    std::printf("-- checkpoints on a second connection and thread, as payorchd runs --\n");
    Rate bg_256;
    for (size_t batch : {size_t{1}, size_t{16}, size_t{256}}) {
      bg_256 = row("decisions, fresh, batch " + std::to_string(batch), "dec", [&](int run) {
        return DecisionRate(dir, Workload::kFresh, run, batch, config.seconds, true);
      });
    }
    row("decisions, lifecycle, batch 256", "dec", [&](int run) {
      return DecisionRate(dir, Workload::kLifecycle, run, 256, config.seconds, true);
    });
    std::printf(
        "\nfresh batch 256: %.0f decisions/s with inline checkpoints, %.0f with a checkpoint "
        "thread (goal >= 100000, issue 12); %.0fx raw SQLite's one-transaction-per-decision rate\n",
        fresh_256.per_second, bg_256.per_second, bg_256.per_second / raw.per_second);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    return 1;
  }
}
