#include "domain/partition.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace payorch::domain {
namespace {

// Fixed for ever: an order's partition decides which store holds it. These values
// come from an independent implementation of the documented function (Python).
TEST(PartitionTest, IsTheDocumentedFunction) {
  struct Case {
    std::string order_id;
    std::vector<uint32_t> by_count;  // for 2, 4, 7, 16, 1024 partitions
  };
  const std::vector<Case> cases = {
      {"order-1", {1, 3, 6, 3, 467}},
      {"order-2", {1, 3, 5, 3, 195}},
      {"", {1, 3, 5, 11, 155}},
      {"ORD-2024-000123", {0, 0, 6, 8, 968}},
      {"\xc3\xa6\xc3\xb8\xc3\xa5", {1, 3, 6, 15, 911}},  // æøå in UTF-8
  };
  const uint32_t counts[] = {2, 4, 7, 16, 1024};
  for (const auto& c : cases)
    for (size_t i = 0; i < 5; ++i)
      EXPECT_EQ(PartitionOf(c.order_id, counts[i]), c.by_count[i])
          << c.order_id << " with " << counts[i] << " partitions";
}

TEST(PartitionTest, OnePartitionHoldsEveryOrder) {
  EXPECT_EQ(PartitionOf("order-1", 1), 0u);
  EXPECT_EQ(PartitionOf("", 1), 0u);
  EXPECT_EQ(PartitionOf("anything", 0), 0u);  // not a valid count; still a valid answer
}

// Order ids that differ in one character spread evenly: no partition gets more
// than 10% above or below its share of 100,000 sequential ids.
TEST(PartitionTest, SequentialIdsSpreadEvenly) {
  for (uint32_t partitions : {2u, 3u, 4u, 8u, 16u}) {
    std::vector<int> n(partitions, 0);
    const int orders = 100000;
    for (int i = 0; i < orders; ++i) ++n[PartitionOf("order-" + std::to_string(i), partitions)];
    const double share = static_cast<double>(orders) / partitions;
    for (uint32_t p = 0; p < partitions; ++p) {
      EXPECT_GT(n[p], share * 0.9) << p << " of " << partitions;
      EXPECT_LT(n[p], share * 1.1) << p << " of " << partitions;
    }
  }
}

}  // namespace
}  // namespace payorch::domain
