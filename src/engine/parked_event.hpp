// A payment event the bus refused for good (bus::PublishStatus::kRefused), parked by
// the outbox relay until an operator republishes its order (payorchctl payment parked).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "domain/types.hpp"

namespace payorch::engine {

struct ParkedEvent {
  std::string order_id;
  std::string event_id;
  uint64_t sequence = 0;
  std::string kind;    // domain::EventKindName
  std::string reason;  // why it was refused: masked and bounded
  domain::Time since{};
  size_t waiting_behind = 0;  // the order's later events held back behind it
};

}  // namespace payorch::engine
