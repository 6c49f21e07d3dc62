// MSRC CVRF 1.2 reader on pugixml. Elements are matched by local name, so any namespace prefix
// works.
#include "catalog/cvrf_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <pugixml.hpp>
#include <set>
#include <unordered_set>

#include "catalog/cvrf_fields.h"
#include "common/digest.h"

namespace kbgap::catalog {
namespace {

std::string_view local_name(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
  for (pugi::xml_node c = parent.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && local_name(c) == name) return c;
  }
  return {};
}

template <typename F>
void for_each_child(const pugi::xml_node& parent, std::string_view name, F&& f) {
  for (pugi::xml_node c = parent.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && local_name(c) == name) f(c);
  }
}

std::string text_of(const pugi::xml_node& node) {
  return fold_spaces(node.child_value());
}

int line_of(std::string_view xml, std::ptrdiff_t offset) {
  offset = std::clamp<std::ptrdiff_t>(offset, 0, static_cast<std::ptrdiff_t>(xml.size()));
  return 1 + static_cast<int>(std::count(xml.begin(), xml.begin() + offset, '\n'));
}

// "2020-03-10T07:00:00Z" or "2020-03-10T07:00:00" (both seen; both UTC) -> "...Z".
bool normalize_timestamp(std::string_view in, std::string& out) {
  if (in.size() < 19 || in[4] != '-' || in[7] != '-' || in[10] != 'T' || in[13] != ':' ||
      in[16] != ':') {
    return false;
  }
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) {
    if (in[i] < '0' || in[i] > '9') return false;
  }
  out.assign(in.substr(0, 19));
  out.push_back('Z');
  return true;
}

std::optional<double> parse_score(std::string_view s) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0 || v > 10) return std::nullopt;
  return v;
}

// "Publicly Disclosed:No;Exploited:Yes;Latest Software Release:..." -> the two flags.
void read_exploit_status(std::string_view text, Vulnerability& v) {
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view item = text.substr(0, semi);
    auto colon = item.find(':');
    if (colon != std::string_view::npos) {
      std::string key = fold_spaces(item.substr(0, colon));
      std::string value = fold_spaces(item.substr(colon + 1));
      std::optional<bool> flag;
      if (value == "Yes") flag = true;
      if (value == "No") flag = false;
      if (key == "Exploited") v.exploited = flag;
      if (key == "Publicly Disclosed") v.publicly_disclosed = flag;
    }
    if (semi == std::string_view::npos) break;
    text.remove_prefix(semi + 1);
  }
}

// Real product trees are two levels deep (Vendor > Product Family); the walk is recursive, so a
// hostile document must not be able to nest branches until the stack runs out.
constexpr int kMaxBranchDepth = 16;
// A CVSS v3 vector is about 44 characters; a longer text is not one and is passed over.
constexpr std::size_t kMaxVectorLength = 200;

class Reader {
 public:
  Reader(std::string_view xml, std::string_view source) : xml_(xml), source_(source) {}

  Result<ParsedDocument> read() {
    pugi::xml_document dom;
    pugi::xml_parse_result parsed =
        dom.load_buffer(xml_.data(), xml_.size(), pugi::parse_default, pugi::encoding_auto);
    if (xml_.empty()) return fail(1, "empty file, expected an MSRC CVRF XML document");
    if (!parsed) {
      return fail(line_of(xml_, parsed.offset),
                  fmt::format("malformed XML: {}", parsed.description()));
    }
    pugi::xml_node root = dom.document_element();
    if (local_name(root) != "cvrfdoc") {
      return fail(line_of(xml_, root.offset_debug()),
                  fmt::format("not an MSRC CVRF document (root element <{}>, expected <cvrfdoc>)",
                              root.name()));
    }
    ParsedDocument out;
    Document& doc = out.document;
    doc.source = std::string(source_);
    doc.sha256 = sha256_hex(xml_);
    if (auto r = read_header(root, doc, out.skips); !r) return r.error();
    if (auto r = read_products(root, doc, out.skips); !r) return r.error();
    for_each_child(root, "Vulnerability", [&](const pugi::xml_node& node) {
      doc.vulnerabilities.push_back(read_vulnerability(node, out.skips));
    });
    return out;
  }

 private:
  Error fail(int line, std::string_view what) const {
    return invalid_input(fmt::format("{}:{}: {}", source_, line, what));
  }
  Error fail(const pugi::xml_node& at, std::string_view what) const {
    return fail(line_of(xml_, at.offset_debug()), what);
  }

