#include "common/clock.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace kbgap {

std::string utc_time(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

std::string utc_now() {
  return utc_time(std::chrono::system_clock::now());
}

}  // namespace kbgap
