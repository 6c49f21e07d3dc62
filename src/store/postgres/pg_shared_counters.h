// Shared counters in PostgreSQL: one statement adds a server's counts and returns the totals.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "store/postgres/pg_db.h"
#include "store/shared_counters.h"

namespace kbgap::store::postgres {

class PgSharedCounters final : public SharedCounters {
 public:
  static Result<std::unique_ptr<PgSharedCounters>> open(const std::string& url);
  // Not thread-safe: one caller (serve's exchange thread).
  Result<std::vector<std::int64_t>> add(const std::vector<Add>& adds) override;

 private:
  explicit PgSharedCounters(Connection c) : c_(std::move(c)) {}
  Connection c_;
  std::chrono::steady_clock::time_point last_cleanup_{};
};

}  // namespace kbgap::store::postgres
