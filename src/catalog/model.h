// The catalog's data as read from one MSRC CVRF document: documents, products, CVEs, KB fixes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kbgap::catalog {

using KbNumber = std::uint32_t;  // "KB4540673" is stored as 4540673

struct Product {
  std::string id;      // ProductID, "11713" or a compound "11650-10855" (component on a host)
  std::string name;    // "Windows 10 Version 1909 for x64-based Systems", white space folded
  std::string family;  // the enclosing Product Family branch: "Windows", "Browser", "ESU", ...
};

// How one CVE affects one product.
struct AffectedProduct {
  std::string product_id;
  std::string severity;             // "Critical", "Important", ... ("" when not given)
  std::string impact;               // "Remote Code Execution", ... ("" when not given)
  std::optional<double> cvss_base;  // CVSS base score for this product
};

// A Vendor Fix remediation whose Description is a KB number.
struct KbFix {
  KbNumber kb = 0;
  std::string subtype;  // "Security Update", "Monthly Rollup", "Security Only", ...
  std::vector<std::string> product_ids;
  std::vector<KbNumber> supersedes;  // KBs this one replaces, on these products
  std::string fixed_build;           // normalized Windows builds "10.0.19043.1415", ';'-joined
  std::string fixed_build_raw;       // the text as published, trimmed
  std::string url;                   // Update Catalog (or support) URL
  std::string restart_required;      // "Yes", "No", "Maybe" or ""
};

struct Vulnerability {
  int ordinal = 0;
  std::string cve;
  std::string title;
  std::string severity;             // the highest over the affected products
  std::string impact;               // the most frequent over the affected products
  std::optional<double> cvss_base;  // the highest over the affected products
  std::string cvss_vector;          // of that score: "CVSS:3.1/AV:N/AC:L/...", "" when none
  // Its own revision history (not the month's): the first and the latest entry's time, ISO 8601
  // UTC ("2024-01-09T08:00:00Z"); "" when the document gives none.
  std::string published, updated;
  std::optional<bool> exploited;
  std::optional<bool> publicly_disclosed;
  std::vector<AffectedProduct> products;
  std::vector<KbFix> fixes;
};

struct Document;
// The KB fixes a document lists, over all its vulnerabilities.
std::int64_t count_kb_fixes(const Document& doc);

struct Document {
  std::string id;               // "2020-Mar"
  std::string title;            // "March 2020 Security Updates"
  std::string initial_release;  // ISO 8601 UTC, "2020-03-10T07:00:00Z"
  std::string current_release;
  std::string revision;  // the highest revision number in the history, "11"
  std::string source;    // where it was read from (file, or archive!member)
  std::string sha256;    // of the XML as read
  std::vector<Product> products;
  std::vector<Vulnerability> vulnerabilities;
};

inline std::int64_t count_kb_fixes(const Document& doc) {
  std::int64_t n = 0;
  for (const Vulnerability& v : doc.vulnerabilities) n += static_cast<std::int64_t>(v.fixes.size());
  return n;
}

// What an import passed over or repaired, by reason. Nothing is dropped without a count here.
class SkipCounts {
 public:
  void add(const std::string& reason, std::uint64_t n = 1) { counts_[reason] += n; }
  void merge(const SkipCounts& other) {
    for (const auto& [reason, n] : other.counts_) counts_[reason] += n;
  }
  const std::map<std::string, std::uint64_t>& by_reason() const { return counts_; }
  std::uint64_t get(const std::string& reason) const {
    auto it = counts_.find(reason);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, std::uint64_t> counts_;
};

}  // namespace kbgap::catalog
