// RFC 3339 times as kbgap keeps them: UTC to the second, comparable as strings.
#include "common/clock.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace kbgap
