// Fleet benchmark: a synthetic fleet made from the real inventories, products, cumulative-update
// lines and KBs of the bundled catalog, evaluated end to end. Devices with the same state (OS
// products, installed KBs that matter, revision) share one evaluation, as a real fleet's do.
// Usage: fleet_bench [devices] [threads]   (defaults: 1000000, all cores)
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "catalog/importer.h"
#include "engine/evaluate.h"
#include "inventory/inventory_reader.h"
#include "store/sqlite/sqlite_catalog_store.h"

using namespace kbgap;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

long peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::stoul(argv[1]) : 1000000;
  const unsigned threads = argc > 2 ? static_cast<unsigned>(std::stoul(argv[2]))
                                    : std::max(1u, std::thread::hardware_concurrency());
  auto t0 = std::chrono::steady_clock::now();
  auto store = store::sqlite::SqliteCatalogStore::open(":memory:");
  if (!store || !catalog::ensure_catalog(**store, nullptr)) return 1;
  auto data = (*store)->load();
  if (!data) return 1;
  const engine::CatalogIndex index = engine::CatalogIndex::build(*data);
  data = catalog::CatalogData{};
  std::printf("catalog loaded and indexed in %.2f s\n", seconds_since(t0));

  // Templates: the real devices whose OS the catalog covers.
  std::vector<inventory::Device> templates;
  for (const auto& e : std::filesystem::directory_iterator(KBGAP_SOURCE_DIR "/data/inventories")) {
    if (e.path().extension() != ".txt" || e.path().filename() == "LICENSE.txt" ||
        e.path().string().find("_qfe") != std::string::npos) {
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = inventory::read_inventory(ss.str(), e.path().filename().string());
    if (r && !engine::device_products(index, r->front().device).empty()) {
      templates.push_back(r->front().device);
    }
  }
  // For each template: its OS line (cumulative updates) and the other KBs of its products.
  struct Shape {
    std::vector<engine::KbNumber> line, others;
  };
  std::vector<Shape> shapes;
  for (const auto& d : templates) {
    Shape s;
    for (engine::Index p : engine::device_products(index, d)) {
      const auto& product = index.products()[p];
      if (product.role == engine::ProductRole::kOperatingSystem && product.line >= 0 &&
          s.line.empty()) {
        for (engine::Index kb : index.line(product.line)) s.line.push_back(index.kbs()[kb].kb);
      }
      for (const auto& f : product.fixes) {
        if (!f.cumulative) s.others.push_back(index.kbs()[f.kb].kb);
      }
    }
    shapes.push_back(std::move(s));
  }

  // The fleet: a template, the newest cumulative update installed (skewed to recent ones, as
  // fleets are), and up to three of its other KBs.
  auto t1 = std::chrono::steady_clock::now();
  std::vector<inventory::Device> fleet(count);
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t t = rng() % templates.size();
    inventory::Device d = templates[t];
    d.installed_kbs.clear();
    const Shape& s = shapes[t];
    if (!s.line.empty()) {
      const std::size_t back = std::min<std::size_t>(s.line.size() - 1, rng() % 13);
      d.installed_kbs.push_back(s.line[s.line.size() - 1 - back]);
    }
    for (int k = static_cast<int>(rng() % 4); k > 0 && !s.others.empty(); --k) {
      d.installed_kbs.push_back(s.others[rng() % s.others.size()]);
    }
    inventory::finish_device(d, "");
    d.id = std::to_string(i);
    fleet[i] = std::move(d);
  }
  std::printf("%zu devices generated from %zu real templates in %.2f s\n", count, templates.size(),
              seconds_since(t1));

  // Evaluate: one evaluation per distinct state, shared by the devices in that state.
  auto t2 = std::chrono::steady_clock::now();
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<const engine::Evaluation>> cache;
  std::atomic<std::size_t> next{0}, missing_total{0}, evaluations{0};
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < count;) {
      const inventory::Device& d = fleet[i];
      std::string key =
          fmt::format("{}|{}|{}|{}", d.os_name, d.build, static_cast<int>(d.architecture),
                      fmt::join(d.installed_kbs, ","));
      std::shared_ptr<const engine::Evaluation> ev;
      {
        std::lock_guard lock(mutex);
        auto it = cache.find(key);
        if (it != cache.end()) ev = it->second;
      }
      if (!ev) {
        ev = std::make_shared<engine::Evaluation>(engine::evaluate(index, d, {}));
        ++evaluations;
        std::lock_guard lock(mutex);
        cache.emplace(key, ev);
      }
      missing_total += ev->missing.size();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  const double eval_s = seconds_since(t2);
  std::printf(
      "evaluated %zu devices in %.2f s with %u threads (%zu distinct states evaluated, %.1f "
      "missing KBs per device); peak RSS %ld MiB\n",
      count, eval_s, threads, evaluations.load(),
      static_cast<double>(missing_total.load()) / static_cast<double>(count), peak_rss_mib());
  return 0;
}
