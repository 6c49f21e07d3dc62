// Installed programs as catalog products, and the servicing branches of software
// (docs/engine.md, "Software beyond the OS").
#include "engine/software.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include "common/text.h"

namespace kbgap::engine {

using inventory::Architecture;
using inventory::Device;
using inventory::InstalledSoftware;

// The catalog's software families, worked out once per catalog.
struct SoftwareTable {
  // Office's MSI programs (2007 to 2016): "word|2016|64" -> products ("Microsoft Word 2016
  // (64-bit edition)"; 2013 has "... 2013 (64-bit editions)" and "... 2013 Service Pack 1 ...").
  std::unordered_map<std::string, std::vector<ProductIndex>> office;
  // Office Click-to-Run: "2019|64", "365|32", "ltsc 2021|64", "2016|64" -> products.
  std::unordered_map<std::string, std::vector<ProductIndex>> click_to_run;

  struct Fix {
    KbIndex kb;
    std::optional<Build> build;  // trusted: of the family's version, not below an earlier one
    bool chain = true;           // contains the branch's earlier updates
  };
  struct Branch {
    std::string name;  // "CU", "Service Pack 3 GDR", "Cumulative Update 15"
    std::vector<ProductIndex> products;
    std::vector<Fix> fixes;          // by release day, then KB
    std::optional<Build> low, high;  // the chain's trusted builds
    int own_build = 0;               // Exchange: the cumulative update's build number
  };
  struct Family {
    std::string name;  // "SQL Server 2019 (x64)", "Exchange Server 2019"
    int major = 0, minor = 0;
    std::vector<std::uint32_t> branches;  // into `branches`
  };
  std::vector<Branch> branches;
  std::vector<Family> families;
  std::unordered_map<std::string, std::uint32_t> family_index;  // "sql server 2019|x64"
  std::unordered_map<ProductIndex, std::uint32_t> branch_of_product;
};

namespace {

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

int year_of(std::string_view word) {
  if (word.size() != 4 || !is_digits(word)) return 0;
  const int y =
      (word[0] - '0') * 1000 + (word[1] - '0') * 100 + (word[2] - '0') * 10 + (word[3] - '0');
  return y >= 2000 && y <= 2099 ? y : 0;
}

// The Office programs whose security updates MSRC lists under their own name.
constexpr std::array<std::string_view, 13> kOfficeApps = {
    "office", "word",  "excel",   "powerpoint", "outlook", "onenote",           "publisher",
    "access", "visio", "project", "infopath",   "lync",    "skype for business"};

// "skype for business 2016 (64-bit)" -> the app and where its year is; "" when none.
std::string_view office_app(const std::vector<std::string_view>& w, std::size_t year_at) {
  std::string joined;
  for (std::size_t i = 0; i < year_at; ++i) {
    if (i) joined += ' ';
    joined += w[i];
  }
  for (std::string_view app : kOfficeApps) {
    if (joined == app) return app;
  }
  return {};
}

std::string_view bits_of(Architecture a) {
  return a == Architecture::kX64 ? "64" : a == Architecture::kX86 ? "32" : "";
}

// The programs of an Office suite edition (Microsoft's edition comparisons for 2007 to 2016);
// empty for an edition kbgap does not know.
std::vector<std::string_view> edition_apps(std::string_view edition, int year) {
  std::vector<std::string_view> apps;
  if (edition == "home and student") {
    apps = {"word", "excel", "powerpoint", "onenote"};
  } else if (edition == "home and business") {
    apps = {"word", "excel", "powerpoint", "onenote", "outlook"};
  } else if (edition == "standard") {
    apps = {"word", "excel", "powerpoint", "onenote", "outlook", "publisher"};
  } else if (edition == "professional") {
    apps = {"word", "excel", "powerpoint", "onenote", "outlook", "publisher", "access"};
  } else if (edition == "professional plus" || edition == "enterprise") {
    apps = {"word", "excel", "powerpoint", "onenote", "outlook", "publisher", "access"};
    if (year <= 2013) apps.push_back("infopath");
    if (year == 2013) apps.push_back("lync");
    if (year == 2016) apps.push_back("skype for business");
  }
  return apps;
}

// A version of at most four numbers ("15.0.4326.1", "15.2.1748"); nullopt otherwise.
std::optional<Build> version_of(std::string_view text) {
  int parts[4] = {0, 0, 0, 0};
  const char* p = text.data();
  const char* end = p + text.size();
  int n = 0;
  while (n < 4) {
    auto [next, ec] = std::from_chars(p, end, parts[n]);
    if (ec != std::errc() || next == p || parts[n] < 0) return std::nullopt;
    ++n;
    p = next;
    if (p == end) break;
    if (*p != '.') return std::nullopt;
    ++p;
  }
  if (p != end || n < 3) return std::nullopt;
  return Build{parts[0], parts[1], parts[2], parts[3]};
}

bool less(const Build& a, const Build& b) {
  return std::tie(a.major, a.minor, a.build, a.revision) <
         std::tie(b.major, b.minor, b.build, b.revision);
}

std::string build_text(const Build& b) {
  return fmt::format("{}.{}.{}.{}", b.major, b.minor, b.build, b.revision);
}

// How far a version is from a branch's builds (0 inside), in build numbers then revisions.
std::pair<long, long> distance(const Build& v, const SoftwareTable::Branch& b) {
  if (!b.low) return {std::numeric_limits<long>::max(), 0};
  if (less(v, *b.low)) return {b.low->build - v.build, b.low->revision - v.revision};
  if (less(*b.high, v)) return {v.build - b.high->build, v.revision - b.high->revision};
  return {0, 0};
}

// "Microsoft SQL Server 2016 for x64-based Systems Service Pack 3 (GDR)": family key, family
// name and branch; nullopt for other products.
struct SqlName {
  std::string family_key, family_name, branch;
};
std::optional<SqlName> sql_server_name(std::string_view lower) {
  constexpr std::string_view kPrefix = "microsoft sql server ";
  if (!lower.starts_with(kPrefix)) return std::nullopt;
  std::string_view rest = lower.substr(kPrefix.size());
  std::string year(rest.substr(0, 4));
  if (!year_of(year)) return std::nullopt;
  if (rest.substr(4).starts_with(" r2")) year += " r2";
  std::string kind;
  if (lower.find("(gdr)") != std::string_view::npos) kind = "GDR";
  if (lower.find("(cu") != std::string_view::npos) kind = "CU";
  if (lower.find("(qfe)") != std::string_view::npos) kind = "QFE";
  if (lower.find("azure connect feature pack") != std::string_view::npos) {
    kind = "Azure Connect Feature Pack";
  }
  if (kind.empty()) return std::nullopt;
  std::string_view arch;
  if (lower.find("x64") != std::string_view::npos) arch = "x64";
  if (lower.find("32-bit") != std::string_view::npos) arch = "x86";
  if (arch.empty()) return std::nullopt;
  std::string branch = kind;
  if (auto sp = lower.find("service pack "); sp != std::string_view::npos) {
    branch = fmt::format("Service Pack {} {}", lower.substr(sp + 13, 1), kind);
  }
  std::string shown = year;
  if (shown.ends_with(" r2")) shown = shown.substr(0, 4) + " R2";
  return SqlName{fmt::format("sql server {}|{}", year, arch),
                 fmt::format("SQL Server {} ({})", shown, arch), branch};
}

// "Microsoft Exchange Server 2019 Cumulative Update 15" -> {"exchange server 2019", 15}.
std::optional<std::pair<std::string, int>> exchange_name(std::string_view lower) {
  constexpr std::string_view kPrefix = "microsoft exchange server ";
  if (!lower.starts_with(kPrefix)) return std::nullopt;
  std::string_view rest = lower.substr(kPrefix.size());
  if (rest.size() < 4 || !year_of(rest.substr(0, 4))) return std::nullopt;
  constexpr std::string_view kCu = " cumulative update ";
  if (!rest.substr(4).starts_with(kCu)) return std::nullopt;
  std::string_view number = rest.substr(4 + kCu.size());
  int n = 0;
  if (!is_digits(number) || number.size() > 3) return std::nullopt;
  std::from_chars(number.data(), number.data() + number.size(), n);
  return std::pair{fmt::format("exchange server {}", rest.substr(0, 4)), n};
}

std::shared_ptr<const SoftwareTable> make_table(const CatalogIndex& catalog) {
  auto t = std::make_shared<SoftwareTable>();
  auto family_of = [&](const std::string& key, const std::string& name) -> SoftwareTable::Family& {
    auto [it, inserted] =
        t->family_index.try_emplace(key, static_cast<std::uint32_t>(t->families.size()));
    if (inserted) t->families.push_back({name, 0, 0, {}});
    return t->families[it->second];
  };
  std::map<std::pair<std::uint32_t, std::string>, std::uint32_t> branch_index;
  auto branch_of = [&](SoftwareTable::Family& family, std::uint32_t f,
                       const std::string& name) -> SoftwareTable::Branch& {
    auto [it, inserted] =
        branch_index.try_emplace({f, name}, static_cast<std::uint32_t>(t->branches.size()));
    if (inserted) {
      t->branches.push_back({name, {}, {}, {}, {}, 0});
      family.branches.push_back(it->second);
    }
    return t->branches[it->second];
  };

  for (ProductIndex p : catalog.product_indices()) {
    const std::string lower = normalize_product_name(catalog.products()[p].name);
    const std::vector<std::string_view> w = words(lower);
    // Office Click-to-Run.
    {
      std::string_view bits = lower.find("64-bit") != std::string::npos   ? "64"
                              : lower.find("32-bit") != std::string::npos ? "32"
                                                                          : "";
      std::string family;
      if (lower.starts_with("microsoft 365 apps for enterprise for ")) family = "365";
      if (lower.starts_with("microsoft office 2019 for ")) family = "2019";
      if (lower.starts_with("microsoft office ltsc 2021 for ")) family = "ltsc 2021";
      if (lower.starts_with("microsoft office ltsc 2024 for ")) family = "ltsc 2024";
      for (std::string_view y : {"2010", "2013", "2016"}) {
        if (lower.starts_with(fmt::format("microsoft office {} click-to-run (c2r) for ", y))) {
          family = y;
        }
      }
      if (!family.empty() && !bits.empty()) {
        t->click_to_run[fmt::format("{}|{}", family, bits)].push_back(p);
        continue;
      }
    }
    // Office MSI programs.
    {
      std::vector<std::string_view> v = w;
      if (!v.empty() && v.front() == "microsoft") v.erase(v.begin());
      std::size_t year_at = 0;
      while (year_at < v.size() && !year_of(v[year_at])) ++year_at;
      if (year_at < v.size()) {
        const int year = year_of(v[year_at]);
        std::string_view app = office_app(v, year_at);
        std::size_t i = year_at + 1;
        if (i + 2 < v.size() && v[i] == "service" && v[i + 1] == "pack") i += 3;
        std::string_view bits;
        if (i + 1 == v.size()) {
          std::string_view last = v[i];
          if (last == "(64-bit)") bits = "64";
          if (last == "(32-bit)") bits = "32";
        } else if (i + 2 == v.size() && (v[i + 1] == "edition)" || v[i + 1] == "editions)")) {
          if (v[i] == "(64-bit") bits = "64";
          if (v[i] == "(32-bit") bits = "32";
        } else if (i == v.size() && year <= 2007) {
          bits = "32";  // Office 2007 and before: 32-bit only
        }
        if (!app.empty() && !bits.empty() && year >= 2007 && year <= 2016) {
          t->office[fmt::format("{}|{}|{}", app, year, bits)].push_back(p);
          continue;
        }
      }
    }
    if (auto sql = sql_server_name(lower)) {
      SoftwareTable::Family& family = family_of(sql->family_key, sql->family_name);
      const auto f = t->family_index.at(sql->family_key);
      branch_of(family, f, sql->branch).products.push_back(p);
      continue;
    }
    if (auto exchange = exchange_name(lower)) {
      const std::string shown = fmt::format("Exchange Server {}", exchange->first.substr(16));
      SoftwareTable::Family& family = family_of(exchange->first, shown);
      const auto f = t->family_index.at(exchange->first);
      branch_of(family, f, fmt::format("Cumulative Update {}", exchange->second))
          .products.push_back(p);
    }
  }

  // Each family's version (the major.minor most of its fixed builds give), then each branch's
  // updates in release order with their trusted builds.
  for (SoftwareTable::Family& family : t->families) {
    std::map<std::pair<int, int>, int> votes;
    for (std::uint32_t b : family.branches) {
      for (ProductIndex p : t->branches[b].products) {
        t->branch_of_product[p] = b;
        for (const ProductFix& fix : catalog.products()[p].fixes) {
          for (const Build& build : fix.fixed_builds) ++votes[{build.major, build.minor}];
        }
      }
    }
    int best = 0;
    for (const auto& [mm, n] : votes) {
      if (n > best) std::tie(family.major, family.minor, best) = std::tuple{mm.first, mm.second, n};
    }
    const bool exchange = family.name.starts_with("Exchange");
    if (exchange) {  // in the order of their numbers: each CU's build is above the one before
      auto number = [&](std::uint32_t b) {  // "Cumulative Update 15": at most 3 digits
        const std::string_view digits = std::string_view(t->branches[b].name).substr(18);
        int n = 0;
        std::from_chars(digits.data(), digits.data() + digits.size(), n);
        return n;
      };
      std::sort(family.branches.begin(), family.branches.end(),
                [&](std::uint32_t a, std::uint32_t b) { return number(a) < number(b); });
    }
    int previous_own = 0;
    for (std::uint32_t b : family.branches) {
      SoftwareTable::Branch& branch = t->branches[b];
      std::map<KbIndex, std::optional<Build>> builds;
      for (ProductIndex p : branch.products) {
        for (const ProductFix& fix : catalog.products()[p].fixes) {
          std::optional<Build>& build = builds[fix.kb];
          for (const Build& fb : fix.fixed_builds) {
            if (fb.major == family.major && fb.minor == family.minor && !build) build = fb;
          }
        }
      }
      for (const auto& [kb, build] : builds) branch.fixes.push_back({kb, build, true});
      std::sort(branch.fixes.begin(), branch.fixes.end(), [&](const auto& a, const auto& b) {
        return std::pair{catalog.release_day(a.kb), a.kb} <
               std::pair{catalog.release_day(b.kb), b.kb};
      });
      if (exchange) {
        // The cumulative update's own build: above the previous cumulative update's, the one
        // most of its updates give (ties: the lowest). MSRC's FixedBuild lists the builds of
        // every version and CU a KB serves, so an update of another build is either a KB shared
        // with other CUs or the fix MSRC names for it (a later cumulative update): compared by
        // version, not part of the chain.
        std::map<int, int> own;
        for (ProductIndex p : branch.products) {
          for (const ProductFix& fix : catalog.products()[p].fixes) {
            std::set<int> of_fix;
            for (const Build& fb : fix.fixed_builds) {
              if (fb.major == family.major && fb.minor == family.minor && fb.build > previous_own) {
                of_fix.insert(fb.build);
              }
            }
            for (int build : of_fix) ++own[build];
          }
        }
        int n = 0;
        for (const auto& [build, count] : own) {
          if (count > n) std::tie(branch.own_build, n) = std::pair{build, count};
        }
        if (branch.own_build) previous_own = branch.own_build;
        for (auto& f : branch.fixes) {  // the fix's build at this CU, where it lists one
          for (ProductIndex p : branch.products) {
            for (const ProductFix& fix : catalog.products()[p].fixes) {
              if (fix.kb != f.kb) continue;
              for (const Build& fb : fix.fixed_builds) {
                if (fb.major == family.major && fb.minor == family.minor &&
                    fb.build == branch.own_build) {
                  f.build = fb;
                }
              }
            }
          }
        }
        for (auto& f : branch.fixes) {
          if (f.build && f.build->build != branch.own_build) f.chain = false;
        }
      }
      if (!exchange) {
        // A SQL Server branch's builds share their thousands (GDR 15.0.2xxx, CU 15.0.4xxx): a
        // build of other thousands than most of the branch's is another branch's, a data error
        // (MSRC swapped SQL Server 2022's July 2025 GDR and CU 19 builds): not trusted.
        std::map<int, std::pair<int, std::size_t>> bands;  // thousands -> (count, first seen)
        for (std::size_t k = 0; k < branch.fixes.size(); ++k) {
          if (!branch.fixes[k].build) continue;
          auto& [count, first] =
              bands.try_emplace(branch.fixes[k].build->build / 1000, 0, k).first->second;
          ++count;
        }
        int band = -1;
        std::pair<int, std::size_t> best{0, 0};
        for (const auto& [b, seen] : bands) {
          if (seen.first > best.first || (seen.first == best.first && seen.second < best.second)) {
            band = b;
            best = seen;
          }
        }
        for (auto& f : branch.fixes) {
          if (f.build && f.build->build / 1000 != band) f.build.reset();
        }
      }
      // A build below one an earlier update of the chain gives is a data error too: not
      // trusted.
      std::optional<Build> high;
      for (auto& f : branch.fixes) {
        if (!f.chain || !f.build) continue;
        if (high && less(*f.build, *high)) {
          f.build.reset();
          continue;
        }
        high = f.build;
        if (!branch.low) branch.low = f.build;
      }
      branch.high = high;
    }
  }
  return t;
}

}  // namespace

const SoftwareTable& CatalogIndex::software_table() const {
  std::call_once(software_->once, [&] { software_->table = make_table(*this); });
  return *software_->table;
}

std::vector<std::pair<KbIndex, KbIndex>> branch_supersedence(const CatalogIndex& catalog) {
  std::vector<std::pair<KbIndex, KbIndex>> out;
  for (const SoftwareTable::Branch& branch : catalog.software_table().branches) {
    std::optional<KbIndex> previous;
    for (const auto& f : branch.fixes) {
      if (!f.chain) continue;
      if (previous && catalog.release_day(*previous) < catalog.release_day(f.kb)) {
        out.emplace_back(f.kb, *previous);
      }
      previous = f.kb;
    }
  }
  return out;
}

std::string software_snake_name(std::string_view product_name) {
  const std::string lower = normalize_product_name(product_name);
  if (auto sql = sql_server_name(lower)) {
    std::string year = sql->family_key.substr(11, sql->family_key.find('|') - 11);
    if (year.ends_with(" r2")) year = year.substr(0, 4) + "_r2";
    return "sql_server_" + year;
  }
  if (auto exchange = exchange_name(lower)) {
    return "exchange_server_" + exchange->first.substr(16);
  }
  if (lower.starts_with("microsoft 365 apps")) return "365_apps_for_enterprise";
  for (std::string_view y : {"2019", "ltsc 2021", "ltsc 2024"}) {
    if (lower.starts_with(fmt::format("microsoft office {} for ", y))) {
      return "office_" + std::string(y.substr(y.size() - 4));
    }
  }
  std::vector<std::string_view> w = words(lower);
  if (!w.empty() && w.front() == "microsoft") w.erase(w.begin());
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (int year = year_of(w[i])) {
      if (!office_app(w, i).empty() && year >= 2007 && year <= 2016) {
        return fmt::format("office_{}", year);
      }
      break;
    }
  }
  return "";
}

