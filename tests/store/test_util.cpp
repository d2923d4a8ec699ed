#include "test_util.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace payorch::store::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/payorch-store-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Child ForkWithPipe(const std::function<void(int write_fd)>& child) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    close(fds[0]);
    child(fds[1]);
    _exit(1);  // `child` must not return
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}

domain::Payment FullPayment(const std::string& order_id, int64_t salt) {
  using namespace domain;
  const auto t = [salt](int64_t base) {
    return FromMillis(1'700'000'000'000 + base * 1000 + salt);
  };
  Payment p;
  p.order_id = order_id;
  p.phase = Phase::kAuthorized;
  p.payment_id = "/psp/vipps/payments/5adc265f-" + std::to_string(salt);
  p.purchase_event_id = "evt-purchase-" + std::to_string(salt);
  p.purchase.amount = 150000 + salt;
  p.purchase.vat_amount = 30000 + salt;
  p.purchase.currency = "NOK";
  p.purchase.description = "Blåbærsyltetøy ×" + std::to_string(salt);
  p.purchase.payer_reference = "payer-" + std::to_string(salt);
  p.purchase.msisdn = "+4798765432";
  p.purchase.user_agent = "Mozilla/5.0 (X11; Linux x86_64)";
  p.purchase.language = "nb-NO";
  p.purchase.metadata = {{"basket", "b-" + std::to_string(salt)},
                         {"channel", "web"},
                         {std::string("nul\0key", 7), std::string("\xff\x00\x01", 3)}};
  p.msisdn = "+4798765432";
  p.msisdn_event_id = "evt-msisdn-" + std::to_string(salt);
  p.cancel_event_id = "evt-cancel-" + std::to_string(salt);
  p.cancel_reason = "out of stock " + std::to_string(salt);
  p.abort_cause = AbortCause::kMsisdnTimedOut;
  p.cancel_requested = true;
  p.authorization_tx = "/psp/vipps/payments/x/transactions/auth-" + std::to_string(salt);
  p.balance = {150000 + salt, 50000 + salt, 1000 + salt, 2000 + salt};
  for (uint32_t i = 1; i <= 3; ++i) {
    Op op;
    op.id = i;
    op.kind = i == 1 ? OpKind::kAuthorize : i == 2 ? OpKind::kCapture : OpKind::kReverse;
    op.status = i == 3 ? OpStatus::kInDoubt : OpStatus::kDone;
    op.payee_reference = "PR" + std::to_string(salt) + "x" + std::to_string(i);
    op.ref_id = "ship-" + std::to_string(i);
    op.attempt = i + 1;
    op.amount = -(50000 + static_cast<int64_t>(i));  // negative: exercises zigzag
    op.vat_amount = 10000 + i;
    op.description = "op " + std::to_string(i);
    op.caused_by = "evt-" + std::to_string(i);
    op.transient_tries = 4000000000u;  // near the uint32 limit
    op.doubt_reads = i + 7;
    op.not_before = t(10 + i);
    op.in_transit_until = t(12 + i);
    op.transaction_id = "tx-" + std::to_string(i);
    op.failure_code = "declined";
    p.ops.push_back(op);
  }
  p.in_flight = {UINT64_MAX - static_cast<uint64_t>(salt), 3, t(20)};
  p.last_call_id = 0x1234567890ABCDEFull + static_cast<uint64_t>(salt);
  p.last_sequence = 17 + static_cast<uint64_t>(salt);
  p.read_wanted = true;
  p.polls = 9;
  p.created_at = t(1);
  p.next_poll_at = t(2);
  p.deadline = t(3);
  p.doubt_since = FromMillis(-5 - salt);  // before the epoch: negative times survive too
  p.updated_at = t(5);
  p.due_at = t(6);
  return p;
}

domain::PaymentEvent FullEvent(const std::string& order_id, uint64_t sequence, int64_t salt) {
  using namespace domain;
  PaymentEvent e;
  e.event_id = order_id + "-ev-" + std::to_string(sequence);
  e.order_id = order_id;
  e.payment_id = "/psp/vipps/payments/5adc265f-" + std::to_string(salt);
  e.sequence = sequence;
  e.occurred_at = FromMillis(1'700'000'123'456 + salt);
  e.caused_by_event_id = "evt-cause-" + std::to_string(salt);
  e.balance = {1000 + salt, 500, 100, 50};
  e.kind = EventKind::kReversalFailed;
  e.amount = -42 - salt;
  e.transaction_id = "tx-" + std::to_string(salt);
  e.shipment_id = "ship-" + std::to_string(salt);
  e.refund_id = "refund-" + std::to_string(salt);
  e.reason = "customer changed mind";
  e.failure = {"payex_problem", "PayEx refused the reversal",
               "https://api.payex.com/psp/errordetail/vipps/systemerror"};
  return e;
}

domain::PayexCall FullCall(const std::string& order_id, uint64_t call_id) {
  using namespace domain;
  PayexCall c;
  c.call_id = call_id;
  c.op_id = 2;
  c.kind = OpKind::kCapture;
  c.order_id = order_id;
  c.payment_id = "/psp/vipps/payments/abc";
  c.payee_reference = "PR" + std::to_string(call_id);
  c.amount = 5000;
  c.vat_amount = 1000;
  c.description = "shipment";
  return c;
}

}  // namespace payorch::store::testing
