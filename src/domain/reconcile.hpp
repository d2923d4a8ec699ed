// Reconciliation (issue 14): payorch's record of a payment against what PayEx shows
// of it (a read with every transaction expanded). Pure: no IO, no clock.
//
// A payment with a call in flight, in doubt or pending at PayEx is unsettled: its
// amounts may differ for a moment without anything being wrong, so it is reported
// as such and not compared. Otherwise every difference is a mismatch:
//  - the payment id;
//  - authorized, captured, cancelled and reversed amounts (PayEx: its Completed
//    transactions of each kind);
//  - each money operation payorch recorded as done must be a Completed transaction
//    at PayEx with its payeeReference and amount, and each Completed capture,
//    cancellation or reversal at PayEx must be an operation payorch recorded;
//  - an authorized payment PayEx shows aborted or failed, and money reserved at
//    PayEx for a payment payorch failed or aborted.
#pragma once

#include <string>
#include <vector>

#include "domain/types.hpp"

namespace payorch::domain {

struct Mismatch {
  std::string what;     // "captured", "capture s1", "payment_id", "state", ...
  std::string payorch;  // payorch's value, as text
  std::string payex;    // PayEx's
};

struct Reconciliation {
  bool unsettled = false;
  std::string unsettled_why;  // which operation is in flight, in doubt or pending
  std::vector<Mismatch> mismatches;
  Balance payex_balance;  // PayEx's amounts by its Completed transactions
};

Reconciliation Reconcile(const Payment& payment, const PaymentSnapshot& payex);

}  // namespace payorch::domain
