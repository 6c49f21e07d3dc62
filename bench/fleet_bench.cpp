// Fleet benchmark: a synthetic fleet made from the real inventories, products, cumulative-update
// lines and KBs of the bundled catalog, evaluated end to end by engine::Fleet, which shares work
// between devices of one kind and of one state, as a real fleet's are (docs/engine.md).
// With "changes" as third argument, it then times the delta export's change log
// (server/change_log.h) on that fleet as the server holds it: a write of 10,000 of its devices,
// the catalog read again, one CVE restated, and the newest month added: each snapshot built as
// the server builds it, then diffed (only the devices a new catalog touches are compared).
// With "write" as third argument, it times a write of 10,000 devices (5,000 of them new) into
// that fleet as the server takes it (docs/scaling.md, "Writes cost the batch"): the snapshot
// brought up to date from the batch alone (FleetView::apply), its fleet-wide counts and its change
// log, beside the snapshot built from every device as before; their answers are compared.
// Every device has 30 to 150 installed programs (a mix of real program names: Office MSI and
// Click-to-Run, SQL Server, Exchange, Visual C++ runtimes and the usual third-party programs),
// which the engine matches to catalog products; "bare" as third argument leaves them out, to
// compare.
// Usage: fleet_bench [devices] [threads] [changes|write|bare]   (defaults: 1000000, all cores)
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include "engine/evaluate.h"
#include "engine/fleet.h"
#include "inventory/inventory_reader.h"
#include "server/change_log.h"
#include "server/fleet_view.h"
#include "store/sqlite/sqlite_catalog_store.h"
#include "update/importer.h"

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
  const bool changes = argc > 3 && std::string_view(argv[3]) == "changes";
  const bool write = argc > 3 && std::string_view(argv[3]) == "write";
  const bool bare = argc > 3 && std::string_view(argv[3]) == "bare";
  if (!changes) data = catalog::CatalogData{};  // the change log's phase revises it
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
    for (engine::ProductIndex p : engine::device_products(index, d)) {
      const auto& product = index.products()[p];
      if (product.role == engine::ProductRole::kOperatingSystem && product.line >= 0 &&
          s.line.empty()) {
        for (engine::KbIndex kb : index.line(product.line)) s.line.push_back(index.kbs()[kb].kb);
      }
      for (const auto& f : product.fixes) {
        if (!f.cumulative) s.others.push_back(index.kbs()[f.kb].kb);
      }
    }
    shapes.push_back(std::move(s));
  }

  std::mt19937_64 rng(42);
  // Installed programs, as the Uninstall keys list them. The Microsoft ones the catalog covers
  // come with some of their own updates installed (Office's by KB, SQL Server by build).
  using inventory::Architecture;
  const std::vector<inventory::InstalledSoftware> others = {
      {"Google Chrome", "Google LLC", "120.0.6099.130", Architecture::kX64},
      {"Mozilla Firefox (x64 en-US)", "Mozilla", "121.0.1", Architecture::kX64},
      {"7-Zip 23.01 (x64)", "Igor Pavlov", "23.01", Architecture::kX64},
      {"Adobe Acrobat Reader DC", "Adobe Systems Incorporated", "23.008.20458", Architecture::kX86},
      {"Notepad++ (64-bit x64)", "Notepad++ Team", "8.6.4", Architecture::kX64},
      {"VLC media player", "VideoLAN", "3.0.20", Architecture::kX64},
      {"Microsoft Edge", "Microsoft Corporation", "120.0.2210.91", Architecture::kX86},
      {"Microsoft Edge WebView2 Runtime", "Microsoft Corporation", "120.0.2210.91",
       Architecture::kX86},
      {"Microsoft Teams", "Microsoft Corporation", "1.6.00.4472", Architecture::kX64},
      {"Microsoft OneDrive", "Microsoft Corporation", "23.246.1127.0002", Architecture::kX64},
      {"Microsoft Update Health Tools", "Microsoft Corporation", "3.74.0.0", Architecture::kX64},
      {"Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33130",
       "Microsoft Corporation", "14.38.33130.0", Architecture::kX64},
      {"Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33130",
       "Microsoft Corporation", "14.38.33130.0", Architecture::kX86},
      {"Microsoft Visual C++ 2013 Redistributable (x64) - 12.0.40664", "Microsoft Corporation",
       "12.0.40664.0", Architecture::kX64},
      {"Microsoft Visual C++ 2010  x64 Redistributable - 10.0.40219", "Microsoft Corporation",
       "10.0.40219", Architecture::kX64},
      {"Microsoft Visual C++ 2008 Redistributable - x86 9.0.30729.6161", "Microsoft Corporation",
       "9.0.30729.6161", Architecture::kX86},
      {"Microsoft .NET Runtime - 8.0.1 (x64)", "Microsoft Corporation", "64.4.23605",
       Architecture::kX64},
      {"Microsoft Windows Desktop Runtime - 8.0.1 (x64)", "Microsoft Corporation", "64.4.23605",
       Architecture::kX64},
      {"Microsoft ODBC Driver 17 for SQL Server", "Microsoft Corporation", "17.10.5.1",
       Architecture::kX64},
      {"Microsoft SQL Server Management Studio - 19.2", "Microsoft Corporation", "16.200.20209.0",
       Architecture::kX86},
      {"Zoom", "Zoom Video Communications, Inc.", "5.17.1", Architecture::kX64},
      {"Git", "The Git Development Community", "2.43.0", Architecture::kX64},
      {"Python 3.12.1 (64-bit)", "Python Software Foundation", "3.12.1150.0", Architecture::kX64},
      {"Java 8 Update 391 (64-bit)", "Oracle Corporation", "8.0.3910.13", Architecture::kX64},
      {"PuTTY release 0.80 (64-bit)", "Simon Tatham", "0.80.0.0", Architecture::kX64},
      {"WinSCP 6.1.2", "Martin Prikryl", "6.1.2", Architecture::kX86},
      {"Cisco AnyConnect Secure Mobility Client", "Cisco Systems, Inc.", "4.10.07073",
       Architecture::kX86},
      {"CrowdStrike Windows Sensor", "CrowdStrike, Inc.", "7.10.17706.0", Architecture::kX86},
      {"Intel(R) Chipset Device Software", "Intel(R) Corporation", "10.1.19444.8378",
       Architecture::kX86},
      {"Realtek High Definition Audio Driver", "Realtek Semiconductor Corp.", "6.0.9235.1",
       Architecture::kX86},
  };
  // A kit's updates are installed as a managed fleet installs them: all those released by the
  // month its OS was last updated (or all of them when the OS has no line).
  struct Kit {
    std::vector<inventory::InstalledSoftware> programs;
    std::vector<std::pair<std::string, engine::KbNumber>> updates;  // (release date, KB), sorted
  };
  auto kbs_of = [&](std::string_view prefix) {
    std::vector<std::pair<std::string, engine::KbNumber>> out;
    for (engine::ProductIndex p : index.product_indices()) {
      if (!index.products()[p].name.starts_with(prefix)) continue;
      for (const auto& f : index.products()[p].fixes) {
        out.emplace_back(index.release_date(f.kb), index.kbs()[f.kb].kb);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<Kit> kits = {
      {{{"Microsoft Office Professional Plus 2016", "Microsoft Corporation", "16.0.4266.1001",
         Architecture::kX86},
        {"Microsoft Office 32-bit Components 2016", "Microsoft Corporation", "16.0.4266.1001",
         Architecture::kX86},
        {"Microsoft Office Shared 32-bit MUI (English) 2016", "Microsoft Corporation",
         "16.0.4266.1001", Architecture::kX86},
        {"Microsoft Word MUI (English) 2016", "", "16.0.4266.1001", Architecture::kX86},
        {"Microsoft Excel MUI (English) 2016", "", "16.0.4266.1001", Architecture::kX86},
        {"Microsoft Outlook MUI (English) 2016", "", "16.0.4266.1001", Architecture::kX86}},
       [&] {
         auto all = kbs_of("Microsoft Office 2016 (32-bit");
         for (std::string_view app :
              {"Word", "Excel", "PowerPoint", "Outlook", "OneNote", "Publisher", "Access"}) {
           auto more = kbs_of(fmt::format("Microsoft {} 2016 (32-bit", app));
           all.insert(all.end(), more.begin(), more.end());
         }
         std::sort(all.begin(), all.end());
         return all;
       }()},
      {{{"Microsoft Office Standard 2013", "Microsoft Corporation", "15.0.4569.1506",
         Architecture::kX64}},
       kbs_of("Microsoft Office 2013 Service Pack 1 (64-bit")},
      {{{"Microsoft 365 Apps for enterprise - en-us", "Microsoft Corporation", "16.0.17126.20132",
         Architecture::kX64}},
       {}},
      {{{"Microsoft Office Professional Plus 2019 - en-us", "Microsoft Corporation",
         "16.0.10404.20013", Architecture::kX64}},
       {}},
  };
  const std::vector<std::string> sql_builds = {"15.0.2000.5", "15.0.2104.1", "15.0.4326.1",
                                               "15.0.4360.2", "15.0.4435.7"};
  auto add_software = [&](inventory::Device& d, const std::string& patched) {
    if (bare) return;
    const std::size_t n = 30 + rng() % 121;
    d.software.reserve(n);
    if (rng() % 10 < 7) {
      const Kit& kit = kits[rng() % kits.size()];
      d.software.insert(d.software.end(), kit.programs.begin(), kit.programs.end());
      for (const auto& [date, kb] : kit.updates) {
        if (!patched.empty() && date > patched) break;
        d.installed_kbs.push_back(kb);
      }
    }
    if (rng() % 20 == 0) {
      d.software.push_back({"SQL Server 2019 Database Engine Services", "Microsoft Corporation",
                            sql_builds[rng() % sql_builds.size()], Architecture::kX64});
      d.software.push_back({"SQL Server 2019 Common Files", "Microsoft Corporation", "15.0.2000.5",
                            Architecture::kX64});
    }
    // The rest: the usual programs, and numbered line-of-business ones.
    while (d.software.size() < n) {
      if (rng() % 3 == 0) {
        d.software.push_back(others[rng() % others.size()]);
      } else {
        const std::size_t k = rng() % 5000;
        d.software.push_back({fmt::format("Contoso Line of Business App {}", k), "Contoso Ltd.",
                              fmt::format("{}.{}.{}", k % 7, k % 13, k), Architecture::kX86});
      }
    }
  };

  // The fleet: a template, the newest cumulative update installed (skewed to recent ones, as
  // fleets are), and up to three of its other KBs. Devices go into the fleet as they are made;
  // every 997th is kept to check the fleet's answers against evaluate().
  auto t1 = std::chrono::steady_clock::now();
  engine::Fleet fleet(index);
  std::vector<inventory::Device> kept;  // for the change log's phase
  std::vector<std::pair<std::uint32_t, inventory::Device>> samples;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t t = rng() % templates.size();
    inventory::Device d = templates[t];
    d.installed_kbs.clear();
    const Shape& s = shapes[t];
    std::string patched;  // the release date of its newest cumulative update
    if (!s.line.empty()) {
      const std::size_t back = std::min<std::size_t>(s.line.size() - 1, rng() % 13);
      d.installed_kbs.push_back(s.line[s.line.size() - 1 - back]);
      patched = index.release_date(*index.find_kb(d.installed_kbs.back()));
    }
    for (int k = static_cast<int>(rng() % 4); k > 0 && !s.others.empty(); --k) {
      d.installed_kbs.push_back(s.others[rng() % s.others.size()]);
    }
    add_software(d, patched);
    inventory::finish_device(d, "");
    const std::uint32_t number = fleet.add(d);
    if (changes || write) {
      d.id = fmt::format("{:040x}", i * 2);  // in id order, as the store lists them
      d.computer_dns_name = fmt::format("bench-{}", i);
      kept.push_back(d);
    }
    if (i % 997 == 0) samples.emplace_back(number, std::move(d));
  }
  std::printf("%zu devices made from %zu real templates and added in %.2f s (%zu kinds)\n", count,
              templates.size(), seconds_since(t1), fleet.kind_count());

  auto t2 = std::chrono::steady_clock::now();
  engine::Fleet::Options options;
  options.threads = threads;
  const engine::FleetResult result = fleet.evaluate(options);
  const double eval_s = seconds_since(t2);
  std::size_t missing_total = 0;
  for (std::uint32_t d = 0; d < count; ++d) missing_total += result.missing_count(d);
  std::printf(
      "evaluated %zu devices in %.2f s with %u threads (%zu distinct device states, %zu component "
      "evaluations, %.1f missing KBs per device); peak RSS %ld MiB\n",
      count, eval_s, threads, result.distinct_states(), result.component_evaluations(),
      static_cast<double>(missing_total) / static_cast<double>(count), peak_rss_mib());

  // The fleet's answers are evaluate()'s.
  std::size_t differ = 0;
  for (const auto& [number, device] : samples) {
    const engine::Evaluation one = engine::evaluate(index, device, {});
    const engine::Evaluation many = result.evaluation(number);
    auto kbs = [](const engine::Evaluation& e) {
      std::vector<std::tuple<engine::KbNumber, std::vector<std::string>, std::vector<std::string>>>
          out;
      for (const auto& m : e.missing) out.emplace_back(m.kb, m.cves, m.products_names);
      return out;
    };
    if (kbs(one) != kbs(many) || one.open_cves != many.open_cves) ++differ;
  }
  std::printf("checked %zu sampled devices against evaluate(): %zu differ\n", samples.size(),
              differ);
  if (changes) {
    std::shared_ptr<const engine::CatalogIndex> shared(&index, [](const engine::CatalogIndex*) {});
    auto t = std::chrono::steady_clock::now();
    auto before = server::FleetView::build(shared, kept, 1, threads);
    std::printf(
        "change log: the fleet's snapshot built from scratch in %.2f s (every device evaluated)\n",
        seconds_since(t));
    // The snapshot the server would serve next (built and timed), diffed with `from`.
    auto diff = [&](const char* what, const server::FleetView& from,
                    std::shared_ptr<const engine::CatalogIndex> catalog,
                    const std::vector<inventory::Device>& devices) {
      auto t = std::chrono::steady_clock::now();
      const auto after = server::FleetView::build(std::move(catalog), devices, 2, threads, &from);
      const double build_s = seconds_since(t);
      std::size_t sets = 0, changed = 0;
      t = std::chrono::steady_clock::now();
      auto found = server::diff_snapshots(
          from, *after,
          [&](std::vector<store::ChangeSet>& c) {
            for (const auto& s : c) {
              ++sets;
              changed += s.devices.size();
            }
            return ok_result();
          },
          threads);
      std::printf(
          "change log, %s: snapshot built in %.2f s (%zu devices evaluated, %zu taken from the "
          "snapshot before), %.2f s to diff %zu devices (%zu compared; %zu products touched): %zu "
          "changes, %zu devices in %zu change sets; peak RSS %ld MiB\n",
          what, build_s, count - after->result().reused_devices(), after->result().reused_devices(),
          seconds_since(t), count, found ? found->compared : 0, found ? found->touched_products : 0,
          found ? found->changes : 0, changed, sets, peak_rss_mib());
    };
    {  // 10,000 devices install their line's newest update
      std::vector<inventory::Device> written = kept;
      for (std::size_t k = 0; k < 10000 && k < written.size(); ++k) {
        inventory::Device& d = written[rng() % written.size()];
        for (std::size_t t = 0; t < templates.size(); ++t) {
          if (templates[t].os_name == d.os_name && !shapes[t].line.empty()) {
            d.installed_kbs.push_back(shapes[t].line.back());
            std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
            break;
          }
        }
      }
      diff("a write of 10,000 devices", *before, shared, written);
    }
    diff("the catalog read again", *before,
         std::make_shared<const engine::CatalogIndex>(engine::CatalogIndex::build(*data)), kept);
    // The newest month with KB fixes, and the first of its CVEs (by id) that has one.
    const catalog::StoredDocument* newest = nullptr;
    for (const auto& d : data->documents) {
      if (d.kb_fixes > 0 && (!newest || d.initial_release > newest->initial_release)) newest = &d;
    }
    std::string cve;
    for (const auto& f : data->fixes) {
      if (f.document_id == newest->id && (cve.empty() || f.cve < cve)) cve = f.cve;
    }
    {  // MSRC's commonest revision: a CVE restated (here: exploited)
      catalog::CatalogData revised = *data;
      for (auto& c : revised.cves) {
        if (c.id == cve) c.exploited = !c.exploited.value_or(false);
      }
      diff(fmt::format("{} of {} restated", cve, newest->id).c_str(), *before,
           std::make_shared<const engine::CatalogIndex>(engine::CatalogIndex::build(revised)),
           kept);
    }
    {  // a new Patch Tuesday: the catalog without its newest month, then with it
      catalog::CatalogData older = *data;
      std::erase_if(older.fixes, [&](const auto& f) { return f.document_id == newest->id; });
      auto older_view = server::FleetView::build(
          std::make_shared<const engine::CatalogIndex>(engine::CatalogIndex::build(older)), kept, 1,
          threads);
      before.reset();
      diff(fmt::format("{} added", newest->id).c_str(), *older_view, shared, kept);
    }
  }
  if (write) {
    std::shared_ptr<const engine::CatalogIndex> shared(&index, [](const engine::CatalogIndex*) {});
    auto t = std::chrono::steady_clock::now();
    auto before = server::FleetView::build(shared, kept, 1, threads);
    (void)before->facts();
    std::printf("write: the fleet's snapshot built from scratch in %.2f s; peak RSS %ld MiB\n",
                seconds_since(t), peak_rss_mib());
    // 5,000 devices install their line's newest update; 5,000 new ones (odd ids: between the
    // others) join. In id order, as the store lists what changed.
    std::vector<inventory::Device> batch;
    for (std::size_t k = 0; k < 5000 && k < kept.size(); ++k) {
      inventory::Device d = kept[rng() % kept.size()];
      for (std::size_t s = 0; s < templates.size(); ++s) {
        if (templates[s].os_name == d.os_name && !shapes[s].line.empty()) {
          d.installed_kbs.push_back(shapes[s].line.back());
          std::sort(d.installed_kbs.begin(), d.installed_kbs.end());
          d.installed_kbs.erase(std::unique(d.installed_kbs.begin(), d.installed_kbs.end()),
                                d.installed_kbs.end());
          break;
        }
      }
      batch.push_back(std::move(d));
    }
    for (std::size_t k = 0; k < 5000; ++k) {
      inventory::Device d = kept[rng() % kept.size()];
      d.id = fmt::format("{:040x}", (rng() % kept.size()) * 2 + 1);
      d.computer_dns_name = "new-" + d.id.substr(30);
      batch.push_back(std::move(d));
    }
    std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    batch.erase(std::unique(batch.begin(), batch.end(),
                            [](const auto& a, const auto& b) { return a.id == b.id; }),
                batch.end());
    const std::vector<std::string> removed = {kept[1].id, kept[2].id};
    for (int run = 0; run < 3; ++run) {
      t = std::chrono::steady_clock::now();
      auto applied = server::FleetView::apply(*before, batch, removed, 2, threads);
      const double apply_s = seconds_since(t);
      t = std::chrono::steady_clock::now();
      (void)applied->facts();
      const double facts_s = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::size_t rows = 0;
      auto found = server::diff_snapshots(
          *before, *applied,
          [&](std::vector<store::ChangeSet>& c) {
            for (const auto& s : c) rows += s.rows() * s.devices.size();
            return ok_result();
          },
          threads);
      const double diff_s = seconds_since(t);
      // The same fleet built from scratch: every device read and evaluated again.
      std::vector<inventory::Device> all;
      all.reserve(applied->devices().size());
      for (std::uint32_t d = 0; d < applied->devices().size(); ++d) {
        all.push_back(applied->devices()[d]);
      }
      t = std::chrono::steady_clock::now();
      auto rebuilt = server::FleetView::build(shared, std::move(all), 2, threads);
      const double build_s = seconds_since(t);
      std::size_t differ_write = 0;
      for (std::uint32_t d = 0; d < applied->devices().size(); d += 97) {
        if (*applied->missing_kbs_value(d) != *rebuilt->missing_kbs_value(d)) ++differ_write;
      }
      if (applied->facts().rows() != rebuilt->facts().rows()) ++differ_write;
      differ += differ_write;
      std::printf(
          "write of %zu devices (%zu removed) into %zu, run %d: snapshot and counts brought up "
          "to date in %.2f s (counts%s ready after: %.2f s), its change log (%zu rows) in %.2f s; "
          "built from scratch: %.2f s; %zu of the sampled answers differ; peak RSS %ld MiB\n",
          batch.size(), removed.size(), before->devices().size(), run + 1, apply_s,
          applied->build_stats().facts_updated ? "" : " not", facts_s, found ? rows : 0, diff_s,
          build_s, differ_write, peak_rss_mib());
    }
  }
  return differ == 0 ? 0 : 1;
}
