// The catalog in PostgreSQL, shared by every server on the database (docs/scaling.md).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/catalog_store.h"
#include "store/postgres/pg_db.h"

namespace kbgap::store::postgres {

class PgCatalogStore final : public catalog::CatalogStore {
 public:
  // Connects to `url` and brings the schema up to date.
  static Result<std::unique_ptr<PgCatalogStore>> open(const std::string& url);

  // One import at a time across every server (a transaction-scoped advisory lock): two servers
  // that start together on an empty database do not both import the bundled months.
  Result<std::unique_ptr<catalog::CatalogTransaction>> begin() override;
  Result<catalog::CatalogStats> stats() override;
  Result<std::vector<catalog::StoredDocument>> documents() override;
  Result<std::vector<catalog::ImportRecord>> imports() override;
  Result<std::map<std::string, std::string>> listed_releases() override;
  Result<void> record_listed_release(std::string_view id, std::string_view listed) override;
  Result<std::vector<catalog::KbRemediation>> kb_remediations(catalog::KbNumber kb) override;
  // Read in one REPEATABLE READ transaction: an import committing meanwhile is all or nothing.
  Result<catalog::CatalogData> load() override;

 private:
  explicit PgCatalogStore(Connection c) : c_(std::move(c)) {}
  Connection c_;
};

}  // namespace kbgap::store::postgres
