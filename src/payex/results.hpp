// Results of the client's calls beyond domain::PayexResult: the payment resource
// with its operations, a transaction list, and pool figures. Plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "domain/types.hpp"
#include "payex/mapping.hpp"

namespace payorch::payex {

struct PaymentResult {
  domain::ResultClass result = domain::ResultClass::kSuccess;
  std::optional<domain::Problem> problem;
  std::optional<PaymentResource> payment;
  int64_t latency_us = 0;
};

struct ListResult {
  domain::ResultClass result = domain::ResultClass::kSuccess;
  std::optional<domain::Problem> problem;
  std::vector<domain::Transaction> transactions;
  int64_t latency_us = 0;
};

struct PoolStats {
  std::size_t open = 0;  // connections open (idle + busy)
  std::size_t idle = 0;
  std::size_t waiting = 0;  // requests waiting for a connection
  uint64_t connects = 0;    // connections established
  uint64_t requests = 0;    // HTTP exchanges started
  uint64_t reuses = 0;      // exchanges on a kept-alive connection
  uint64_t cache_hits = 0;  // operations found in the cached payment resource
};

}  // namespace payorch::payex
