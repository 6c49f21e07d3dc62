// Counters that several servers add to: the rate limits' calls per application and window, when
// servers share a database (docs/scaling.md, "Rate limits").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace kbgap::store {

class SharedCounters {
 public:
  virtual ~SharedCounters() = default;
  struct Add {
    std::string key;
    std::int64_t delta = 0;    // may be 0 (only the total is wanted) or negative (a refund)
    std::int64_t expires = 0;  // Unix seconds after which the counter may be forgotten
  };
  // Adds each delta and returns each key's total over every server, in the order given. Keys
  // are distinct.
  virtual Result<std::vector<std::int64_t>> add(const std::vector<Add>& adds) = 0;
};

}  // namespace kbgap::store
