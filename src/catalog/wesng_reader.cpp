// WES-NG's CSV (libcsv, strict RFC 4180 quoting) to catalog documents. Each decision about the
// data is a row in docs/catalog.md, "Before 2016", with the test that pins it.
#include "catalog/wesng_reader.h"

#include <csv.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <regex>
#include <set>

#include "catalog/cvrf_fields.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/text.h"

namespace kbgap::catalog {
namespace {

// WES-NG's columns, in its order (the header is checked).
constexpr std::array<std::string_view, 10> kColumns = {
    "DatePosted",        "CVE",      "BulletinKB", "Title",      "AffectedProduct",
    "AffectedComponent", "Severity", "Impact",     "Supersedes", "Exploits"};
enum Column { kDate, kCve, kKb, kTitle, kProduct, kComponent, kSeverity, kImpact, kSupersedes };

// Operating systems as WES-NG (MSRC's bulletins) names them: the host of a component row.
bool names_windows(std::string_view name) {
  for (std::string_view p : {"Windows ", "Microsoft Windows "}) {
    if (!name.starts_with(p)) continue;
    const std::string_view rest = name.substr(p.size());
    // Windows 2000 and NT 4.0 are left out: kbgap reads no inventory of theirs.
    for (std::string_view os : {"XP", "Server 20", "Vista", "7 ", "8 ", "8.1 ", "RT", "10 "}) {
      if (rest.starts_with(os)) return true;
    }
  }
  return false;
}

// Parts of Windows itself that every installation of the host has, with no version of their own
// that an inventory would have to show: a fix for them is a fix of the OS.
bool in_box_part(std::string_view component) {
  static constexpr std::string_view kParts[] = {
      "Windows GDI+",
      "Windows ATL Component",
      "Windows Shell",
      "Windows Library Loading",
      "Windows Multimedia Library",
      "DirectShow",
      "DirectWrite",
      "Audio Compression Manager",
      "AVI Filter",
      "Microsoft XML Core Services 3.0",
      "Microsoft DirectX",
      "WordPad",
  };
  return std::find(std::begin(kParts), std::end(kParts), component) != std::end(kParts);
}

struct Placement {
  Placement() = default;
  Placement(std::string n, bool on, std::string s)
      : name(std::move(n)), on_devices(on), shown(std::move(s)) {}
  std::string name;        // the catalog product: "Internet Explorer 11 on Windows 7 for ..."
  bool on_devices = true;  // false: nothing in an inventory shows it (not_on_devices)
  std::string shown;       // for not_on_devices: the component or product named
  std::string skip;        // not imported, and why
};

// A row's product in the catalog's naming (MSRC's: "<component> on <OS>").
Placement place(std::string_view product, std::string_view component) {
  // Some bulletins name the OS as the component and the software as the product.
  if (!component.empty() && names_windows(component) && !names_windows(product)) {
    std::swap(product, component);
  }
  const std::string host(product);
  if (component.empty()) {
    return {host, names_windows(host), host};
  }
  static const std::regex ie(R"(^(?:Windows |Microsoft )?Internet Explorer (\d+)(?:\.0)?$)");
  std::cmatch m;
  if (std::regex_match(component.begin(), component.end(), m, ie)) {
    // Only Internet Explorer 11 is placed on devices: an inventory does not show which version
    // a Windows 7 or Vista machine runs (docs/catalog.md).
    const std::string name = fmt::format("Internet Explorer {} on {}", m[1].str(), host);
    return {name, m[1].str() == "11", std::string(component)};
  }
  if (component.starts_with("Microsoft .NET Framework 4")) {
    // The .NET Framework 4.x versions are in-place upgrades of one another ("4.5 ... replaces
    // the .NET Framework 4"): a Windows 8.1 machine's in-box 4.5.1 has most often become 4.8,
    // and its updates of 2014-2015 do not apply (a Server 2012 R2 machine current to March 2019
    // was offered none of them). An inventory does not show which 4.x a machine runs.
    Placement p;
    p.skip = "the .NET Framework 4.x (replaced by in-place upgrades; no inventory shows which)";
    return p;
  }
  if (component.starts_with("Microsoft .NET Framework ")) {
    return {fmt::format("{} on {}", component, host), names_windows(host), std::string(component)};
  }
  if (component == "Adobe Flash Player") {
    return {"Adobe Flash Player on " + host, names_windows(host), std::string(component)};
  }
  if (component == "Microsoft Edge") {
    return {"Microsoft Edge (EdgeHTML-based) on " + host, names_windows(host),
            std::string(component)};
  }
  if (names_windows(host) && in_box_part(component)) return {host, true, host};
  return {fmt::format("{} on {}", component, host), false, std::string(component)};
}

// WES-NG writes days as "20151208": "2015-12-08".
std::string iso_day(std::string_view yyyymmdd) {
  return fmt::format("{}-{}-{}", yyyymmdd.substr(0, 4), yyyymmdd.substr(4, 2),
                     yyyymmdd.substr(6, 2));
}

bool valid_day(std::string_view yyyymmdd) {
  return yyyymmdd.size() == 8 &&
         std::all_of(yyyymmdd.begin(), yyyymmdd.end(),
                     [](char c) { return c >= '0' && c <= '9'; }) &&
         parse_day(iso_day(yyyymmdd));
}

// The rows of one day, built into a document.
struct DayBuilder {
  std::string digest_input;
  std::map<std::string, Product> products;  // by id
  // By CVE: the vulnerability, and per KB its fix.
  struct Cve {
    Vulnerability v;
    std::map<std::string, int> impacts;
    std::map<KbNumber, KbFix> fixes;
  };
  std::map<std::string, Cve> cves;
};

class CsvReader {
 public:
  using OnRow = std::function<Result<void>(const std::vector<std::string>&, std::size_t)>;
  // Every unquoted line end is reported (CSV_REPALL_NL), so that blank lines and the LF of a CRLF
  // count as lines; the empty records they make are passed over.
  CsvReader() { csv_init(&parser_, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL); }
  ~CsvReader() { csv_free(&parser_); }
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Calls `on_row(fields, line)` for each record, `line` being the line the record starts on; stops
  // at the first error, its own or on_row's.
  Result<void> parse(std::string_view text, const std::string& where, const OnRow& on_row) {
    State state{{}, 1, &on_row, std::nullopt};
    auto field = [](void* data, std::size_t size, void* self) {
      static_cast<State*>(self)->fields.emplace_back(static_cast<const char*>(data), size);
    };
    auto record = [](int end, void* self) {
      auto* s = static_cast<State*>(self);
      if (!s->fields.empty()) {
        if (!s->error) {
          if (auto r = (*s->on_row)(s->fields, s->line); !r) s->error = r.error();
        }
        // Line ends inside quoted fields move the lines after the record.
        for (const std::string& f : s->fields) s->line += std::count(f.begin(), f.end(), '\n');
      }
      if (end == '\n') ++s->line;
      s->fields.clear();
    };
    const std::size_t done = csv_parse(&parser_, text.data(), text.size(), field, record, &state);
    if (state.error) return *state.error;
    if (done != text.size() || csv_fini(&parser_, field, record, &state) != 0) {
      return invalid_input(fmt::format("{}:{}: not CSV as WES-NG writes it ({})", where, state.line,
                                       csv_strerror(csv_error(&parser_))));
    }
    if (state.error) return *state.error;
    return ok_result();
  }