  Result<void> read_header(const pugi::xml_node& root, Document& doc, SkipCounts& skips) {
    pugi::xml_node tracking = child(root, "DocumentTracking");
    if (!tracking) return fail(root, "CVRF document without DocumentTracking");
    doc.id = text_of(child(child(tracking, "Identification"), "ID"));
    if (doc.id.empty()) {
      return fail(tracking, "CVRF document without DocumentTracking/Identification/ID");
    }
    if (std::string canonical = canonical_document_id(doc.id); canonical != doc.id) {
      skips.add(reason::kDocumentIdCase);  // 2018-Feb calls itself "2018-FEB"
      doc.id = std::move(canonical);
    }
    doc.title = text_of(child(root, "DocumentTitle"));
    if (doc.title.empty()) return fail(root, "CVRF document without DocumentTitle");
    for (auto [name, field] : {std::pair{"InitialReleaseDate", &doc.initial_release},
                               std::pair{"CurrentReleaseDate", &doc.current_release}}) {
      pugi::xml_node node = child(tracking, name);
      if (!normalize_timestamp(text_of(node), *field)) {
        return fail(node ? node : tracking,
                    fmt::format("{} is '{}', expected YYYY-MM-DDThh:mm:ss", name, text_of(node)));
      }
    }
    for_each_child(child(tracking, "RevisionHistory"), "Revision", [&](const pugi::xml_node& rev) {
      std::string number = text_of(child(rev, "Number"));
      if (!number.empty() && (doc.revision.empty() || revision_less(doc.revision, number))) {
        doc.revision = number;
      }
    });
    if (doc.revision.empty()) doc.revision = text_of(child(tracking, "Version"));
    return ok_result();
  }

