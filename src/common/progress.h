// A progress bar for long work: drawn on a terminal, silent when stderr is not one or under CI.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace kbgap {

class ProgressBar {
 public:
  // `enabled` false draws nothing; interactive() tells whether a person is watching.
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Redraws at most ten times a second.
  void update(std::uint64_t done, std::uint64_t total, std::string_view detail);
  // Clears the bar so that what follows prints on a clean line.
  void finish();

  static bool interactive();  // stderr is a terminal and CI is not set

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace kbgap