namespace {

// The quick reject, without allocating, of a program that cannot be of a product line matched
// here (most of a device's programs).
bool maybe_microsoft(std::string_view name) {
  auto starts = [](std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    }
    return true;
  };
  // The first words of the product lines matched below ("Microsoft " first or not): anything
  // else (Microsoft Edge, Visual C++, Teams, ...) is rejected without reading further.
  static constexpr std::string_view kLines[] = {"office ",
                                                "word ",
                                                "excel ",
                                                "powerpoint ",
                                                "outlook ",
                                                "onenote ",
                                                "publisher ",
                                                "access ",
                                                "visio ",
                                                "project ",
                                                "infopath ",
                                                "lync ",
                                                "skype for business",
                                                "365 ",
                                                "sql server ",
                                                "exchange server "};
  // Without "Microsoft ": only the lines whose own entries drop it ("SQL Server 2019 Database
  // Engine Services", "Skype for Business 2016").
  const bool prefixed = starts(name, "microsoft ");
  if (prefixed) name.remove_prefix(10);
  while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
  for (std::string_view line : kLines) {
    const bool bare =
        line == "skype for business" || line == "sql server " || line == "exchange server ";
    if ((prefixed || bare) && starts(name, line)) {
      return true;
    }
  }
  return false;
}