  Result<void> read_products(const pugi::xml_node& root, Document& doc, SkipCounts& skips) {
    pugi::xml_node tree = child(root, "ProductTree");
    if (!tree) return fail(root, "CVRF document without ProductTree");
    std::map<std::string, std::size_t> index;  // ProductID -> position in doc.products
    // Product Family branches sit under a Vendor branch; 2016-2017 documents list every product
    // a second time outside any family, and some products (CBL Mariner) only there.
    std::ptrdiff_t too_deep = -1;  // offset of the first branch past kMaxBranchDepth
    auto walk = [&](auto&& self, const pugi::xml_node& node, const std::string& family,
                    int depth) -> void {
      for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
        if (c.type() != pugi::node_element) continue;
        std::string_view name = local_name(c);
        if (name == "Branch") {
          if (depth >= kMaxBranchDepth) {
            too_deep = c.offset_debug();
            return;
          }
          bool is_family = std::string_view(c.attribute("Type").value()) == "Product Family";
          self(self, c, is_family ? fold_spaces(c.attribute("Name").value()) : family, depth + 1);
          if (too_deep >= 0) return;
        } else if (name == "FullProductName") {
          Product p;
          p.id = fold_spaces(c.attribute("ProductID").value());
          if (p.id.empty()) continue;
          std::string_view raw = c.child_value();
          p.name = fold_spaces(raw);
          if (raw.find("  ") != std::string_view::npos) skips.add(reason::kProductNameSpaces);
          p.family = family;
          auto [it, inserted] = index.try_emplace(p.id, doc.products.size());
          if (inserted) {
            doc.products.push_back(std::move(p));
          } else if (doc.products[it->second].family.empty()) {
            doc.products[it->second].family = std::move(p.family);
          }
        }
      }
    };
    walk(walk, tree, "", 0);
    if (too_deep >= 0) {
      return fail(line_of(xml_, too_deep),
                  fmt::format("product tree nested deeper than {} branches", kMaxBranchDepth));
    }
    for (const auto& [id, position] : index) known_products_.insert(id);
    return ok_result();
  }

  Vulnerability read_vulnerability(const pugi::xml_node& node, SkipCounts& skips) {
    Vulnerability v;
    v.ordinal = node.attribute("Ordinal").as_int();
    v.cve = text_of(child(node, "CVE"));
    v.title = text_of(child(node, "Title"));

    std::map<std::string, AffectedProduct> affected;  // by ProductID
    std::vector<std::string> order;
    auto product = [&](const std::string& id) -> AffectedProduct& {
      auto [it, inserted] = affected.try_emplace(id);
      if (inserted) {
        it->second.product_id = id;
        order.push_back(id);
      }
      return it->second;
    };
    for_each_child(child(node, "ProductStatuses"), "Status", [&](const pugi::xml_node& status) {
      for_each_child(status, "ProductID", [&](const pugi::xml_node& p) { product(text_of(p)); });
    });
    for_each_child(child(node, "Threats"), "Threat", [&](const pugi::xml_node& threat) {
      std::string_view type = threat.attribute("Type").value();
      std::string description = text_of(child(threat, "Description"));
      if (type == "Exploit Status") {
        read_exploit_status(description, v);
        return;
      }
      for_each_child(threat, "ProductID", [&](const pugi::xml_node& p) {
        AffectedProduct& ap = product(text_of(p));
        if (type == "Severity") ap.severity = description;
        if (type == "Impact") ap.impact = description;
      });
    });
    std::optional<double> vector_score;  // the score v.cvss_vector belongs to
    for_each_child(child(node, "CVSSScoreSets"), "ScoreSet", [&](const pugi::xml_node& set) {
      std::optional<double> base = parse_score(text_of(child(set, "BaseScore")));
      for_each_child(set, "ProductID", [&](const pugi::xml_node& p) {
        AffectedProduct& ap = product(text_of(p));
        if (base && (!ap.cvss_base || *ap.cvss_base < *base)) ap.cvss_base = base;
      });
      std::string vector = text_of(child(set, "Vector"));
      if (base && vector.starts_with("CVSS:") && vector.size() <= kMaxVectorLength &&
          (!vector_score || *vector_score < *base)) {
        vector_score = base;
        v.cvss_vector = std::move(vector);
      }
    });
    // The CVE's own revision history: when it was published and last revised.
    for_each_child(child(node, "RevisionHistory"), "Revision", [&](const pugi::xml_node& rev) {
      std::string when;
      if (!normalize_timestamp(text_of(child(rev, "Date")), when)) return;
      if (v.published.empty() || when < v.published) v.published = when;
      if (v.updated.empty() || v.updated < when) v.updated = when;
    });

    std::map<std::string, int> impact_votes;
    for (const std::string& id : order) {
      AffectedProduct& ap = affected[id];
      if (msrc_severity_rank(ap.severity) > msrc_severity_rank(v.severity))
        v.severity = ap.severity;
      if (!ap.impact.empty()) ++impact_votes[ap.impact];
      if (ap.cvss_base && (!v.cvss_base || *v.cvss_base < *ap.cvss_base))
        v.cvss_base = ap.cvss_base;
      v.products.push_back(std::move(ap));
    }
    int best = 0;
    for (const AffectedProduct& ap : v.products) {  // first seen wins a tie
      auto it = impact_votes.find(ap.impact);
      if (it != impact_votes.end() && it->second > best) {
        best = it->second;
        v.impact = ap.impact;
      }
    }

    for_each_child(child(node, "Remediations"), "Remediation",
                   [&](const pugi::xml_node& rem) { read_remediation(rem, v, skips); });
    return v;
  }

  void read_remediation(const pugi::xml_node& rem, Vulnerability& v, SkipCounts& skips) {
    if (std::string_view(rem.attribute("Type").value()) != "Vendor Fix") {
      skips.add(reason::kNotVendorFix);
      return;
    }
    KbFix fix;
    fix.kb = parse_kb_number(text_of(child(rem, "Description")));
    if (fix.kb == 0) {
      skips.add(reason::kFixWithoutKb);
      return;
    }
    const std::string subtype = text_of(child(rem, "SubType"));
    fix.subtype = canonical_subtype(subtype);
    if (fix.subtype.empty()) skips.add(reason::kSubtypeMissing);
    if (fix.subtype != subtype) skips.add(reason::kSubtypeSpelling);
    fix.url = text_of(child(rem, "URL"));
    fix.restart_required = text_of(child(rem, "RestartRequired"));
    fix.fixed_build_raw = text_of(child(rem, "FixedBuild"));
    fix.fixed_build = normalize_fixed_build(fix.fixed_build_raw, skips);
    fix.supersedes = parse_supersedence(child(rem, "Supercedence").child_value(), fix.kb, skips);
    for_each_child(rem, "ProductID", [&](const pugi::xml_node& p) {
      std::string id = text_of(p);
      if (id.empty()) return;
      if (!known_products_.contains(id)) skips.add(reason::kUnknownProductId);
      if (std::find(fix.product_ids.begin(), fix.product_ids.end(), id) == fix.product_ids.end()) {
        fix.product_ids.push_back(std::move(id));
      }
    });
    std::sort(fix.product_ids.begin(), fix.product_ids.end());

    // MSRC sometimes lists the same fix twice, once without FixedBuild: keep one, the richer.
    for (KbFix& twin : v.fixes) {
      if (twin.kb == fix.kb && twin.product_ids == fix.product_ids && twin.subtype == fix.subtype) {
        skips.add(reason::kDuplicateFix);
        if (twin.fixed_build_raw.empty()) {
          twin.fixed_build_raw = std::move(fix.fixed_build_raw);
          twin.fixed_build = std::move(fix.fixed_build);
        }
        for (KbNumber s : fix.supersedes) {
          if (std::find(twin.supersedes.begin(), twin.supersedes.end(), s) ==
              twin.supersedes.end()) {
            twin.supersedes.push_back(s);
          }
        }
        if (twin.url.empty()) twin.url = std::move(fix.url);
        if (twin.restart_required.empty()) twin.restart_required = std::move(fix.restart_required);
        return;
      }
    }
    v.fixes.push_back(std::move(fix));
  }

  std::string_view xml_;
  std::string_view source_;
  std::set<std::string> known_products_;
};

}  // namespace

Result<ParsedDocument> read_cvrf(std::string_view xml, std::string_view source) {
  return Reader(xml, source).read();
}

}  // namespace kbgap::catalog
