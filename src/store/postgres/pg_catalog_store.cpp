// PostgreSQL implementation of the catalog store: a month replaced in one transaction, its rows
// sent by COPY; reads as the SQLite store's (src/store/sqlite/sqlite_catalog_store.cpp), with
// every order spelled out so both backends give the engine the same rows in the same order.
#include "store/postgres/pg_catalog_store.h"

#include <fmt/format.h>

#include "catalog/wesng_reader.h"
#include "common/clock.h"
#include "common/text.h"

namespace kbgap::store::postgres {
namespace {

using catalog::Document;
using catalog::StoredDocument;

// One catalog writer at a time on the database: 'kbgapct' in ASCII.
constexpr std::int64_t kCatalogLock = 0x6b626761706374;

constexpr const char* kDocumentColumns =
    "SELECT id, title, initial_release, current_release, revision, source, sha256,"
    " vulnerabilities, kb_fixes FROM documents";

StoredDocument stored_document(const Rows& rows, int i) {
  return StoredDocument{rows.text(i, 0), rows.text(i, 1),    rows.text(i, 2),
                        rows.text(i, 3), rows.text(i, 4),    rows.text(i, 5),
                        rows.text(i, 6), rows.integer(i, 7), rows.integer(i, 8)};
}

class PgTransaction final : public catalog::CatalogTransaction {
 public:
  explicit PgTransaction(Connection& c) : c_(c), tx_(c) {}

  Result<void> start() {
    KBGAP_TRY(tx_.begin());
    return c_.exec(fmt::format("SELECT pg_advisory_xact_lock({})", kCatalogLock));
  }

  Result<std::optional<StoredDocument>> find_document(std::string_view id) override {
    auto rows = c_.query(fmt::format("{} WHERE id = $1", kDocumentColumns), {std::string(id)});
    if (!rows) return rows.error();
    if (rows->size() == 0) return std::optional<StoredDocument>{};
    return std::optional<StoredDocument>(stored_document(*rows, 0));
  }

  Result<catalog::MonthFacts> month_facts(std::string_view id) override {
    const std::vector<Param> month{std::string(id)};
    catalog::MonthFacts f;
    auto products = c_.query("SELECT product_id, name FROM products WHERE document_id = $1", month);
    if (!products) return products.error();
    for (int i = 0; i < products->size(); ++i)
      f.products[products->text(i, 0)] = products->text(i, 1);
    auto fixes = c_.query(
        "SELECT r.kb, r.fixed_build, COALESCE(p.name, rp.product_id, '') FROM remediations r"
        " LEFT JOIN remediation_products rp ON rp.remediation_id = r.id"
        " LEFT JOIN products p ON p.document_id = r.document_id AND p.product_id = rp.product_id"
        " WHERE r.document_id = $1",
        month);
    if (!fixes) return fixes.error();
    for (int i = 0; i < fixes->size(); ++i) {
      const auto kb = static_cast<catalog::KbNumber>(fixes->integer(i, 0));
      f.kbs.insert(kb);
      std::string build = fixes->text(i, 1);
      if (!build.empty()) f.fixed_builds[{kb, fixes->text(i, 2)}].insert(std::move(build));
    }
    auto supersedes = c_.query(
        "SELECT r.kb, s.superseded_kb FROM remediation_supersedes s"
        " JOIN remediations r ON r.id = s.remediation_id WHERE r.document_id = $1",
        month);
    if (!supersedes) return supersedes.error();
    for (int i = 0; i < supersedes->size(); ++i) {
      f.supersedes.emplace(static_cast<catalog::KbNumber>(supersedes->integer(i, 0)),
                           static_cast<catalog::KbNumber>(supersedes->integer(i, 1)));
    }
    return f;
  }

  Result<std::set<std::string>> product_ids() override {
    auto rows = c_.query("SELECT DISTINCT product_id FROM products");
    if (!rows) return rows.error();
    std::set<std::string> out;
    for (int i = 0; i < rows->size(); ++i) out.insert(rows->text(i, 0));
    return out;
  }

