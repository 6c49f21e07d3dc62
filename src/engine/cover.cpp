// Greedy set cover for the engine's picks (docs/engine.md, step 5).
#include "engine/cover.h"

#include <algorithm>
#include <cassert>
#include <queue>

namespace kbgap::engine {

bool ranks_before(const CandidateRank& a, const CandidateRank& b) {
  if (a.day != b.day) return a.day > b.day;
  if (a.order != b.order) return a.order < b.order;
  return a.kb > b.kb;
}

std::vector<std::uint32_t> choose_cover(const CoverSets& sets, std::uint32_t pair_count,
                                        std::span<const CandidateRank> ranks) {
  assert(ranks.size() == sets.candidate_count());
  auto better = [&](std::size_t gain_a, std::uint32_t a, std::size_t gain_b, std::uint32_t b) {
    if (gain_a != gain_b) return gain_a > gain_b;
    return ranks_before(ranks[a], ranks[b]);
  };
  using Entry = std::pair<std::size_t, std::uint32_t>;  // (gain, candidate)
  auto worse = [&](const Entry& x, const Entry& y) {
    return better(y.first, y.second, x.first, x.second);
  };
  std::vector<char> uncovered(pair_count, 1);
  std::size_t left = pair_count;
  std::vector<std::uint32_t> chosen;
  // Gains only shrink, so a candidate whose stale gain still tops the queue after a recount is
  // the best one.
  for (const bool preferred_pass : {true, false}) {
    std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> queue(worse);
    for (std::uint32_t c = 0; c < sets.candidate_count(); ++c) {
      if (ranks[c].preferred == preferred_pass) queue.push({sets.of(c).size(), c});
    }
    while (left > 0 && !queue.empty()) {
      auto [stale, c] = queue.top();
      queue.pop();
      std::size_t gain = 0;
      for (std::uint32_t id : sets.of(c)) gain += static_cast<std::size_t>(uncovered[id]);
      if (gain == 0) continue;
      if (gain < stale && !queue.empty() &&
          better(queue.top().first, queue.top().second, gain, c)) {
        queue.push({gain, c});
        continue;
      }
      chosen.push_back(c);
      for (std::uint32_t id : sets.of(c)) {
        left -= static_cast<std::size_t>(uncovered[id]);
        uncovered[id] = 0;
      }
    }
  }
  // Nothing reported that the rest already closes: a chosen candidate whose pairs the others all
  // close is dropped, the one a person would least want first.
  std::sort(chosen.begin(), chosen.end(), [&](std::uint32_t a, std::uint32_t b) {
    if (ranks[a].preferred != ranks[b].preferred) return ranks[a].preferred;
    return ranks_before(ranks[a], ranks[b]);
  });
  // A preferred pick is redundant only when other preferred picks close its pairs: a fallback
  // pick never pushes one out.
  std::vector<std::uint32_t> closers(pair_count, 0), preferred_closers(pair_count, 0);
  for (std::uint32_t c : chosen) {
    for (std::uint32_t id : sets.of(c)) {
      ++closers[id];
      if (ranks[c].preferred) ++preferred_closers[id];
    }
  }
  std::vector<std::uint32_t> kept;
  for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) {
    const auto ids = sets.of(*it);
    const auto& others = ranks[*it].preferred ? preferred_closers : closers;
    if (std::all_of(ids.begin(), ids.end(), [&](std::uint32_t id) { return others[id] > 1; })) {
      for (std::uint32_t id : ids) {
        --closers[id];
        if (ranks[*it].preferred) --preferred_closers[id];
      }
      continue;
    }
    kept.push_back(*it);
  }
  std::reverse(kept.begin(), kept.end());
  return kept;
}

}  // namespace kbgap::engine