 private:
  struct State {
    std::vector<std::string> fields;
    std::size_t line;
    const OnRow* on_row;
    std::optional<Error> error;
  };
  csv_parser parser_{};
};

}  // namespace

bool is_wesng_document(std::string_view document_id) {
  return document_id.starts_with(kWesngDocumentPrefix);
}

bool current_wesng_mapping(std::string_view revision) {
  return revision.ends_with(fmt::format(".{}", kWesngMapping));
}

Result<WesngDefinitions> read_wesng(TarZstReader& archive, std::string_view archive_name,
                                    const std::map<std::string, std::string>& product_ids) {
  static const std::regex member_name(R"((?:.*/)?CVEs_(\d{8})\.csv)");
  std::optional<ArchiveMember> csv;
  std::string definitions_day;
  for (;;) {
    auto member = archive.next();
    if (!member) return member.error();
    if (!*member) break;
    std::smatch m;
    if (std::regex_match((*member)->name, m, member_name)) {
      if (csv) {
        return invalid_input(fmt::format("{}: more than one CVEs_YYYYMMDD.csv ({} and {})",
                                         archive_name, csv->name, (*member)->name));
      }
      definitions_day = m[1].str();
      csv = std::move(**member);
    }
  }
  if (!csv) {
    return invalid_input(
        fmt::format("{}: no CVEs_YYYYMMDD.csv in it: not WES-NG's definitions.zip", archive_name));
  }
  if (!valid_day(definitions_day)) {
    return invalid_input(
        fmt::format("{}!{}: the name's date is not a date", archive_name, csv->name));
  }
  auto out = read_wesng_csv(csv->content, fmt::format("{}!{}", archive_name, csv->name),
                            definitions_day, product_ids);
  if (out) out->member = csv->name;
  return out;
}

Result<WesngDefinitions> read_wesng_csv(std::string_view content, const std::string& where,
                                        std::string_view definitions_day,
                                        const std::map<std::string, std::string>& product_ids) {
  static const std::regex cve_id(R"(CVE-\d{4}-\d{4,7})");
  WesngDefinitions out;
  std::map<std::string, DayBuilder> days;
  bool header = true;
  CsvReader reader;
  auto on_row = [&](const std::vector<std::string>& fields, std::size_t line) -> Result<void> {
    if (header) {
      header = false;
      if (fields.size() != kColumns.size() ||
          !std::equal(kColumns.begin(), kColumns.end(), fields.begin())) {
        return invalid_input(fmt::format("{}:{}: the header is not WES-NG's ({})", where, line,
                                         fmt::join(kColumns, ",")));
      }
      return ok_result();
    }
    ++out.rows;
    if (fields.size() != kColumns.size()) {
      return invalid_input(fmt::format("{}:{}: {} fields where WES-NG writes {}", where, line,
                                       fields.size(), kColumns.size()));
    }
    const std::string& date = fields[kDate];
    if (!valid_day(date)) {
      return invalid_input(
          fmt::format("{}:{}: DatePosted '{}' is not a date (YYYYMMDD)", where, line, date));
    }
    if (date >= kWesngBefore) {
      out.skipped.add("posted from April 2016 on: MSRC's own documents cover it");
      return ok_result();
    }
    const KbNumber kb = parse_kb_number(fields[kKb]);
    if (kb == 0) {
      out.skipped.add("no KB number (BulletinKB)");
      return ok_result();
    }
    if (!std::regex_match(fields[kCve], cve_id)) {
      out.skipped.add("no CVE id (a security advisory's row)");
      return ok_result();
    }
    const std::string& product_name = fields[kProduct];
    if (product_name.empty()) {
      out.skipped.add("no AffectedProduct");
      return ok_result();
    }
    const Placement placed = place(product_name, fields[kComponent]);
    if (!placed.skip.empty()) {
      out.skipped.add(placed.skip);
      return ok_result();
    }
    if (!placed.on_devices) ++out.not_on_devices[placed.shown];

    const std::string folded = fold_name(placed.name);
    auto known = product_ids.find(folded);
    const std::string id = known != product_ids.end() ? known->second : "wesng:" + folded;
    // The digest covers the row and what it became: a new mapping, or rows that land on other
    // products, make a different document, which replaces the stored one.
    DayBuilder& day = days[date];
    if (day.digest_input.empty()) day.digest_input = fmt::format("mapping {}\x1e", kWesngMapping);
    for (const std::string& f : fields) day.digest_input.append(f).push_back('\x1f');
    day.digest_input.append(id).append(1, '\x1f').append(placed.name).push_back('\x1e');
    day.products.try_emplace(id, Product{id, placed.name, "WES-NG"});

    auto& cve = day.cves[fields[kCve]];
    Vulnerability& v = cve.v;
    if (v.cve.empty()) {
      v.cve = fields[kCve];
      v.title = fields[kTitle];
    }
    if (std::none_of(v.products.begin(), v.products.end(),
                     [&](const AffectedProduct& a) { return a.product_id == id; })) {
      v.products.push_back({id, fields[kSeverity], fields[kImpact], std::nullopt});
    }
    if (msrc_severity_rank(fields[kSeverity]) > msrc_severity_rank(v.severity))
      v.severity = fields[kSeverity];
    if (!fields[kImpact].empty()) ++cve.impacts[fields[kImpact]];
    KbFix& fix = cve.fixes[kb];
    if (fix.kb == 0) {
      fix.kb = kb;
      fix.subtype = "Security Update";
    }
    if (std::find(fix.product_ids.begin(), fix.product_ids.end(), id) == fix.product_ids.end()) {
      fix.product_ids.push_back(id);
    }
    for (KbNumber older : parse_supersedence(fields[kSupersedes], kb, out.repaired)) {
      if (std::find(fix.supersedes.begin(), fix.supersedes.end(), older) == fix.supersedes.end()) {
        fix.supersedes.push_back(older);
      }
    }
    ++out.imported;
    return ok_result();
  };
  KBGAP_TRY(reader.parse(content, where, on_row));
  if (header) return invalid_input(fmt::format("{}: empty: no header", where));

  const std::string definitions_release = iso_day(definitions_day) + "T00:00:00Z";
  for (auto& [date, day] : days) {
    Document doc;
    const std::string iso = iso_day(date);
    doc.id = fmt::format("{}{}", kWesngDocumentPrefix, iso);
    // MSRC's words for a month's release ("March 2020 Security Updates"), marked with the source.
    static constexpr std::array<std::string_view, 12> kMonthNames = {
        "January", "February", "March",     "April",   "May",      "June",
        "July",    "August",   "September", "October", "November", "December"};
    doc.title = fmt::format("{} {} Security Updates (WES-NG)",
                            kMonthNames[std::stoul(date.substr(4, 2)) - 1], date.substr(0, 4));
    doc.initial_release = iso + "T00:00:00Z";
    doc.current_release = definitions_release;
    doc.revision = fmt::format("{}.{}", definitions_day, kWesngMapping);
    doc.source = where;
    doc.sha256 = sha256_hex(day.digest_input);
    for (auto& [id, p] : day.products) doc.products.push_back(std::move(p));
    int ordinal = 0;
    for (auto& [cve_id_text, cve] : day.cves) {
      Vulnerability v = std::move(cve.v);
      v.ordinal = ++ordinal;
      // WES-NG gives a bulletin's day only: the CVE's publication, and its latest revision.
      v.published = v.updated = doc.initial_release;
      int best = 0;
      for (const auto& [impact, n] : cve.impacts) {
        if (n > best) {
          best = n;
          v.impact = impact;
        }
      }
      for (auto& [kb, fix] : cve.fixes) v.fixes.push_back(std::move(fix));
      doc.vulnerabilities.push_back(std::move(v));
    }
    out.documents.push_back(std::move(doc));
  }
  return out;
}

}  // namespace kbgap::catalog
