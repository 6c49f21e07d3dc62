// `kbgap scan`: read inventories, evaluate each device, render table, JSON or CSV.
#include "app/scan_command.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>

#include "api/defender_dto.h"
#include "app/catalog_loader.h"
#include "app/cli_error.h"
#include "app/inventory_files.h"
#include "common/clock.h"
#include "engine/evaluate.h"
#include "engine/software.h"
#include "inventory/inventory_reader.h"
#include "update/freshness.h"

namespace kbgap::app {
namespace {

// "YYYY-MM-DD" with a month and a day that can exist.
bool valid_date(std::string_view s) {
  const int day = engine::day_number(s);  // 20200331, 0 when not a date
  return day != 0 && day / 100 % 100 >= 1 && day / 100 % 100 <= 12 && day % 100 >= 1 &&
         day % 100 <= 31;
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// --explain: how each installed program was judged; those that matched, then the Microsoft
// ones that did not (and how many others the catalog has no product line for).
void print_software(const engine::Evaluation& ev) {
  if (ev.software.empty()) return;
  std::size_t others = 0;
  fmt::print("  software:\n");
  for (const engine::SoftwareReport& r : ev.software) {
    if (!r.matched && r.reason == engine::kNoProductLine) {
      ++others;
      continue;
    }
    fmt::print("    {} {} {}: {}\n", r.matched ? "matched  " : "unmatched", r.name, r.version,
               r.reason);
  }
  if (others > 0) {
    fmt::print("    {} other programs: {}\n", others, engine::kNoProductLine);
  }
}

void print_table(const inventory::Device& d, const engine::Evaluation& ev, bool explain) {
  std::string build = os_build_string(d);
  if (ev.revision_inferred) {
    build =
        fmt::format("{}.{} (revision inferred from the installed updates)", build, *ev.revision);
  }
  fmt::print("{} ({}{}{}, {}, {} installed KBs) from {}\n", d.computer_dns_name,
             d.os_family.empty() ? d.os_name : d.os_family, d.version.empty() ? "" : " ", d.version,
             build, d.installed_kbs.size(), d.source);
  for (const std::string& note : ev.notes) fmt::print("  note: {}\n", note);
  fmt::print("  {} missing KBs closing {} open CVEs\n", ev.missing.size(), ev.open_cves.size());
  if (ev.missing.empty()) return;
  fmt::print("  {:<10} {:<10} {:>5}  {:<40} {}\n", "KB", "released", "CVEs", "products", "name");
  for (const engine::MissingKb& m : ev.missing) {
    fmt::print("  KB{:<8} {:<10} {:>5}  {:<40} {}\n", m.kb, m.release_date, m.cves.size(),
               fmt::format("{}", fmt::join(m.products_names, ",")), m.name);
    for (const std::string& line : m.explanation) fmt::print("      {}\n", line);
  }
  if (!explain) return;
  fmt::print("  products matched: {}\n", fmt::join(ev.products, "; "));
  print_software(ev);
}

}  // namespace

namespace {
// See the end of run_scan. Volatile: an optimizer would drop a store nothing reads, and the index
// would no longer be reachable (LeakSanitizer reported it once the ASan build was -O1).
const engine::CatalogIndex* volatile kept_index = nullptr;
}  // namespace

int run_scan(const ScanOptions& options) {
  if (!options.as_of.empty() && !valid_date(options.as_of)) {
    std::fprintf(stderr, "kbgap: --as-of must be a date YYYY-MM-DD, not '%s'\n",
                 options.as_of.c_str());
    return kExitUsage;
  }
  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  std::vector<std::pair<const char*, double>> phases;
  auto phase = [&](const char* name) {
    const auto now = Clock::now();
    phases.emplace_back(name, std::chrono::duration<double, std::milli>(now - started).count());
    started = now;
  };
  auto devices = read_inventory_files(options.inventories);
  if (!devices) return report(devices.error());
  phase("read inventories");

  std::vector<catalog::StoredDocument> documents;
  auto catalog = load_catalog_index(options.data_dir, &documents);
  if (!catalog) return report(catalog.error());
  phase("catalog index");
  // A release newer than kbgap's table: the catalog's fixed builds name it, or nothing does.
  for (inventory::Device& d : *devices) {
    if (!engine::learn_release(*catalog, d)) {
      std::fprintf(stderr,
                   "kbgap: %s: unknown Windows build %s: neither kbgap's table of releases nor "
                   "the catalog's fixed builds know it (import a newer catalog)\n",
                   d.source.c_str(), inventory::os_build_string(d).c_str());
      return kExitBadInput;
    }
  }

  // What the answers can know: the catalog's months, and a warning when it is stale (not with
  // --as-of: a date in the past asks for the catalog as it was).
  const catalog::Freshness fresh = catalog::freshness(documents);
  if (options.as_of.empty()) {
    if (auto warning = fresh.stale_warning(utc_now().substr(0, 10))) {
      std::fprintf(stderr, "kbgap: warning: %s\n", warning->c_str());
    }
  }
  if (options.format == "table") {
    fmt::print("{}{}\n", fresh.summary(),
               options.as_of.empty() ? "" : fmt::format("; judged as of {}", options.as_of));
  }
  engine::EvaluateOptions eval_options{options.as_of, options.explain, engine::Rule::kKbgap};
  if (options.rule == "supersedence") eval_options.rule = engine::Rule::kSupersedenceOnly;
  if (options.rule == "build") eval_options.rule = engine::Rule::kBuildOnly;
  boost::json::array json_devices;
  if (options.format == "csv") {
    fmt::print(
        "deviceId,computerDnsName,source,kb,name,releaseDate,productsNames,cveAddressed,url\n");
  }
  for (const inventory::Device& d : *devices) {
    engine::Evaluation ev = engine::evaluate(*catalog, d, eval_options);
    if (options.format == "table") {
      print_table(d, ev, options.explain);
    } else if (options.format == "csv") {
      for (const engine::MissingKb& m : ev.missing) {
        fmt::print("{},{},{},{},{},{},{},{},{}\n", d.id, csv_field(d.computer_dns_name),
                   csv_field(d.source), m.kb, csv_field(m.name), m.release_date,
                   csv_field(fmt::format("{}", fmt::join(m.products_names, ";"))), m.cves.size(),
                   csv_field(m.url));
      }
    } else {
      boost::json::object body = api::missing_kbs_body(ev, options.base_url);
      if (options.explain) {
        auto& value = body["value"].as_array();
        for (std::size_t i = 0; i < ev.missing.size(); ++i) {
          boost::json::array lines;
          for (const std::string& line : ev.missing[i].explanation) lines.emplace_back(line);
          boost::json::array cves;
          for (const std::string& c : ev.missing[i].cves) cves.emplace_back(c);
          value[i].as_object()["kbgapCves"] = std::move(cves);
          value[i].as_object()["kbgapExplanation"] = std::move(lines);
        }
        boost::json::array software;
        for (const engine::SoftwareReport& r : ev.software) {
          boost::json::array products;
          for (const std::string& p : r.products) products.emplace_back(p);
          software.push_back(boost::json::object{{"name", r.name},
                                                 {"version", r.version},
                                                 {"matched", r.matched},
                                                 {"products", std::move(products)},
                                                 {"reason", r.reason}});
        }
        body["kbgapSoftware"] = std::move(software);
      }
      if (devices->size() == 1) {  // one inventory: the getmissingkbs body itself
        fmt::print("{}\n", boost::json::serialize(body));
        continue;
      }
      boost::json::object entry;
      entry["id"] = d.id;
      entry["computerDnsName"] = d.computer_dns_name;
      entry["source"] = d.source;
      entry["missingKbs"] = std::move(body);
      json_devices.push_back(std::move(entry));
    }
  }
  if (options.format == "json" && devices->size() != 1) {
    boost::json::object out;
    out["devices"] = std::move(json_devices);
    fmt::print("{}\n", boost::json::serialize(out));
  }
  phase("evaluate and print");
  // The process ends here: its index (some 100,000 blocks) is left to the exit, not freed one
  // by one. Reachable from a global, so leak checkers do not report it.
  kept_index = new engine::CatalogIndex(std::move(*catalog));
  if (options.timings) {
    std::string line = "kbgap: timings:";
    for (const auto& [name, ms] : phases) line += fmt::format(" {} {:.1f} ms;", name, ms);
    line.back() = '\n';
    std::fputs(line.c_str(), stderr);
  }
  return kExitOk;
}

}  // namespace kbgap::app
