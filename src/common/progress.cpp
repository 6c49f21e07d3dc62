// Terminal progress bar on stderr.
#include "common/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace kbgap {

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled) {}

ProgressBar::~ProgressBar() {
  finish();
}

bool ProgressBar::interactive() {
  const char* ci = std::getenv("CI");
  return isatty(STDERR_FILENO) == 1 &&
         (ci == nullptr || *ci == '\0' || std::string_view(ci) == "false");
}

void ProgressBar::update(std::uint64_t done, std::uint64_t total, std::string_view detail) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  double fraction = total == 0 ? 0.0 : static_cast<double>(done) / static_cast<double>(total);
  if (fraction > 1.0) fraction = 1.0;
  int filled = static_cast<int>(fraction * kWidth);
  fmt::print(stderr, "\r\033[K{} [{:=<{}}{: <{}}] {:3.0f}% {}", label_, "", filled, "",
             kWidth - filled, fraction * 100, detail.substr(0, 40));
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!drawn_) return;
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace kbgap
