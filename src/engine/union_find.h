// Disjoint sets (union-find with path halving), for splitting a device's fixes into parts that
// cannot influence one another (docs/engine.md, "Many devices at once").
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace kbgap::engine {

class UnionFind {
 public:
  explicit UnionFind(std::size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0u); }
  // The set's representative: its smallest member.
  std::uint32_t find(std::uint32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void unite(std::uint32_t a, std::uint32_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent_[std::max(a, b)] = std::min(a, b);
  }

 private:
  std::vector<std::uint32_t> parent_;
};

}  // namespace kbgap::engine
