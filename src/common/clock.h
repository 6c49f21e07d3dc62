// Wall-clock time as kbgap writes it: ISO 8601 UTC to the second ("2026-11-23T15:04:05Z").
#pragma once

#include <chrono>
#include <string>

namespace kbgap {

std::string utc_now();
std::string utc_time(std::chrono::system_clock::time_point t);

}  // namespace kbgap
