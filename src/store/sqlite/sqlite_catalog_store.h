// The catalog in an SQLite file (WAL): the embedded default of kbgap.
#pragma once

#include <memory>
#include <string>

#include "store/catalog_store.h"
#include "store/sqlite/sqlite_db.h"

namespace kbgap::store::sqlite {

class SqliteCatalogStore final : public catalog::CatalogStore {
 public:
  // Opens or creates the database at `path` and brings its schema up to date.
  static Result<std::unique_ptr<SqliteCatalogStore>> open(const std::string& path);

  Result<std::unique_ptr<catalog::CatalogTransaction>> begin() override;
  Result<catalog::CatalogStats> stats() override;
  Result<std::vector<catalog::StoredDocument>> documents() override;
  Result<std::vector<catalog::ImportRecord>> imports() override;
  Result<std::map<std::string, std::string>> listed_releases() override;
  Result<void> record_listed_release(std::string_view id, std::string_view listed) override;
  Result<std::vector<catalog::KbRemediation>> kb_remediations(catalog::KbNumber kb) override;
  Result<catalog::CatalogData> load() override;

 private:
  explicit SqliteCatalogStore(Database db) : db_(std::move(db)) {}
  Database db_;
};

// Applies the numbered migrations in src/store/sqlite/migrations that the file lacks.
Result<void> migrate(Database& db);

}  // namespace kbgap::store::sqlite
