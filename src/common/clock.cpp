#include "common/clock.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <cctype>
#include <charconv>

namespace kbgap {

std::string utc_time(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(t));
}

std::string utc_time_precise(std::chrono::system_clock::time_point t) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  const auto ticks =
      std::chrono::duration_cast<std::chrono::duration<std::int64_t, std::ratio<1, 10000000>>>(
          t - seconds);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:07}Z", seconds, ticks.count());
}

std::string utc_now() {
  return utc_time(std::chrono::system_clock::now());
}

std::optional<std::string> utc_time_from_rfc3339(std::string_view s) {
  std::size_t pos = 0;
  // `width` digits at pos, or -1.
  auto digits = [&](std::size_t width) -> int {
    if (pos + width > s.size()) return -1;
    int v = 0;
    for (std::size_t i = 0; i < width; ++i) {
      const char c = s[pos + i];
      if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
      v = v * 10 + (c - '0');
    }
    pos += width;
    return v;
  };
  auto expect = [&](auto accepts) {
    if (pos >= s.size() || !accepts(s[pos])) return false;
    ++pos;
    return true;
  };
  auto is = [](char want) { return [want](char c) { return c == want; }; };
  const int year = digits(4);
  if (year < 0 || !expect(is('-'))) return std::nullopt;
  const int month = digits(2);
  if (month < 0 || !expect(is('-'))) return std::nullopt;
  const int day = digits(2);
  if (day < 0 || !expect([](char c) { return c == 'T' || c == 't' || c == ' '; })) {
    return std::nullopt;
  }
  const int hour = digits(2);
  if (hour < 0 || !expect(is(':'))) return std::nullopt;
  const int minute = digits(2);
  if (minute < 0 || !expect(is(':'))) return std::nullopt;
  int second = digits(2);
  if (second < 0) return std::nullopt;
  if (pos < s.size() && s[pos] == '.') {  // a fraction, dropped
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
    if (pos == start) return std::nullopt;
  }
  int offset_minutes = 0;
  if (expect([](char c) { return c == 'Z' || c == 'z'; })) {
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    const int oh = digits(2);
    if (oh < 0 || !expect(is(':'))) return std::nullopt;
    const int om = digits(2);
    if (om < 0 || oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{std::chrono::year(year),
                            std::chrono::month(static_cast<unsigned>(month)),
                            std::chrono::day(static_cast<unsigned>(day))};
  // 60 is a leap second (RFC 3339 §5.6): kbgap's clock has none, so it is the minute's last.
  // Second 60 only as a leap second: the last of a day (in its own offset: 23:59:60).
  if (!date.ok() || hour > 23 || minute > 59 || second > 60 ||
      (second == 60 && (hour != 23 || minute != 59))) {
    return std::nullopt;
  }
  if (second == 60) second = 59;
  // In seconds, not system_clock's nanoseconds, which end in 2262.
  const sys_seconds t =
      sys_days(date) + hours(hour) + minutes(minute) + seconds(second) - minutes(offset_minutes);
  const sys_days utc_day = floor<days>(t);
  const year_month_day utc_date(utc_day);
  if (utc_date.year() < std::chrono::year(1970) || utc_date.year() > std::chrono::year(9999)) {
    return std::nullopt;
  }
  const hh_mm_ss time_of_day(t - utc_day);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(utc_date.year()),
                     static_cast<unsigned>(utc_date.month()), static_cast<unsigned>(utc_date.day()),
                     time_of_day.hours().count(), time_of_day.minutes().count(),
                     time_of_day.seconds().count());
}

std::optional<std::chrono::sys_days> parse_day(std::string_view text) {
  namespace chr = std::chrono;
  int y = 0;
  unsigned m = 0, d = 0;
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  auto number = [&](std::size_t at, std::size_t n, auto& out) {
    auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + n, out);
    return ec == std::errc() && p == text.data() + at + n;
  };
  if (!number(0, 4, y) || !number(5, 2, m) || !number(8, 2, d)) return std::nullopt;
  const chr::year_month_day ymd{chr::year{y}, chr::month{m}, chr::day{d}};
  if (!ymd.ok()) return std::nullopt;
  return chr::sys_days{ymd};
}

}  // namespace kbgap
