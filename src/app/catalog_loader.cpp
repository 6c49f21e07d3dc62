// Catalog loading shared by the commands that evaluate devices.
#include "app/catalog_loader.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "app/data_dir.h"
#include "catalog/importer.h"
#include "common/progress.h"

namespace kbgap::app {

Result<engine::CatalogIndex> load_catalog_index(const std::string& data_dir) {
  auto store = open_catalog_store(data_dir);
  if (!store) return store.error();
  {
    ProgressBar bar("importing bundled catalog", ProgressBar::interactive());
    auto start = std::chrono::steady_clock::now();
    auto imported = catalog::ensure_catalog(**store, [&bar](const catalog::ImportProgress& p) {
      bar.update(p.done_bytes, p.total_bytes, fmt::format("{} documents", p.documents));
    });
    bar.finish();
    if (!imported) return imported.error();
    if (!imported->documents.empty()) {
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      std::fprintf(stderr, "kbgap: catalog was empty: imported %zu bundled documents in %.1f s\n",
                   imported->documents.size(), elapsed.count());
    }
  }
  auto data = (*store)->load();
  if (!data) return data.error();
  return engine::CatalogIndex::build(*data);
}

}  // namespace kbgap::app
