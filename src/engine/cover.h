// What to install: the smallest set of KBs a person would pick to close a component's open
// (product, CVE) pairs (docs/engine.md, step 5). A greedy set cover with the tie-breaks a person
// would use, and no pick that the others make redundant.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kbgap::engine {

// Candidates (numbered 0..n-1) and, for each, the open pairs it closes: compressed rows.
struct CoverSets {
  std::vector<std::uint32_t> begin{0};  // candidate c's pairs: pairs[begin[c], begin[c + 1])
  std::vector<std::uint32_t> pairs;     // ascending within a row

  std::uint32_t candidate_count() const { return static_cast<std::uint32_t>(begin.size() - 1); }
  std::span<const std::uint32_t> of(std::uint32_t c) const {
    return {pairs.data() + begin[c], begin[c + 1] - begin[c]};
  }
};

// How a person ranks two KBs that close as many pairs: the newer release, then the month's
// security release before its optional or partial twins, then the higher KB number.
struct CandidateRank {
  int day = 0;            // release day, 20200310
  int order = 0;          // 0: a security release; 1: preview or out-of-band; 2: Security Only
  std::uint32_t kb = 0;   // the KB number
  bool preferred = true;  // picked only for pairs no preferred candidate closes, when false
};
bool ranks_before(const CandidateRank& a, const CandidateRank& b);

// The chosen candidates, best first: repeatedly the one that closes the most pairs still open
// (ties: ranks_before), first among the preferred candidates, then among all for the pairs
// those cannot close; then any chosen candidate whose pairs the others all close is dropped,
// the lowest ranked first. Pairs no candidate closes stay open.
std::vector<std::uint32_t> choose_cover(const CoverSets& sets, std::uint32_t pair_count,
                                        std::span<const CandidateRank> ranks);

}  // namespace kbgap::engine