  Result<std::map<std::string, std::string>> product_names() override {
    auto rows = c_.query(
        "SELECT DISTINCT product_id, name, product_id LIKE 'wesng:%' FROM products"
        " ORDER BY product_id LIKE 'wesng:%', product_id");
    if (!rows) return rows.error();
    std::map<std::string, std::string> out;
    for (int i = 0; i < rows->size(); ++i) {
      out.try_emplace(fold_name(rows->text(i, 1)), rows->text(i, 0));
    }
    return out;
  }

  Result<void> replace_document(const Document& doc, std::string_view changes) override {
    const std::vector<Param> month{doc.id};
    auto existing = c_.query("SELECT 1 FROM documents WHERE id = $1", month);
    if (!existing) return existing.error();
    const bool replaced = existing->size() > 0;
    for (const char* sql :
         {"DELETE FROM remediation_supersedes WHERE remediation_id IN"
          " (SELECT id FROM remediations WHERE document_id = $1)",
          "DELETE FROM remediation_products WHERE remediation_id IN"
          " (SELECT id FROM remediations WHERE document_id = $1)",
          "DELETE FROM remediations WHERE document_id = $1",
          "DELETE FROM vulnerability_products WHERE vulnerability_id IN"
          " (SELECT id FROM vulnerabilities WHERE document_id = $1)",
          "DELETE FROM vulnerabilities WHERE document_id = $1",
          "DELETE FROM products WHERE document_id = $1", "DELETE FROM documents WHERE id = $1"}) {
      KBGAP_TRY(c_.query(sql, month));
    }
    const std::string now = utc_now();
    KBGAP_TRY(c_.query(
        "INSERT INTO documents (id, title, initial_release, current_release, revision, source,"
        " sha256, vulnerabilities, imported_at, kb_fixes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        {doc.id, doc.title, doc.initial_release, doc.current_release, doc.revision, doc.source,
         doc.sha256, std::to_string(doc.vulnerabilities.size()), now,
         std::to_string(catalog::count_kb_fixes(doc))}));
    KBGAP_TRY(c_.query(
        "INSERT INTO catalog_imports (document_id, revision, current_release, sha256, source,"
        " outcome, imported_at, changes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        {doc.id, doc.revision, doc.current_release, doc.sha256, doc.source,
         std::string(replaced ? "replaced" : "added"), now, std::string(changes)}));
    // Row ids follow the largest stored: this transaction holds the catalog's lock.
    auto top = c_.query(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM vulnerabilities),"
        " (SELECT COALESCE(MAX(id), 0) FROM remediations)");
    if (!top) return top.error();
    std::int64_t vuln_id = top->integer(0, 0), rem_id = top->integer(0, 1);
    CopyBuffer products, vulns, vuln_products, rems, rem_products, supersedes;
    for (const catalog::Product& p : doc.products) {
      products.field(doc.id).field(p.id).field(p.name).field(p.family).end_row();
    }
    for (const catalog::Vulnerability& v : doc.vulnerabilities) {
      ++vuln_id;
      vulns.field(vuln_id).field(doc.id).field(std::int64_t{v.ordinal}).field(v.cve).field(v.title);
      vulns.field(v.severity).field(v.impact).field(v.cvss_base).field(v.exploited);
      vulns.field(v.publicly_disclosed);
      for (const std::string* text : {&v.cvss_vector, &v.published, &v.updated}) {
        if (text->empty()) {
          vulns.null();
        } else {
          vulns.field(*text);
        }
      }
      vulns.end_row();
      for (const catalog::AffectedProduct& ap : v.products) {
        vuln_products.field(vuln_id).field(ap.product_id).field(ap.severity).field(ap.impact);
        vuln_products.field(ap.cvss_base).end_row();
      }
      for (const catalog::KbFix& fix : v.fixes) {
        ++rem_id;
        rems.field(rem_id).field(vuln_id).field(doc.id).field(v.cve);
        rems.field(static_cast<std::int64_t>(fix.kb)).field(fix.subtype).field(fix.fixed_build);
        rems.field(fix.fixed_build_raw).field(fix.url).field(fix.restart_required).end_row();
        for (const std::string& pid : fix.product_ids) {
          rem_products.field(rem_id).field(pid).end_row();
        }
        for (catalog::KbNumber s : fix.supersedes) {
          supersedes.field(rem_id).field(static_cast<std::int64_t>(s)).end_row();
        }
      }
    }
    const std::pair<const char*, const CopyBuffer*> tables[] = {
        {"products (document_id, product_id, name, family)", &products},
        {"vulnerabilities (id, document_id, ordinal, cve, title, severity, impact, cvss_base,"
         " exploited, publicly_disclosed, cvss_vector, published, updated)",
         &vulns},
        {"vulnerability_products (vulnerability_id, product_id, severity, impact, cvss_base)",
         &vuln_products},
        {"remediations (id, vulnerability_id, document_id, cve, kb, subtype, fixed_build,"
         " fixed_build_raw, url, restart_required)",
         &rems},
        {"remediation_products (remediation_id, product_id)", &rem_products},
        {"remediation_supersedes (remediation_id, superseded_kb)", &supersedes},
    };
    for (const auto& [table, rows] : tables) {
      if (rows->rows() > 0) KBGAP_TRY(c_.copy(table, *rows));
    }
    return ok_result();
  }

  Result<void> commit() override { return tx_.commit(); }

 private:
  Connection& c_;
  Transaction tx_;
};

}  // namespace

