// PayEx response mapping (payex/mapping.hpp): every parser over a body PayEx (or
// whoever answers in its place) sends, and the classification of an exchange with
// any status. Beyond not crashing: a classified problem is masked and bounded
// wherever it may land (logs, payment events, the store).
#include <string>

#include "domain/safe_text.hpp"
#include "fuzz_support.hpp"
#include "payex/mapping.hpp"

using namespace payorch;

namespace {

void CheckProblem(const domain::Problem& p) {
  FUZZ_CHECK(domain::IsSafeDetail(p.title), p.title);
  FUZZ_CHECK(domain::IsSafeDetail(p.detail), p.detail);
  FUZZ_CHECK(domain::IsSafeDetail(p.type, 500), p.type);
  FUZZ_CHECK(p.problems.size() <= 100, std::to_string(p.problems.size()));
  for (const auto& [name, description] : p.problems) {
    FUZZ_CHECK(domain::IsSafeDetail(name, 100), name);
    FUZZ_CHECK(domain::IsSafeDetail(description), description);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  payex::Exchange e;
  e.transport = static_cast<payex::Transport>(in.Byte() % 5);
  e.effectful = in.Byte() & 1;
  e.status = 100 + in.Byte() * 2;  // 100..610
  e.content_type = (in.Byte() & 1) ? "application/problem+json" : in.String(40);
  e.error = in.String(200);
  e.body = std::string(in.Rest());

  // A transaction's problem (or failedReason) reaches the payment events too.
  if (auto r = payex::ParsePaymentResource(e.body)) {
    (void)payex::FindOperation(r.value->operations, {payex::kAuthorizationRels[0],
                                                     payex::kAuthorizationRels[1]});
    (void)payex::OperationRels(r.value->operations);
    for (const auto& tx : r.value->snapshot.transactions)
      if (tx.problem) CheckProblem(*tx.problem);
  }
  if (auto t = payex::ParseTransactionResource(e.body); t && t.value->problem)
    CheckProblem(*t.value->problem);
  if (auto list = payex::ParseTransactionList(e.body))
    for (const auto& tx : *list.value)
      if (tx.problem) CheckProblem(*tx.problem);
  if (auto p = payex::ParseProblem(e.body)) CheckProblem(*p.value);
  (void)payex::IsJsonContentType(e.content_type);

  payex::Classified c = payex::Classify(e);
  if (c.problem) CheckProblem(*c.problem);
  payex::Classified u = payex::ClassifyUnusableBody(e, e.error);
  FUZZ_CHECK(u.problem.has_value(), "an unusable body has a problem");
  CheckProblem(*u.problem);
  return 0;
}
