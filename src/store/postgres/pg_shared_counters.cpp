#include "store/postgres/pg_shared_counters.h"

#include <fmt/format.h>

#include <unordered_map>

namespace kbgap::store::postgres {

Result<std::unique_ptr<PgSharedCounters>> PgSharedCounters::open(const std::string& url) {
  auto c = Connection::open(url);
  if (!c) return c.error();
  KBGAP_TRY(migrate(*c));
  return std::unique_ptr<PgSharedCounters>(new PgSharedCounters(std::move(*c)));
}

Result<std::vector<std::int64_t>> PgSharedCounters::add(const std::vector<Add>& adds) {
  if (adds.empty()) return std::vector<std::int64_t>();
  std::vector<std::string_view> keys;
  std::string deltas = "{", expires = "{";
  for (const Add& a : adds) {
    keys.push_back(a.key);
    if (deltas.size() > 1) {
      deltas += ',';
      expires += ',';
    }
    deltas += std::to_string(a.delta);
    expires += std::to_string(a.expires);
  }
  deltas += '}';
  expires += '}';
  auto rows = c_.query(
      "INSERT INTO shared_counters (key, count, expires)"
      " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
      " ON CONFLICT (key) DO UPDATE SET count = shared_counters.count + excluded.count"
      " RETURNING key, count",
      {text_array(keys), deltas, expires});
  if (!rows) return rows.error();
  std::unordered_map<std::string, std::int64_t> totals;
  for (int i = 0; i < rows->size(); ++i) totals[rows->text(i, 0)] = rows->integer(i, 1);
  std::vector<std::int64_t> out;
  out.reserve(adds.size());
  for (const Add& a : adds) out.push_back(totals[a.key]);
  // Windows that are over, now and then.
  if (const auto now = std::chrono::steady_clock::now();
      now - last_cleanup_ > std::chrono::seconds(60)) {
    last_cleanup_ = now;
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    (void)c_.query("DELETE FROM shared_counters WHERE expires < $1", {std::to_string(unix_now)});
  }
  return out;
}

}  // namespace kbgap::store::postgres