Result<std::unique_ptr<PgCatalogStore>> PgCatalogStore::open(const std::string& url) {
  auto c = Connection::open(url);
  if (!c) return c.error();
  KBGAP_TRY(migrate(*c));
  return std::unique_ptr<PgCatalogStore>(new PgCatalogStore(std::move(*c)));
}

Result<std::unique_ptr<catalog::CatalogTransaction>> PgCatalogStore::begin() {
  auto tx = std::make_unique<PgTransaction>(c_);
  KBGAP_TRY(tx->start());
  return std::unique_ptr<catalog::CatalogTransaction>(std::move(tx));
}

Result<catalog::CatalogStats> PgCatalogStore::stats() {
  const std::string msrc = fmt::format("id NOT LIKE '{}%'", catalog::kWesngDocumentPrefix);
  auto rows = c_.query(fmt::format(
      "SELECT (SELECT COUNT(*) FROM documents WHERE {0}),"
      " (SELECT COUNT(*) FROM documents WHERE NOT {0}),"
      " (SELECT COUNT(DISTINCT product_id) FROM products),"
      " (SELECT COUNT(DISTINCT cve) FROM vulnerabilities),"
      " (SELECT COUNT(DISTINCT kb) FROM remediations),"
      " (SELECT COUNT(*) FROM (SELECT DISTINCT r.kb, s.superseded_kb FROM remediation_supersedes"
      " s JOIN remediations r ON r.id = s.remediation_id) e),"
      " (SELECT COUNT(*) FROM remediations),"
      " (SELECT COALESCE(substr(MIN(initial_release), 1, 10), '') FROM documents WHERE {0}),"
      " (SELECT COALESCE(substr(MAX(initial_release), 1, 10), '') FROM documents WHERE {0}),"
      " (SELECT COALESCE(substr(MIN(initial_release), 1, 10), '') FROM documents WHERE NOT {0})",
      msrc));
  if (!rows) return rows.error();
  catalog::CatalogStats s;
  std::int64_t* counts[] = {&s.documents, &s.bulletin_days,      &s.products,    &s.cves,
                            &s.kbs,       &s.supersedence_edges, &s.remediations};
  for (int i = 0; i < 7; ++i) *counts[i] = rows->integer(0, i);
  s.first_release = rows->text(0, 7);
  s.last_release = rows->text(0, 8);
  s.first_bulletin = rows->text(0, 9);
  return s;
}