// " - en-us": the language a Click-to-Run product is installed in.
bool click_to_run_language(std::string_view lower) {
  auto dash = lower.rfind(" - ");
  if (dash == std::string_view::npos) return false;
  std::string_view lang = lower.substr(dash + 3);
  auto hyphen = lang.find('-');
  return hyphen >= 2 && hyphen <= 3 && lang.size() - hyphen - 1 >= 2 &&
         lang.size() - hyphen - 1 <= 4;
}

struct Entry {
  std::uint32_t index = 0;
  std::string lower;  // without "microsoft "
  std::vector<std::string_view> w;
  int year = 0;
  std::size_t year_at = 0;
};

class Matcher {
 public:
  Matcher(const CatalogIndex& catalog, const Device& device, bool explain)
      : catalog_(catalog), t_(catalog.software_table()), device_(device), explain_(explain) {}

  SoftwareMatches run() {
    std::vector<Entry> entries;
    for (std::uint32_t i = 0; i < device_.software.size(); ++i) {
      const InstalledSoftware& sw = device_.software[i];
      if (!maybe_microsoft(sw.name)) {
        unmatched(i, kNoProductLine);
        continue;
      }
      Entry e;
      e.index = i;
      e.lower = normalize_product_name(sw.name);
      if (e.lower.starts_with("microsoft ")) e.lower.erase(0, 10);
      e.w = words(e.lower);
      while (e.year_at < e.w.size() && !(e.year = year_of(e.w[e.year_at]))) ++e.year_at;
      entries.push_back(std::move(e));
    }
    // What each Office year's entries tell of its bitness and programs, in one pass (a suite
    // entry repeated many times must not cost a pass over the others each).
    for (const Entry& o : entries) {
      if (o.year < 2007 || o.year > 2016) continue;
      YearHints& hints = years_[o.year];
      if (o.lower == fmt::format("office 64-bit components {}", o.year)) {
        hints.components = Architecture::kX64;
      } else if (o.lower == fmt::format("office 32-bit components {}", o.year)) {
        hints.components = Architecture::kX86;
      }
      const auto mui = o.lower.find(" mui (");
      const Architecture own = device_.software[o.index].architecture;
      if ((o.lower.starts_with("office ") || mui != std::string::npos) &&
          hints.other == Architecture::kUnknown &&
          (own == Architecture::kX64 || own == Architecture::kX86)) {
        hints.other = own;
      }
      if (mui == std::string::npos) continue;
      for (std::string_view app : kOfficeApps) {
        if (app != "office" && o.lower.substr(0, mui) == app &&
            std::find(hints.listed.begin(), hints.listed.end(), app) == hints.listed.end()) {
          hints.listed.push_back(app);
        }
      }
    }
    std::vector<char> done(entries.size(), 0);
    office(entries, done);
    sql_server(entries, done);
    exchange(entries, done);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (!done[i]) unmatched(entries[i].index, kNoProductLine);
    }
    std::sort(out_.matched.begin(), out_.matched.end(),
              [](const auto& a, const auto& b) { return a.software < b.software; });
    std::sort(out_.unmatched.begin(), out_.unmatched.end(),
              [](const auto& a, const auto& b) { return a.software < b.software; });
    return std::move(out_);
  }

 private:
  void unmatched(std::uint32_t i, std::string_view why) {
    if (explain_) out_.unmatched.push_back({i, {}, std::nullopt, std::string(why)});
  }
  void matched(std::uint32_t i, std::vector<ProductIndex> products, std::optional<Build> version,
               std::string why) {
    if (products.empty() && !explain_) return;
    out_.matched.push_back({i, std::move(products), version, std::move(why)});
  }
  // An architecture the device's Office of `year` shows: the entry's own, the OS's (32-bit
  // Windows), "Office 64-bit Components <year>", or another Office entry of that year.
  Architecture office_bitness(const Entry& e) const {
    Architecture a = device_.software[e.index].architecture;
    if (a == Architecture::kX64 || a == Architecture::kX86) return a;
    if (device_.architecture == Architecture::kX86) return Architecture::kX86;
    auto hints = years_.find(e.year);
    if (hints == years_.end()) return Architecture::kUnknown;
    if (hints->second.components != Architecture::kUnknown) return hints->second.components;
    return hints->second.other;
  }
  // The products of Office programs for one bitness; the app names without a catalog product
  // go to `missing`.
  std::vector<ProductIndex> office_products(const std::vector<std::string_view>& apps, int year,
                                            std::string_view bits,
                                            std::vector<std::string_view>* missing) const {
    std::vector<ProductIndex> out;
    for (std::string_view app : apps) {
      auto it = t_.office.find(fmt::format("{}|{}|{}", app, year, bits));
      if (it == t_.office.end()) {
        if (missing) missing->push_back(app);
        continue;
      }
      for (ProductIndex p : it->second) {
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
      }
    }
    return out;
  }
  bool same_updates(const std::vector<ProductIndex>& a, const std::vector<ProductIndex>& b) const {
    auto kbs = [&](const std::vector<ProductIndex>& products) {
      std::set<KbIndex> s;
      for (ProductIndex p : products) {
        for (const ProductFix& f : catalog_.products()[p].fixes) s.insert(f.kb);
      }
      return s;
    };
    return kbs(a) == kbs(b);
  }

  void office(std::vector<Entry>& entries, std::vector<char>& done) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      Entry& e = entries[i];
      if (e.w.empty()) continue;
      const InstalledSoftware& sw = device_.software[e.index];
      // Click-to-Run: "Microsoft 365 Apps for enterprise - en-us", "Microsoft Office
      // Professional Plus 2019 - en-us", "Microsoft Office LTSC Professional Plus 2021 - en-us".
      const bool office_named = e.lower.starts_with("office ") || e.lower.starts_with("365 ") ||
                                e.lower.starts_with("visio ") || e.lower.starts_with("project ");
      if (office_named && (click_to_run_language(e.lower) || e.year >= 2019 ||
                           e.lower.find("365") != std::string::npos)) {
        std::string family;
        if (e.lower.find("365") != std::string::npos) family = "365";
        if (e.year == 2019) family = "2019";
        if (e.year == 2021 || e.year == 2024) family = fmt::format("ltsc {}", e.year);
        if (e.year >= 2010 && e.year <= 2016) family = std::to_string(e.year);
        std::vector<ProductIndex> products;
        Architecture a = sw.architecture;
        if (a == Architecture::kUnknown && device_.architecture == Architecture::kX86) {
          a = Architecture::kX86;
        }
        for (std::string_view bits : {"32", "64"}) {
          if (!bits_of(a).empty() && bits != bits_of(a)) continue;
          auto it = t_.click_to_run.find(fmt::format("{}|{}", family, bits));
          if (it != t_.click_to_run.end()) {
            products.insert(products.end(), it->second.begin(), it->second.end());
          }
        }
        done[i] = 1;
        if (products.empty()) {
          unmatched(e.index, "Office Click-to-Run of a channel the catalog has no product for");
          continue;
        }
        std::string why;
        if (explain_) {
          std::vector<std::string> names;
          for (ProductIndex p : products) names.push_back(catalog_.products()[p].name);
          why = fmt::format(
              "Office Click-to-Run ({}{}): MSRC publishes its fixes as 'Click to "
              "Run' with no fixed version, so no update can be named for it; keep "
              "its update channel current",
              fmt::join(names, ", "), products.size() > 1 ? "; bitness not in the inventory" : "");
        }
        matched(e.index, products, std::nullopt, std::move(why));
        continue;
      }
      if (e.year < 2007 || e.year > 2016) continue;
      // Office MSI suites: "Microsoft Office Professional Plus 2016".
      if (e.w.size() >= 2 && e.w.front() == "office" && e.year_at + 1 == e.w.size()) {
        std::string edition;
        for (std::size_t k = 1; k < e.year_at; ++k) {
          if (!edition.empty()) edition += ' ';
          edition += e.w[k];
        }
        std::vector<std::string_view> apps = edition_apps(edition, e.year);
        if (apps.empty()) {
          if (e.year_at > 1) {  // "Office Shared 2016", "Office Proofing 2016": parts
            continue;
          }
        }
        // The programs installed, where their own entries tell ("Microsoft Word MUI (English)
        // 2016"): they are what is there, whatever the edition's default.
        std::vector<std::string_view> listed;
        if (auto hints = years_.find(e.year); hints != years_.end()) listed = hints->second.listed;
        done[i] = 1;
        if (apps.empty() && listed.empty()) {
          unmatched(e.index, fmt::format("Office {} of an edition whose programs kbgap does not "
                                         "know ('{}')",
                                         e.year, edition));
          continue;
        }
        std::string how = listed.empty() ? fmt::format("the programs of the {} edition", edition)
                                         : "the programs its entries list";
        if (!listed.empty()) apps = listed;
        apps.insert(apps.begin(), "office");
        office_match(e, apps, how);
        continue;
      }
      // A program sold alone: "Microsoft Visio Professional 2016", "Microsoft Project Standard
      // 2013", "Microsoft Word 2016".
      std::string_view app;
      for (std::string_view a : kOfficeApps) {
        if (a != "office" && a != "skype for business" && e.w.front() == a) app = a;
      }
      if (e.lower.starts_with("skype for business ")) app = "skype for business";
      const bool alone = !app.empty() && e.year_at + 1 == e.w.size() &&
                         (e.year_at == words(app).size() ||
                          ((app == "visio" || app == "project") && e.year_at == 2 &&
                           (e.w[1] == "professional" || e.w[1] == "standard")));
      if (alone) {
        done[i] = 1;
        office_match(e, {"office", app}, fmt::format("{} sold alone", app));
      }
    }
    // The parts of a matched Office (MUI, proofing, shared components): judged with it.
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (done[i] || e.year < 2007 || e.year > 2016) continue;
      const bool part =
          e.lower.starts_with("office ") || e.lower.find(" mui (") != std::string::npos;
      if (part && office_years_.count(e.year)) {
        done[i] = 1;
        matched(e.index, {}, std::nullopt,
                explain_ ? fmt::format("a part of Office {}, judged with it", e.year) : "");
      }
    }
  }

  void office_match(const Entry& e, const std::vector<std::string_view>& apps,
                    const std::string& how) {
    const Architecture a = office_bitness(e);
    // The same Office listed again (an inventory may repeat an entry): the same answer.
    const std::string memo =
        fmt::format("{}|{}|{}|{}", fmt::join(apps, ","), e.year, architecture_name(a), how);
    if (auto it = office_memo_.find(memo); it != office_memo_.end()) {
      if (it->second.matched) {
        office_years_.insert(e.year);
        matched(e.index, it->second.products, std::nullopt, it->second.reason);
      } else {
        unmatched(e.index, it->second.reason);
      }
      return;
    }
    const std::size_t matched_before = out_.matched.size();
    const std::size_t unmatched_before = out_.unmatched.size();
    office_match_once(e, apps, how, a);
    Memo m;
    if (out_.matched.size() > matched_before) {
      m.matched = true;
      m.products = out_.matched.back().products;
      m.reason = out_.matched.back().reason;
    } else if (out_.unmatched.size() > unmatched_before) {
      m.reason = out_.unmatched.back().reason;
    } else {  // without explain, an unmatched entry leaves no trace
      m.matched = !matched_products_.empty();
      m.products = matched_products_;
    }
    office_memo_.emplace(memo, std::move(m));
  }

  void office_match_once(const Entry& e, const std::vector<std::string_view>& apps,
                         const std::string& how, Architecture a) {
    matched_products_.clear();
    std::vector<std::string_view> missing;
    std::vector<ProductIndex> products;
    std::string bitness;
    if (a == Architecture::kX64 || a == Architecture::kX86) {
      products = office_products(apps, e.year, bits_of(a), &missing);
      bitness = fmt::format("{}-bit", bits_of(a));
    } else {
      // Bitness unknown: only where both editions take the same updates is the answer the same.
      std::vector<ProductIndex> x86 = office_products(apps, e.year, "32", &missing);
      if (!same_updates(x86, office_products(apps, e.year, "64", nullptr))) {
        unmatched(e.index, fmt::format("Office {}: its bitness is not in the inventory, and the "
                                       "32-bit and 64-bit editions take different updates",
                                       e.year));
        return;
      }
      products = std::move(x86);
      bitness = "bitness unknown; its 32-bit and 64-bit editions take the same updates";
    }
    if (products.empty()) {
      unmatched(e.index, fmt::format("Office {}: no MSI product of the catalog", e.year));
      return;
    }
    office_years_.insert(e.year);
    matched_products_ = products;
    std::string why;
    if (explain_) {
      std::vector<std::string> names;
      for (ProductIndex p : products) names.push_back(catalog_.products()[p].name);
      why = fmt::format(
          "Office {} (MSI, {}), with {}: {}; its updates are KBs, satisfied when "
          "installed or replaced",
          e.year, bitness, how, fmt::join(names, ", "));
      if (!missing.empty()) {
        why += fmt::format(" (no catalog product for: {})", fmt::join(missing, ", "));
      }
    }
    matched(e.index, std::move(products), std::nullopt, std::move(why));
  }

  // "SQL Server 2019 Database Engine Services" 15.0.4326.1, "Microsoft SQL Server 2019
  // (64-bit)" with a version: the instance, on the branch its version is on.
  void sql_server(std::vector<Entry>& entries, std::vector<char>& done) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (!e.lower.starts_with("sql server ") || e.year_at != 2 || e.year == 0) continue;
      std::string year(e.w[2]);
      std::size_t next = 3;
      if (next < e.w.size() && e.w[next] == "r2") {
        year += " r2";
        ++next;
      }
      std::string rest;
      for (std::size_t k = next; k < e.w.size(); ++k)
        rest += (rest.empty() ? "" : " ") + std::string(e.w[k]);
      const bool instance = rest.empty() || rest == "(64-bit)" || rest == "(32-bit)" ||
                            rest == "database engine services";
      // "Microsoft SQL Server 2019 (64-bit)" is listed without a version: the Database Engine
      // Services entry beside it gives the build.
      if (!instance || device_.software[e.index].version.empty()) continue;
      done[i] = 1;
      const InstalledSoftware& sw = device_.software[e.index];
      Architecture a = rest == "(64-bit)"   ? Architecture::kX64
                       : rest == "(32-bit)" ? Architecture::kX86
                                            : sw.architecture;
      if (a == Architecture::kUnknown && device_.architecture == Architecture::kX86) {
        a = Architecture::kX86;
      }
      const std::string key64 = fmt::format("sql server {}|x64", year);
      const std::string key86 = fmt::format("sql server {}|x86", year);
      if (a == Architecture::kUnknown) {
        const bool has86 = t_.family_index.count(key86) != 0;
        if (has86 && t_.family_index.count(key64)) {
          unmatched(e.index, fmt::format("SQL Server {}: 32-bit or 64-bit is not in the "
                                         "inventory, and the catalog has both",
                                         year));
          continue;
        }
        a = has86 ? Architecture::kX86 : Architecture::kX64;
      }
      auto f = t_.family_index.find(a == Architecture::kX86 ? key86 : key64);
      if (f == t_.family_index.end()) {
        unmatched(e.index, fmt::format("SQL Server {}: no product of this architecture in the "
                                       "catalog",
                                       year));
        continue;
      }
      const SoftwareTable::Family& family = t_.families[f->second];
      std::optional<Build> v = version_of(sw.version);
      if (v && v->major == family.major && v->minor != family.minor && v->minor > family.minor &&
          v->minor - family.minor < 10) {
        // The MSI version of SQL Server 2008 to 2016 carries the service pack in its minor
        // number (12.3.6024.0 for 2014 SP3, whose @@VERSION is 12.0.6024.0).
        v->minor = family.minor;
      }
      if (!v || v->major != family.major || v->minor != family.minor) {
        unmatched(e.index, fmt::format("{}: version '{}' is not a {}.{} build", family.name,
                                       sw.version, family.major, family.minor));
        continue;
      }
      // The branch whose security updates' builds bracket the version, else the nearest.
      std::optional<std::uint32_t> best;
      std::pair<long, long> best_distance;
      bool tie = false;
      constexpr std::pair<long, long> kInside{0, 0};
      for (std::uint32_t b : family.branches) {
        if (!t_.branches[b].low) continue;
        const auto d = distance(*v, t_.branches[b]);
        if (!best || d < best_distance) {
          best = b;
          best_distance = d;
          tie = false;
        } else if (d == best_distance && d == kInside) {
          // Inside two branches' builds (a service pack's GDR that lists a later one's fix):
          // the one that starts later is the nearer.
          if (less(*t_.branches[*best].low, *t_.branches[b].low)) best = b;
        } else if (d == best_distance) {
          tie = true;
        }
      }
      if (!best || tie) {
        unmatched(e.index, fmt::format("{} {}: no branch of the catalog is nearest to this "
                                       "build",
                                       family.name, build_text(*v)));
        continue;
      }
      const SoftwareTable::Branch& branch = t_.branches[*best];
      std::string why;
      if (explain_) {
        why = fmt::format(
            "{} {} on the {} branch ({} its security updates' builds, {} to {}); updates of the "
            "branch up to this build count as installed, each later one contains the earlier",
            family.name, build_text(*v), branch.name,
            best_distance == kInside ? "within" : "nearest to", build_text(*branch.low),
            build_text(*branch.high));
      }
      matched(e.index, branch.products, v, std::move(why));
      sql_years_.insert(year);
    }
    for (std::size_t i = 0; i < entries.size() && explain_; ++i) {
      const Entry& e = entries[i];
      if (done[i] || !e.lower.starts_with("sql server ") || e.year_at != 2) continue;
      std::string year(e.w[2]);
      if (e.w.size() > 3 && e.w[3] == "r2") year += " r2";
      done[i] = 1;
      if (sql_years_.count(year)) {
        matched(e.index, {}, std::nullopt,
                fmt::format("a part of SQL Server {}, judged with its Database Engine", year));
      } else {
        unmatched(e.index, fmt::format("a part of SQL Server {}; no entry gives the build of its "
                                       "Database Engine (SQL Server {} Database Engine Services)",
                                       year, year));
      }
    }
  }

  // "Microsoft Exchange Server 2019 Cumulative Update 15", or "Microsoft Exchange Server 2019"
  // at 15.2.1748.x: that cumulative update's security updates.
  void exchange(std::vector<Entry>& entries, std::vector<char>& done) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (!e.lower.starts_with("exchange server ") || e.year_at != 2) continue;
      const std::string key = fmt::format("exchange server {}", e.w[2]);
      auto f = t_.family_index.find(key);
      if (f == t_.family_index.end()) continue;
      const SoftwareTable::Family& family = t_.families[f->second];
      const InstalledSoftware& sw = device_.software[e.index];
      std::optional<Build> v = version_of(sw.version);
      if (v && (v->major != family.major || v->minor != family.minor)) v.reset();
      std::optional<std::uint32_t> branch;
      std::string how;
      if (e.w.size() == 6 && e.w[3] == "cumulative" && e.w[4] == "update") {
        const std::string name = fmt::format("Cumulative Update {}", e.w[5]);
        for (std::uint32_t b : family.branches) {
          if (t_.branches[b].name == name) branch = b;
        }
        how = "by its name";
      } else if (e.w.size() == 3 && v) {
        for (std::uint32_t b : family.branches) {
          if (t_.branches[b].own_build == v->build) branch = b;
        }
        how = fmt::format("by its build {}", v->build);
      } else {
        continue;
      }
      done[i] = 1;
      if (!branch) {
        unmatched(e.index, fmt::format("{}: no cumulative update of the catalog matches '{}' {}",
                                       family.name, sw.name, sw.version));
        continue;
      }
      const SoftwareTable::Branch& b = t_.branches[*branch];
      if (v && b.own_build && v->build != b.own_build) v.reset();  // another CU's version
      std::string why;
      if (explain_) {
        why = fmt::format(
            "{} {} ({}){}; its security updates contain the earlier ones of the "
            "same cumulative update",
            family.name, b.name, how,
            v ? fmt::format(", at {}: updates up to this build count as installed", build_text(*v))
              : std::string());
      }
      matched(e.index, b.products, v, std::move(why));
    }
  }

  const CatalogIndex& catalog_;
  const SoftwareTable& t_;
  const Device& device_;
  const bool explain_;
  SoftwareMatches out_;
  std::set<int> office_years_;
  struct YearHints {
    Architecture components = Architecture::kUnknown;  // "Office 64-bit Components 2016"
    Architecture other = Architecture::kUnknown;       // another Office entry's own
    std::vector<std::string_view> listed;              // programs with a MUI entry
  };
  std::map<int, YearHints> years_;
  struct Memo {
    bool matched = false;
    std::vector<ProductIndex> products;
    std::string reason;
  };
  std::unordered_map<std::string, Memo> office_memo_;
  std::vector<ProductIndex> matched_products_;  // office_match_once's, with or without explain
  std::set<std::string> sql_years_;
};

}  // namespace

SoftwareMatches match_software(const CatalogIndex& catalog, const Device& device, bool explain) {
  if (device.software.empty()) return {};
  return Matcher(catalog, device, explain).run();
}

void version_reached_kbs(const CatalogIndex& catalog, const SoftwareMatches& matches,
                         std::vector<KbIndex>& out) {
  const SoftwareTable& t = catalog.software_table();
  // Per branch, the lowest version installed on it: two SQL Server instances on one branch
  // have the updates both have reached, not those of the newer.
  std::map<std::uint32_t, Build> lowest;
  for (const SoftwareMatch& m : matches.matched) {
    if (!m.version || m.products.empty()) continue;
    auto b = t.branch_of_product.find(m.products.front());
    if (b == t.branch_of_product.end()) continue;
    auto [it, inserted] = lowest.try_emplace(b->second, *m.version);
    if (!inserted && less(*m.version, it->second)) it->second = *m.version;
  }
  for (const auto& [branch, version] : lowest) {
    for (const auto& f : t.branches[branch].fixes) {
      // Only the chain's own builds: a build of another CU says nothing of this one's updates.
      if (f.chain && f.build && !less(version, *f.build)) out.push_back(f.kb);
    }
  }
}

}  // namespace kbgap::engine
