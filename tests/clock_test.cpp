// RFC 3339 times as kbgap keeps them: UTC to the second, comparable as strings.
#include "common/clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace kbgap {
namespace {

TEST(Clock, Rfc3339TimesBecomeUtcToTheSecond) {
  const std::pair<const char*, const char*> kept[] = {
      {"2026-11-23T15:04:05Z", "2026-11-23T15:04:05Z"},
      {"2026-11-23t15:04:05z", "2026-11-23T15:04:05Z"},
      {"2026-11-23 15:04:05Z", "2026-11-23T15:04:05Z"},
      {"2026-11-23T17:04:05.123456789+02:00", "2026-11-23T15:04:05Z"},
      {"2024-02-29T23:30:00-01:00", "2024-03-01T00:30:00Z"},
      {"1969-12-31T23:30:00-01:00", "1970-01-01T00:30:00Z"},  // 1970 in UTC
      {"9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"},
      {"2016-12-31T23:59:60Z", "2016-12-31T23:59:59Z"},  // a leap second
  };
  for (const auto& [in, out] : kept) EXPECT_EQ(utc_time_from_rfc3339(in), out) << in;
  for (const char* bad :
       {"0000", "", "2026-11-23", "2026-11-23T15:04Z", "2026-11-23T15:04:05",
        "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
        "2026-01-01T12:30:60Z", "1969-12-31T23:59:59Z", "9999-12-31T23:30:00-01:00",
        "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Z ",
        "+2026-01-01T00:00:00Z", "2026-1-01T00:00:00Z"}) {
    EXPECT_EQ(utc_time_from_rfc3339(bad), std::nullopt) << bad;
  }
}

// The change log's times: to the tenth of a microsecond, and in time order as strings, a whole
// second included (".0000000", not the bare second, which would sort after its fractions).
TEST(Clock, PreciseTimesCompareAsStringsInTimeOrder) {
  using namespace std::chrono;
  const sys_days day = year{2026} / November / 23;
  const system_clock::time_point second = day + hours(15) + minutes(4) + seconds(5);
  EXPECT_EQ(utc_time_precise(second), "2026-11-23T15:04:05.0000000Z");
  EXPECT_EQ(utc_time_precise(second + nanoseconds(123456789)), "2026-11-23T15:04:05.1234567Z");
  std::vector<std::string> times;
  for (auto t : {second - nanoseconds(100), second, second + nanoseconds(100),
                 second + milliseconds(999), second + seconds(1), second + hours(24 * 400)}) {
    times.push_back(utc_time_precise(t));
  }
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  EXPECT_EQ(std::adjacent_find(times.begin(), times.end()), times.end());
}

}  // namespace
}  // namespace kbgap