Result<std::vector<catalog::StoredDocument>> PgCatalogStore::documents() {
  auto rows = c_.query(fmt::format("{} ORDER BY initial_release, id", kDocumentColumns));
  if (!rows) return rows.error();
  std::vector<StoredDocument> out;
  for (int i = 0; i < rows->size(); ++i) out.push_back(stored_document(*rows, i));
  return out;
}

Result<std::vector<catalog::ImportRecord>> PgCatalogStore::imports() {
  auto rows = c_.query(
      "SELECT document_id, revision, current_release, sha256, source, outcome, imported_at,"
      " changes FROM catalog_imports ORDER BY id");
  if (!rows) return rows.error();
  std::vector<catalog::ImportRecord> out;
  for (int i = 0; i < rows->size(); ++i) {
    out.push_back({rows->text(i, 0), rows->text(i, 1), rows->text(i, 2), rows->text(i, 3),
                   rows->text(i, 4), rows->text(i, 5), rows->text(i, 6), rows->text(i, 7)});
  }
  return out;
}

Result<std::map<std::string, std::string>> PgCatalogStore::listed_releases() {
  auto rows = c_.query("SELECT document_id, listed_release FROM catalog_listed");
  if (!rows) return rows.error();
  std::map<std::string, std::string> out;
  for (int i = 0; i < rows->size(); ++i) out[rows->text(i, 0)] = rows->text(i, 1);
  return out;
}

Result<void> PgCatalogStore::record_listed_release(std::string_view id, std::string_view listed) {
  auto done = c_.query(
      "INSERT INTO catalog_listed (document_id, listed_release) VALUES ($1, $2)"
      " ON CONFLICT (document_id) DO UPDATE SET listed_release = excluded.listed_release",
      {std::string(id), std::string(listed)});
  if (!done) return done.error();
  return ok_result();
}

Result<std::vector<catalog::KbRemediation>> PgCatalogStore::kb_remediations(catalog::KbNumber kb) {
  const std::string number = std::to_string(kb);
  auto rems = c_.query(
      "SELECT r.id, r.document_id, r.cve, r.subtype, r.fixed_build, r.fixed_build_raw, r.url,"
      " r.restart_required FROM remediations r JOIN documents d ON d.id = r.document_id"
      " WHERE r.kb = $1 ORDER BY d.initial_release, r.id",
      {number});
  if (!rems) return rems.error();
  auto products = c_.query(
      "SELECT rp.remediation_id, rp.product_id, COALESCE(p.name, '') FROM remediation_products rp"
      " JOIN remediations r ON r.id = rp.remediation_id"
      " LEFT JOIN products p ON p.document_id = r.document_id AND p.product_id = rp.product_id"
      " WHERE r.kb = $1 ORDER BY rp.remediation_id, rp.product_id",
      {number});
  if (!products) return products.error();
  auto supersedes = c_.query(
      "SELECT s.remediation_id, s.superseded_kb FROM remediation_supersedes s"
      " JOIN remediations r ON r.id = s.remediation_id WHERE r.kb = $1"
      " ORDER BY s.remediation_id, s.superseded_kb",
      {number});
  if (!supersedes) return supersedes.error();
  std::map<std::int64_t, std::size_t> by_id;
  std::vector<catalog::KbRemediation> out;
  for (int i = 0; i < rems->size(); ++i) {
    catalog::KbRemediation r;
    r.kb = kb;
    r.document_id = rems->text(i, 1);
    r.cve = rems->text(i, 2);
    r.subtype = rems->text(i, 3);
    r.fixed_build = rems->text(i, 4);
    r.fixed_build_raw = rems->text(i, 5);
    r.url = rems->text(i, 6);
    r.restart_required = rems->text(i, 7);
    by_id[rems->integer(i, 0)] = out.size();
    out.push_back(std::move(r));
  }
  for (int i = 0; i < products->size(); ++i) {
    if (auto it = by_id.find(products->integer(i, 0)); it != by_id.end()) {
      out[it->second].products.push_back({products->text(i, 1), products->text(i, 2)});
    }
  }
  for (int i = 0; i < supersedes->size(); ++i) {
    if (auto it = by_id.find(supersedes->integer(i, 0)); it != by_id.end()) {
      out[it->second].supersedes.push_back(
          static_cast<catalog::KbNumber>(supersedes->integer(i, 1)));
    }
  }
  return out;
}

