#include "store/postgres/pg_shared_counters.h"

#include <fmt/format.h>

#include <algorithm>
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
  // Counters that changed are added to, in key order: two servers lock the rows they share in
  // one order and never deadlock. Those that did not are only read (no new row version).
  std::vector<const Add*> changed;
  std::vector<std::string_view> unchanged;
  for (const Add& a : adds) {
    if (a.key.find('\0') != std::string::npos) continue;  // not text PostgreSQL can hold
    if (a.delta != 0) {
      changed.push_back(&a);
    } else {
      unchanged.push_back(a.key);
    }
  }
  std::sort(changed.begin(), changed.end(),
            [](const Add* x, const Add* y) { return x->key < y->key; });
  std::unordered_map<std::string, std::int64_t> totals;
  if (!changed.empty()) {
    std::vector<std::string_view> keys;
    std::string deltas = "{", expires = "{";
    for (const Add* a : changed) {
      keys.push_back(a->key);
      if (deltas.size() > 1) {
        deltas += ',';
        expires += ',';
      }
      deltas += std::to_string(a->delta);
      expires += std::to_string(a->expires);
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
    for (int i = 0; i < rows->size(); ++i) totals[rows->text(i, 0)] = rows->integer(i, 1);
  }
  if (!unchanged.empty()) {
    auto rows = c_.query("SELECT key, count FROM shared_counters WHERE key = ANY($1::text[])",
                         {text_array(unchanged)});
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) totals[rows->text(i, 0)] = rows->integer(i, 1);
  }
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
