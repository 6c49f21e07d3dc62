// Sorted and without repeats, in place.
#pragma once

#include <algorithm>
#include <vector>

namespace kbgap {

template <typename T>
void make_distinct(std::vector<T>& list) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
}

}  // namespace kbgap