Result<catalog::CatalogData> PgCatalogStore::load() {
  catalog::CatalogData data;
  Transaction tx(c_);
  KBGAP_TRY(tx.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  auto documents = this->documents();
  if (!documents) return documents.error();
  data.documents = std::move(*documents);
  // Newest document first, so the first row per id wins.
  auto products = c_.query(
      "SELECT p.product_id, p.name, p.family FROM products p JOIN documents d ON d.id ="
      " p.document_id ORDER BY p.product_id, d.initial_release DESC");
  if (!products) return products.error();
  for (int i = 0; i < products->size(); ++i) {
    std::string id = products->text(i, 0);
    if (!data.products.empty() && data.products.back().id == id) continue;
    data.products.push_back({std::move(id), products->text(i, 1), products->text(i, 2)});
  }
  products = Rows();
  auto cves = c_.query(
      "SELECT v.cve, v.title, v.severity, v.impact, v.cvss_base, v.exploited,"
      " v.publicly_disclosed, COALESCE(v.cvss_vector, ''), COALESCE(v.published,"
      " d.initial_release), COALESCE(v.updated, d.current_release)"
      " FROM vulnerabilities v JOIN documents d ON d.id = v.document_id"
      " ORDER BY v.cve, d.initial_release DESC, v.id");
  if (!cves) return cves.error();
  for (int i = 0; i < cves->size(); ++i) {
    std::string id = cves->text(i, 0);
    std::string published = cves->text(i, 8), updated = cves->text(i, 9);
    if (!data.cves.empty() && data.cves.back().id == id) {
      // An older month that lists the CVE too: its first publication may be there.
      catalog::CatalogData::Cve& newest = data.cves.back();
      if (!published.empty() && (newest.published.empty() || published < newest.published))
        newest.published = std::move(published);
      if (newest.updated < updated) newest.updated = std::move(updated);
      continue;
    }
    data.cves.push_back({std::move(id), cves->text(i, 1), cves->text(i, 2), cves->text(i, 3),
                         cves->optional_double(i, 4), cves->optional_bool(i, 5),
                         cves->optional_bool(i, 6), cves->text(i, 7), std::move(published),
                         std::move(updated)});
  }
  cves = Rows();
  auto fixes = c_.query(
      "SELECT r.document_id, r.cve, rp.product_id, r.subtype, r.fixed_build, r.url, r.kb"
      " FROM remediations r JOIN remediation_products rp ON rp.remediation_id = r.id"
      " ORDER BY r.id, rp.product_id");
  if (!fixes) return fixes.error();
  data.fixes.reserve(static_cast<std::size_t>(fixes->size()));
  for (int i = 0; i < fixes->size(); ++i) {
    data.fixes.push_back({fixes->text(i, 0), fixes->text(i, 1), fixes->text(i, 2),
                          fixes->text(i, 3), fixes->text(i, 4), fixes->text(i, 5),
                          static_cast<catalog::KbNumber>(fixes->integer(i, 6))});
  }
  fixes = Rows();
  auto supersedes = c_.query(
      "SELECT DISTINCT r.kb, s.superseded_kb FROM remediation_supersedes s"
      " JOIN remediations r ON r.id = s.remediation_id ORDER BY 1, 2");
  if (!supersedes) return supersedes.error();
  for (int i = 0; i < supersedes->size(); ++i) {
    data.supersedes.emplace_back(static_cast<catalog::KbNumber>(supersedes->integer(i, 0)),
                                 static_cast<catalog::KbNumber>(supersedes->integer(i, 1)));
  }
  KBGAP_TRY(tx.commit());
  return data;
}

}  // namespace kbgap::store::postgres
