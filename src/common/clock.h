// Wall-clock time as kbgap writes it: ISO 8601 UTC to the second ("2026-11-23T15:04:05Z").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kbgap {

std::string utc_now();
std::string utc_time(std::chrono::system_clock::time_point t);
// To the tenth of a microsecond, as Defender writes event times: "2026-11-23T15:04:05.1234567Z".
// Such times compare as strings with each other, not with utc_time's (use utc_time_precise on
// both sides: a whole second is ".0000000").
std::string utc_time_precise(std::chrono::system_clock::time_point t);

// An RFC 3339 date-time ("2026-11-23T15:04:05Z", "2026-11-23t17:04:05.250+02:00") as kbgap
// writes times: UTC to the second, so that times compare as strings. nullopt for anything else,
// a date alone included, and for years before 1970 or after 9999.
std::optional<std::string> utc_time_from_rfc3339(std::string_view text);

// A calendar date, "2026-05-12" (the first ten characters of `text`; a time may follow): nullopt
// when it is not one (2026-02-30 included).
std::optional<std::chrono::sys_days> parse_day(std::string_view text);

}  // namespace kbgap
