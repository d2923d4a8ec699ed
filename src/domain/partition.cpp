#include "domain/partition.hpp"

namespace payorch::domain {

uint32_t PartitionOf(std::string_view order_id, uint32_t partitions) {
  if (partitions <= 1) return 0;
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : order_id) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<uint32_t>(h % partitions);
}

}  // namespace payorch::domain
