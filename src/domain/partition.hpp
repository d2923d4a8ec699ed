// Which partition an order belongs to (issue 13): a pure function of the order id
// and the deployment's partition count, the same in every payorchd, payorchctl and,
// should one want to, an order service. It must never change: a changed function
// would separate orders from the store that holds them.
#pragma once

#include <cstdint>
#include <string_view>

namespace payorch::domain {

// The most partitions a deployment may have (a queue, a store and a consumer each).
inline constexpr uint32_t kMaxPartitions = 1024;

// 64-bit FNV-1a of the order id's bytes (offset basis 0xcbf29ce484222325, prime
// 0x100000001b3), then the splitmix64 finalizer (so every bit of the id reaches the
// low bits), modulo `partitions`. `partitions` is 1..kMaxPartitions; one partition
// puts every order in partition 0.
uint32_t PartitionOf(std::string_view order_id, uint32_t partitions);

}  // namespace payorch::domain
