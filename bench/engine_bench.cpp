// Benchmarks of the missing-KB engine on the real bundled catalog (Google Benchmark).
// Run: build/bench/engine_bench --benchmark_out=bench/results/engine.json
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/evaluate.h"
#include "inventory/inventory_reader.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "update/importer.h"

namespace {

using namespace kbgap;

catalog::CatalogData& catalog_data() {
  static catalog::CatalogData data = [] {
    auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
    auto imported = catalog::ensure_catalog(**store, nullptr);
    if (!imported) throw std::runtime_error(imported.error().message);
    return std::move((*store)->load()).value();
  }();
  return data;
}

const engine::CatalogIndex& index() {
  static engine::CatalogIndex index = engine::CatalogIndex::build(catalog_data());
  return index;
}

std::vector<inventory::Device> real_devices() {
  std::vector<inventory::Device> out;
  for (const auto& e : std::filesystem::directory_iterator(KBGAP_SOURCE_DIR "/data/inventories")) {
    if (e.path().extension() != ".txt" || e.path().string().find("_qfe") != std::string::npos ||
        e.path().filename() == "LICENSE.txt") {
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = inventory::read_inventory(ss.str(), e.path().string());
    if (r) out.push_back(r->front().device);
  }
  return out;
}

void BM_LoadCatalogRows(benchmark::State& state) {
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  (void)catalog::ensure_catalog(**store, nullptr);
  for (auto _ : state) benchmark::DoNotOptimize((*store)->load());
}
BENCHMARK(BM_LoadCatalogRows)->Unit(benchmark::kMillisecond);

void BM_BuildIndex(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(engine::CatalogIndex::build(catalog_data()));
}
BENCHMARK(BM_BuildIndex)->Unit(benchmark::kMillisecond);

void BM_EvaluateRealDevice(benchmark::State& state) {
  static const auto devices = real_devices();
  const auto& d = devices[static_cast<std::size_t>(state.range(0)) % devices.size()];
  state.SetLabel(d.source.substr(d.source.rfind('/') + 1));
  for (auto _ : state) benchmark::DoNotOptimize(engine::evaluate(index(), d, {}));
}
BENCHMARK(BM_EvaluateRealDevice)->DenseRange(0, 40, 1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
