#include "engine_support.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "catalog/bundled_catalog.h"
#include "common/digest.h"
#include "inventory/inventory_reader.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "test_support.h"
#include "update/importer.h"

namespace kbgap::test {

namespace {

engine::CatalogIndex import_full_catalog() {
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  if (!store) throw std::runtime_error(store.error().message);
  auto imported = catalog::ensure_catalog(**store, nullptr);
  if (!imported) throw std::runtime_error(imported.error().message);
  auto data = (*store)->load();
  if (!data) throw std::runtime_error(data.error().message);
  return engine::CatalogIndex::build(*data);
}

}  // namespace

const engine::CatalogIndex& full_catalog() {
  // Every test runs in a process of its own (gtest_discover_tests), and importing the bundled
  // catalog takes seconds (more under sanitizers): the first process keeps the index's snapshot
  // beside the test binary, tagged with what it was built from, and the others read it.
  static const engine::CatalogIndex index = [] {
    // The tag: the bundled data, and this test binary (its size and time), which holds the code
    // that reads and indexes them.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    std::string tag =
        fmt::format("{}:{}:{}", self.string(), ec ? 0 : std::filesystem::file_size(self, ec),
                    ec ? 0 : std::filesystem::last_write_time(self, ec).time_since_epoch().count());
    for (auto bytes : {catalog::bundled_catalog_archive(), catalog::bundled_wesng_archive()}) {
      tag +=
          sha256_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    const std::string fingerprint = sha256_hex(tag);
    const std::filesystem::path cache =
        std::filesystem::path(KBGAP_TEST_CACHE_DIR) / "full-catalog.index";
    if (std::filesystem::exists(cache, ec)) {
      if (auto cached = engine::CatalogIndex::from_snapshot(read_file(cache), fingerprint)) {
        return std::move(*cached);
      }
    }
    engine::CatalogIndex built = import_full_catalog();
    const std::filesystem::path partial = cache.string() + "." + std::to_string(::getpid());
    write_file(partial, built.snapshot(fingerprint));
    std::filesystem::rename(partial, cache, ec);  // atomic: readers see none or all of it
    return built;
  }();
  return index;
}

namespace {

std::vector<inventory::Device> read_devices(const std::filesystem::path& file) {
  auto r = inventory::read_inventory(read_file(file), file.filename().string());
  if (!r) throw std::runtime_error(r.error().message);
  std::vector<inventory::Device> out;
  for (auto& inv : *r) {
    if (inv.has_os) out.push_back(std::move(inv.device));
  }
  return out;
}

}  // namespace

const std::vector<inventory::Device>& real_devices() {
  static const std::vector<inventory::Device> all = [] {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(fs::path(KBGAP_SOURCE_DIR) / "data/inventories")) {
      if (e.path().extension() == ".txt" && e.path().filename() != "LICENSE.txt") {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end());
    std::vector<inventory::Device> out;
    for (const auto& f : files) {
      for (auto& d : read_devices(f)) out.push_back(std::move(d));
    }
    return out;
  }();
  return all;
}

inventory::Device real_device(const std::string& stem, const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(KBGAP_SOURCE_DIR) / folder;
  std::vector<inventory::Inventory> inventories;
  for (const std::string suffix : {"_systeminfo.txt", "_qfe.txt"}) {
    if (!fs::exists(dir / (stem + suffix))) continue;
    auto r = inventory::read_inventory(read_file(dir / (stem + suffix)), stem + suffix);
    if (!r) throw std::runtime_error(r.error().message);
    for (auto& inv : *r) inventories.push_back(std::move(inv));
  }
  auto merged = inventory::merge_inventories(std::move(inventories));
  if (!merged || merged->size() != 1) throw std::runtime_error(stem + ": not one device");
  return merged->front();
}

const engine::MissingKb* find(const engine::Evaluation& ev, engine::KbNumber kb) {
  for (const engine::MissingKb& m : ev.missing) {
    if (m.kb == kb) return &m;
  }
  return nullptr;
}

bool has_kind(const engine::CatalogIndex& c, const inventory::Device& d, engine::KbNumber kb,
              engine::FixKind kind) {
  for (engine::ProductIndex p : engine::device_products(c, d)) {
    for (const engine::ProductFix& f : c.products()[p].fixes) {
      if (c.kbs()[f.kb].kb == kb && f.kind == kind) return true;
    }
  }
  return false;
}

std::string day_before(const std::string& date) {
  using namespace std::chrono;
  const year_month_day ymd{year{std::stoi(date.substr(0, 4))},
                           month{static_cast<unsigned>(std::stoi(date.substr(5, 2)))},
                           day{static_cast<unsigned>(std::stoi(date.substr(8, 2)))}};
  const year_month_day before{sys_days{ymd} - days{1}};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(before.year()),
                     static_cast<unsigned>(before.month()), static_cast<unsigned>(before.day()));
}

}  // namespace kbgap::test
