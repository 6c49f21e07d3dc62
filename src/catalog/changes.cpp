#include "catalog/changes.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>
#include <iterator>

namespace kbgap::catalog {
namespace {

namespace json = boost::json;

std::string joined(const std::set<std::string>& builds) {
  return fmt::format("{}", fmt::join(builds, ";"));
}

template <typename Set>
std::vector<typename Set::value_type> minus(const Set& a, const Set& b) {
  std::vector<typename Set::value_type> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

MonthFacts facts_of(const Document& doc) {
  MonthFacts f;
  for (const Product& p : doc.products) f.products[p.id] = p.name;
  for (const Vulnerability& v : doc.vulnerabilities) {
    for (const KbFix& fix : v.fixes) {
      f.kbs.insert(fix.kb);
      for (KbNumber older : fix.supersedes) f.supersedes.emplace(fix.kb, older);
      if (fix.fixed_build.empty()) continue;
      for (const std::string& product : fix.product_ids) {
        auto name = f.products.find(product);
        f.fixed_builds[{fix.kb, name == f.products.end() ? product : name->second}].insert(
            fix.fixed_build);
      }
    }
  }
  return f;
}

bool MonthChanges::empty() const {
  return new_kbs.empty() && removed_kbs.empty() && new_supersedes.empty() &&
         removed_supersedes.empty() && fixed_builds.empty() && new_products.empty();
}

MonthChanges changes_between(const MonthFacts& before, const MonthFacts& after,
                             const std::set<std::string>& known_products) {
  MonthChanges c;
  c.new_kbs = minus(after.kbs, before.kbs);
  c.removed_kbs = minus(before.kbs, after.kbs);
  c.new_supersedes = minus(after.supersedes, before.supersedes);
  c.removed_supersedes = minus(before.supersedes, after.supersedes);
  // Fixed builds of a KB both revisions list: what a device at a build is judged by.
  for (const auto& [key, builds] : after.fixed_builds) {
    if (!before.kbs.contains(key.first)) continue;
    auto old = before.fixed_builds.find(key);
    const std::string previous = old == before.fixed_builds.end() ? "" : joined(old->second);
    if (previous != joined(builds)) {
      c.fixed_builds.push_back({key.first, key.second, previous, joined(builds)});
    }
  }
  for (const auto& [key, builds] : before.fixed_builds) {
    if (after.kbs.contains(key.first) && !after.fixed_builds.contains(key)) {
      c.fixed_builds.push_back({key.first, key.second, joined(builds), ""});
    }
  }
  for (const auto& [id, name] : after.products) {
    if (!before.products.contains(id) && !known_products.contains(id)) {
      c.new_products.emplace_back(id, name);
    }
  }
  return c;
}

std::string to_json(const MonthChanges& c) {
  json::object o;
  auto kbs = [](const std::vector<KbNumber>& list) {
    json::array a;
    for (KbNumber kb : list) a.emplace_back(kb);
    return a;
  };
  auto pairs = [](const std::vector<std::pair<KbNumber, KbNumber>>& list) {
    json::array a;
    for (const auto& [kb, older] : list) a.emplace_back(json::array{kb, older});
    return a;
  };
  o["newKbs"] = kbs(c.new_kbs);
  o["removedKbs"] = kbs(c.removed_kbs);
  o["newSupersedence"] = pairs(c.new_supersedes);
  o["removedSupersedence"] = pairs(c.removed_supersedes);
  json::array builds;
  for (const MonthChanges::Build& b : c.fixed_builds) {
    builds.emplace_back(json::object{
        {"kb", b.kb}, {"product", b.product}, {"before", b.before}, {"after", b.after}});
  }
  o["fixedBuilds"] = std::move(builds);
  json::array products;
  for (const auto& [id, name] : c.new_products) {
    products.emplace_back(json::object{{"id", id}, {"name", name}});
  }
  o["newProducts"] = std::move(products);
  return json::serialize(o);
}

Result<MonthChanges> changes_from_json(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return invalid_input("stored changes are not a JSON object");
  const json::object& o = v.as_object();
  MonthChanges c;
  try {
    auto kbs = [&](std::string_view key, std::vector<KbNumber>& out) {
      if (const json::value* a = o.if_contains(key)) {
        for (const json::value& kb : a->as_array()) out.push_back(json::value_to<KbNumber>(kb));
      }
    };
    auto pairs = [&](std::string_view key, std::vector<std::pair<KbNumber, KbNumber>>& out) {
      if (const json::value* a = o.if_contains(key)) {
        for (const json::value& p : a->as_array()) {
          out.emplace_back(json::value_to<KbNumber>(p.as_array().at(0)),
                           json::value_to<KbNumber>(p.as_array().at(1)));
        }
      }
    };
    kbs("newKbs", c.new_kbs);
    kbs("removedKbs", c.removed_kbs);
    pairs("newSupersedence", c.new_supersedes);
    pairs("removedSupersedence", c.removed_supersedes);
    if (const json::value* a = o.if_contains("fixedBuilds")) {
      for (const json::value& b : a->as_array()) {
        const json::object& x = b.as_object();
        c.fixed_builds.push_back(
            {json::value_to<KbNumber>(x.at("kb")), std::string(x.at("product").as_string()),
             std::string(x.at("before").as_string()), std::string(x.at("after").as_string())});
      }
    }
    if (const json::value* a = o.if_contains("newProducts")) {
      for (const json::value& p : a->as_array()) {
        c.new_products.emplace_back(std::string(p.at("id").as_string()),
                                    std::string(p.at("name").as_string()));
      }
    }
  } catch (const std::exception& e) {
    return invalid_input(fmt::format("stored changes do not read: {}", e.what()));
  }
  return c;
}

}  // namespace kbgap::catalog
