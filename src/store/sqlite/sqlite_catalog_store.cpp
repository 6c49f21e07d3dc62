// SQLite implementation of the catalog store: migrations, atomic per-month replacement, queries.
#include "store/sqlite/sqlite_catalog_store.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <map>

#include "catalog/wesng_reader.h"
#include "common/clock.h"
#include "common/text.h"
#include "store/sqlite/migrations.h"

namespace kbgap::store::sqlite {
namespace {

using catalog::Document;
using catalog::StoredDocument;

// The columns of documents that make a StoredDocument, and how to read them back.
constexpr const char* kDocumentColumns =
    "SELECT id, title, initial_release, current_release, revision, source, sha256,"
    " vulnerabilities, kb_fixes FROM documents";

// Calls on_row(stmt) for each row the statement gives.
template <typename OnRow>
Result<void> each_row(Statement& stmt, OnRow&& on_row) {
  for (;;) {
    auto row = stmt.step();
    if (!row) return row.error();
    if (!*row) return ok_result();
    on_row(stmt);
  }
}

StoredDocument stored_document(const Statement& row) {
  return StoredDocument{row.column_text(0), row.column_text(1), row.column_text(2),
                        row.column_text(3), row.column_text(4), row.column_text(5),
                        row.column_text(6), row.column_int(7),  row.column_int(8)};
}

class SqliteTransaction final : public catalog::CatalogTransaction {
 public:
  explicit SqliteTransaction(Database& db) : db_(db) {}
  ~SqliteTransaction() override {
    if (open_) (void)db_.exec("ROLLBACK");
  }

  Result<void> start() {
    KBGAP_TRY(db_.exec("BEGIN IMMEDIATE"));
    open_ = true;
    return ok_result();
  }

  Result<std::optional<StoredDocument>> find_document(std::string_view id) override {
    auto stmt = db_.prepare(fmt::format("{} WHERE id = ?", kDocumentColumns));
    if (!stmt) return stmt.error();
    stmt->bind(1, id);
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) return std::optional<StoredDocument>{};
    return std::optional<StoredDocument>(stored_document(*stmt));
  }

  Result<catalog::MonthFacts> month_facts(std::string_view id) override {
    catalog::MonthFacts f;
    auto products = db_.prepare("SELECT product_id, name FROM products WHERE document_id = ?");
    if (!products) return products.error();
    products->bind(1, id);
    KBGAP_TRY(each_row(*products, [&](const Statement& row) {
      f.products[row.column_text(0)] = row.column_text(1);
    }));
    auto fixes = db_.prepare(
        "SELECT r.kb, r.fixed_build, COALESCE(p.name, rp.product_id, '') FROM remediations r"
        " LEFT JOIN remediation_products rp ON rp.remediation_id = r.id"
        " LEFT JOIN products p ON p.document_id = r.document_id AND p.product_id = rp.product_id"
        " WHERE r.document_id = ?");
    if (!fixes) return fixes.error();
    fixes->bind(1, id);
    KBGAP_TRY(each_row(*fixes, [&](const Statement& row) {
      const auto kb = static_cast<catalog::KbNumber>(row.column_int(0));
      f.kbs.insert(kb);
      std::string build = row.column_text(1);
      if (!build.empty()) f.fixed_builds[{kb, row.column_text(2)}].insert(std::move(build));
    }));
    auto supersedes = db_.prepare(
        "SELECT r.kb, s.superseded_kb FROM remediation_supersedes s"
        " JOIN remediations r ON r.id = s.remediation_id WHERE r.document_id = ?");
    if (!supersedes) return supersedes.error();
    supersedes->bind(1, id);
    KBGAP_TRY(each_row(*supersedes, [&](const Statement& row) {
      f.supersedes.emplace(static_cast<catalog::KbNumber>(row.column_int(0)),
                           static_cast<catalog::KbNumber>(row.column_int(1)));
    }));
    return f;
  }

  Result<std::set<std::string>> product_ids() override {
    auto stmt = db_.prepare("SELECT DISTINCT product_id FROM products");
    if (!stmt) return stmt.error();
    std::set<std::string> out;
    KBGAP_TRY(each_row(*stmt, [&](const Statement& row) { out.insert(row.column_text(0)); }));
    return out;
  }

  Result<std::map<std::string, std::string>> product_names() override {
    auto stmt = db_.prepare(
        "SELECT DISTINCT product_id, name FROM products "
        "ORDER BY product_id LIKE 'wesng:%', product_id");
    if (!stmt) return stmt.error();
    std::map<std::string, std::string> out;
    KBGAP_TRY(each_row(*stmt, [&](const Statement& row) {
      out.try_emplace(fold_name(row.column_text(1)), row.column_text(0));
    }));
    return out;
  }

  Result<void> replace_document(const Document& doc, std::string_view changes) override {
    KBGAP_TRY(prepare_all());
    find_document_.bind(1, doc.id);
    auto existing = find_document_.step();
    if (!existing) return existing.error();
    const bool replaced = *existing;
    find_document_.reset();
    for (Statement* del : {&del_supersedes_, &del_rem_products_, &del_remediations_,
                           &del_vuln_products_, &del_vulns_, &del_products_, &del_document_}) {
      del->bind(1, doc.id);
      KBGAP_TRY(del->run());
    }
    ins_document_.bind(1, doc.id)
        .bind(2, doc.title)
        .bind(3, doc.initial_release)
        .bind(4, doc.current_release)
        .bind(5, doc.revision)
        .bind(6, doc.source)
        .bind(7, doc.sha256)
        .bind(8, static_cast<std::int64_t>(doc.vulnerabilities.size()))
        .bind(9, utc_now())
        .bind(10, catalog::count_kb_fixes(doc));
    KBGAP_TRY(ins_document_.run());
    ins_import_.bind(1, doc.id)
        .bind(2, doc.revision)
        .bind(3, doc.current_release)
        .bind(4, doc.sha256)
        .bind(5, doc.source)
        .bind(6, std::string_view(replaced ? "replaced" : "added"))
        .bind(7, utc_now())
        .bind(8, changes);
    KBGAP_TRY(ins_import_.run());
    for (const catalog::Product& p : doc.products) {
      ins_product_.bind(1, doc.id).bind(2, p.id).bind(3, p.name).bind(4, p.family);
      KBGAP_TRY(ins_product_.run());
    }
    for (const catalog::Vulnerability& v : doc.vulnerabilities) {
      ins_vuln_.bind(1, doc.id)
          .bind(2, static_cast<std::int64_t>(v.ordinal))
          .bind(3, v.cve)
          .bind(4, v.title)
          .bind(5, v.severity)
          .bind(6, v.impact)
          .bind(7, v.cvss_base)
          .bind(8, v.exploited)
          .bind(9, v.publicly_disclosed);
      for (auto [index, text] : {std::pair{10, &v.cvss_vector}, std::pair{11, &v.published},
                                 std::pair{12, &v.updated}}) {
        if (text->empty()) {
          ins_vuln_.bind_null(index);
        } else {
          ins_vuln_.bind(index, *text);
        }
      }
      KBGAP_TRY(ins_vuln_.run());
      const std::int64_t vuln_id = db_.last_insert_rowid();
      for (const catalog::AffectedProduct& ap : v.products) {
        ins_vuln_product_.bind(1, vuln_id)
            .bind(2, ap.product_id)
            .bind(3, ap.severity)
            .bind(4, ap.impact)
            .bind(5, ap.cvss_base);
        KBGAP_TRY(ins_vuln_product_.run());
      }
      for (const catalog::KbFix& fix : v.fixes) {
        ins_remediation_.bind(1, vuln_id)
            .bind(2, doc.id)
            .bind(3, v.cve)
            .bind(4, static_cast<std::int64_t>(fix.kb))
            .bind(5, fix.subtype)
            .bind(6, fix.fixed_build)
            .bind(7, fix.fixed_build_raw)
            .bind(8, fix.url)
            .bind(9, fix.restart_required);
        KBGAP_TRY(ins_remediation_.run());
        const std::int64_t rem_id = db_.last_insert_rowid();
        for (const std::string& pid : fix.product_ids) {
          ins_rem_product_.bind(1, rem_id).bind(2, pid);
          KBGAP_TRY(ins_rem_product_.run());
        }
        for (catalog::KbNumber s : fix.supersedes) {
          ins_supersedes_.bind(1, rem_id).bind(2, static_cast<std::int64_t>(s));
          KBGAP_TRY(ins_supersedes_.run());
        }
      }
    }
    return ok_result();
  }

  Result<void> commit() override {
    KBGAP_TRY(db_.exec("COMMIT"));
    open_ = false;
    return ok_result();
  }

 private:
  Result<void> prepare_all() {
    if (prepared_) return ok_result();
    const std::pair<Statement*, const char*> statements[] = {
        {&del_supersedes_,
         "DELETE FROM remediation_supersedes WHERE remediation_id IN"
         " (SELECT id FROM remediations WHERE document_id = ?)"},
        {&del_rem_products_,
         "DELETE FROM remediation_products WHERE remediation_id IN"
         " (SELECT id FROM remediations WHERE document_id = ?)"},
        {&del_remediations_, "DELETE FROM remediations WHERE document_id = ?"},
        {&del_vuln_products_,
         "DELETE FROM vulnerability_products WHERE vulnerability_id IN"
         " (SELECT id FROM vulnerabilities WHERE document_id = ?)"},
        {&del_vulns_, "DELETE FROM vulnerabilities WHERE document_id = ?"},
        {&del_products_, "DELETE FROM products WHERE document_id = ?"},
        {&del_document_, "DELETE FROM documents WHERE id = ?"},
        {&ins_document_,
         "INSERT INTO documents (id, title, initial_release, current_release, revision, source,"
         " sha256, vulnerabilities, imported_at, kb_fixes) VALUES (?,?,?,?,?,?,?,?,?,?)"},
        {&find_document_, "SELECT 1 FROM documents WHERE id = ?"},
        {&ins_import_,
         "INSERT INTO catalog_imports (document_id, revision, current_release, sha256, source,"
         " outcome, imported_at, changes) VALUES (?,?,?,?,?,?,?,?)"},
        {&ins_product_,
         "INSERT INTO products (document_id, product_id, name, family) VALUES (?,?,?,?)"},
        {&ins_vuln_,
         "INSERT INTO vulnerabilities (document_id, ordinal, cve, title, severity, impact,"
         " cvss_base, exploited, publicly_disclosed, cvss_vector, published, updated)"
         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"},
        {&ins_vuln_product_,
         "INSERT INTO vulnerability_products (vulnerability_id, product_id, severity, impact,"
         " cvss_base) VALUES (?,?,?,?,?)"},
        {&ins_remediation_,
         "INSERT INTO remediations (vulnerability_id, document_id, cve, kb, subtype, fixed_build,"
         " fixed_build_raw, url, restart_required) VALUES (?,?,?,?,?,?,?,?,?)"},
        {&ins_rem_product_,
         "INSERT INTO remediation_products (remediation_id, product_id) VALUES (?,?)"},
        {&ins_supersedes_,
         "INSERT INTO remediation_supersedes (remediation_id, superseded_kb) VALUES (?,?)"},
    };
    for (const auto& [stmt, sql] : statements) {
      auto prepared = db_.prepare(sql);
      if (!prepared) return prepared.error();
      *stmt = std::move(*prepared);
    }
    prepared_ = true;
    return ok_result();
  }

  Database& db_;
  bool open_ = false;
  bool prepared_ = false;
  Statement del_supersedes_, del_rem_products_, del_remediations_, del_vuln_products_, del_vulns_,
      del_products_, del_document_, ins_document_, ins_product_, ins_vuln_, ins_vuln_product_,
      ins_remediation_, ins_rem_product_, ins_supersedes_, find_document_, ins_import_;
};

Result<std::int64_t> query_int(Database& db, const char* sql) {
  auto stmt = db.prepare(sql);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  return *row ? stmt->column_int(0) : 0;
}

}  // namespace

Result<void> migrate(Database& db) {
  KBGAP_TRY(
      db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
              " applied_at TEXT NOT NULL)"));
  auto current = query_int(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current) return current.error();
  const int newest = kMigrations.back().version;
  if (*current > newest) {
    return storage_error(fmt::format(
        "{}: database schema version {} is newer than this kbgap knows ({}); upgrade kbgap",
        db.path(), *current, newest));
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= *current) continue;
    KBGAP_TRY(db.exec("BEGIN IMMEDIATE"));
    // Another process may have applied it while this one waited for the write lock.
    auto now_current = query_int(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!now_current || *now_current >= m.version) {
      (void)db.exec("ROLLBACK");
      if (!now_current) return now_current.error();
      continue;
    }
    auto applied = db.exec(m.sql);
    if (applied) {
      applied = db.exec(
          fmt::format("INSERT INTO schema_migrations (version, applied_at) VALUES ({}, '{}')",
                      m.version, utc_now()));
    }
    if (!applied) {
      (void)db.exec("ROLLBACK");
      return storage_error(fmt::format("{}: migration {} failed: {}", db.path(), m.version,
                                       applied.error().message));
    }
    KBGAP_TRY(db.exec("COMMIT"));
  }
  return ok_result();
}

Result<std::unique_ptr<SqliteCatalogStore>> SqliteCatalogStore::open(const std::string& path) {
  auto db = Database::open(path);
  if (!db) return db.error();
  KBGAP_TRY(migrate(*db));
  return std::unique_ptr<SqliteCatalogStore>(new SqliteCatalogStore(std::move(*db)));
}

Result<std::unique_ptr<catalog::CatalogTransaction>> SqliteCatalogStore::begin() {
  auto tx = std::make_unique<SqliteTransaction>(db_);
  KBGAP_TRY(tx->start());
  return std::unique_ptr<catalog::CatalogTransaction>(std::move(tx));
}

Result<catalog::CatalogStats> SqliteCatalogStore::stats() {
  catalog::CatalogStats s;
  // MSRC's documents apart from the days of bulletins before 2016 (catalog/wesng_reader.h).
  const std::string msrc = fmt::format("id NOT LIKE '{}%'", catalog::kWesngDocumentPrefix);
  const std::string documents = "SELECT COUNT(*) FROM documents WHERE " + msrc;
  const std::string days = "SELECT COUNT(*) FROM documents WHERE NOT " + msrc;
  const std::pair<std::int64_t*, const char*> counts[] = {
      {&s.documents, documents.c_str()},
      {&s.bulletin_days, days.c_str()},
      {&s.products, "SELECT COUNT(DISTINCT product_id) FROM products"},
      {&s.cves, "SELECT COUNT(DISTINCT cve) FROM vulnerabilities"},
      {&s.kbs, "SELECT COUNT(DISTINCT kb) FROM remediations"},
      {&s.supersedence_edges,
       "SELECT COUNT(*) FROM (SELECT DISTINCT r.kb, s.superseded_kb FROM remediation_supersedes s"
       " JOIN remediations r ON r.id = s.remediation_id)"},
      {&s.remediations, "SELECT COUNT(*) FROM remediations"},
  };
  for (const auto& [field, sql] : counts) {
    auto n = query_int(db_, sql);
    if (!n) return n.error();
    *field = *n;
  }
  auto range = db_.prepare(fmt::format(
      "SELECT COALESCE(substr(MIN(initial_release), 1, 10), ''),"
      " COALESCE(substr(MAX(initial_release), 1, 10), ''),"
      " (SELECT COALESCE(substr(MIN(initial_release), 1, 10), '') FROM documents WHERE NOT {})"
      " FROM documents WHERE {}",
      msrc, msrc));
  if (!range) return range.error();
  auto row = range->step();
  if (!row) return row.error();
  s.first_release = range->column_text(0);
  s.last_release = range->column_text(1);
  s.first_bulletin = range->column_text(2);
  return s;
}

Result<std::vector<catalog::StoredDocument>> SqliteCatalogStore::documents() {
  auto stmt = db_.prepare(fmt::format("{} ORDER BY initial_release", kDocumentColumns));
  if (!stmt) return stmt.error();
  std::vector<StoredDocument> out;
  KBGAP_TRY(each_row(*stmt, [&](const Statement& row) { out.push_back(stored_document(row)); }));
  return out;
}

Result<std::vector<catalog::ImportRecord>> SqliteCatalogStore::imports() {
  auto stmt = db_.prepare(
      "SELECT document_id, revision, current_release, sha256, source, outcome, imported_at,"
      " changes FROM catalog_imports ORDER BY id");
  if (!stmt) return stmt.error();
  std::vector<catalog::ImportRecord> out;
  KBGAP_TRY(each_row(*stmt, [&](const Statement& row) {
    out.push_back({row.column_text(0), row.column_text(1), row.column_text(2), row.column_text(3),
                   row.column_text(4), row.column_text(5), row.column_text(6), row.column_text(7)});
  }));
  return out;
}

Result<std::map<std::string, std::string>> SqliteCatalogStore::listed_releases() {
  auto stmt = db_.prepare("SELECT document_id, listed_release FROM catalog_listed");
  if (!stmt) return stmt.error();
  std::map<std::string, std::string> out;
  KBGAP_TRY(
      each_row(*stmt, [&](const Statement& row) { out[row.column_text(0)] = row.column_text(1); }));
  return out;
}

Result<void> SqliteCatalogStore::record_listed_release(std::string_view id,
                                                       std::string_view listed) {
  auto stmt = db_.prepare(
      "INSERT INTO catalog_listed (document_id, listed_release) VALUES (?, ?)"
      " ON CONFLICT (document_id) DO UPDATE SET listed_release = excluded.listed_release");
  if (!stmt) return stmt.error();
  stmt->bind(1, id).bind(2, listed);
  return stmt->run();
}

Result<std::vector<catalog::KbRemediation>> SqliteCatalogStore::kb_remediations(
    catalog::KbNumber kb) {
  auto rems = db_.prepare(
      "SELECT r.id, r.document_id, r.cve, r.subtype, r.fixed_build, r.fixed_build_raw, r.url,"
      " r.restart_required FROM remediations r JOIN documents d ON d.id = r.document_id"
      " WHERE r.kb = ? ORDER BY d.initial_release, r.id");
  auto products = db_.prepare(
      "SELECT rp.product_id, COALESCE(p.name, '') FROM remediation_products rp"
      " JOIN remediations r ON r.id = rp.remediation_id"
      " LEFT JOIN products p ON p.document_id = r.document_id AND p.product_id = rp.product_id"
      " WHERE rp.remediation_id = ? ORDER BY rp.product_id");
  auto supersedes = db_.prepare(
      "SELECT superseded_kb FROM remediation_supersedes WHERE remediation_id = ?"
      " ORDER BY superseded_kb");
  if (!rems) return rems.error();
  if (!products) return products.error();
  if (!supersedes) return supersedes.error();
  rems->bind(1, static_cast<std::int64_t>(kb));
  std::vector<catalog::KbRemediation> out;
  for (;;) {
    auto row = rems->step();
    if (!row) return row.error();
    if (!*row) break;
    catalog::KbRemediation r;
    const std::int64_t id = rems->column_int(0);
    r.kb = kb;
    r.document_id = rems->column_text(1);
    r.cve = rems->column_text(2);
    r.subtype = rems->column_text(3);
    r.fixed_build = rems->column_text(4);
    r.fixed_build_raw = rems->column_text(5);
    r.url = rems->column_text(6);
    r.restart_required = rems->column_text(7);
    products->bind(1, id);
    for (;;) {
      auto p = products->step();
      if (!p) return p.error();
      if (!*p) break;
      r.products.push_back({products->column_text(0), products->column_text(1)});
    }
    products->reset();
    supersedes->bind(1, id);
    for (;;) {
      auto s = supersedes->step();
      if (!s) return s.error();
      if (!*s) break;
      r.supersedes.push_back(static_cast<catalog::KbNumber>(supersedes->column_int(0)));
    }
    supersedes->reset();
    out.push_back(std::move(r));
  }
  return out;
}

Result<catalog::CatalogData> SqliteCatalogStore::load() {
  catalog::CatalogData data;
  auto documents = this->documents();
  if (!documents) return documents.error();
  data.documents = std::move(*documents);

  // Read in one transaction so that a concurrent import cannot mix two catalogs.
  KBGAP_TRY(db_.exec("BEGIN"));
  struct EndRead {
    Database& db;
    ~EndRead() { (void)db.exec("COMMIT"); }
  } end_read{db_};

  auto each_row = [&](const char* sql, auto&& on_row) -> Result<void> {
    auto stmt = db_.prepare(sql);
    if (!stmt) return stmt.error();
    for (;;) {
      auto row = stmt->step();
      if (!row) return row.error();
      if (!*row) return ok_result();
      on_row(*stmt);
    }
  };
  // Newest document first, so the first row per id wins.
  KBGAP_TRY(
      each_row("SELECT p.product_id, p.name, p.family FROM products p JOIN documents d ON d.id ="
               " p.document_id ORDER BY p.product_id, d.initial_release DESC",
               [&](const Statement& row) {
                 std::string id = row.column_text(0);
                 if (!data.products.empty() && data.products.back().id == id) return;
                 data.products.push_back({std::move(id), row.column_text(1), row.column_text(2)});
               }));
  KBGAP_TRY(each_row(
      "SELECT v.cve, v.title, v.severity, v.impact, v.cvss_base, v.exploited,"
      " v.publicly_disclosed, v.cvss_vector, COALESCE(v.published, d.initial_release),"
      " COALESCE(v.updated, d.current_release)"
      " FROM vulnerabilities v JOIN documents d ON d.id = v.document_id"
      " ORDER BY v.cve, d.initial_release DESC",
      [&](const Statement& row) {
        std::string id = row.column_text(0);
        std::string published = row.column_text(8), updated = row.column_text(9);
        if (!data.cves.empty() && data.cves.back().id == id) {
          // An older month that lists the CVE too: its first publication may be there.
          catalog::CatalogData::Cve& newest = data.cves.back();
          if (!published.empty() && (newest.published.empty() || published < newest.published))
            newest.published = std::move(published);
          if (newest.updated < updated) newest.updated = std::move(updated);
          return;
        }
        catalog::CatalogData::Cve c{std::move(id),
                                    row.column_text(1),
                                    row.column_text(2),
                                    row.column_text(3),
                                    row.column_optional_double(4),
                                    row.column_optional_bool(5),
                                    row.column_optional_bool(6),
                                    row.column_text(7),
                                    std::move(published),
                                    std::move(updated)};
        data.cves.push_back(std::move(c));
      }));
  KBGAP_TRY(
      each_row("SELECT r.document_id, r.cve, rp.product_id, r.subtype, r.fixed_build, r.url, r.kb"
               " FROM remediations r JOIN remediation_products rp ON rp.remediation_id = r.id",
               [&](const Statement& row) {
                 data.fixes.push_back({row.column_text(0), row.column_text(1), row.column_text(2),
                                       row.column_text(3), row.column_text(4), row.column_text(5),
                                       static_cast<catalog::KbNumber>(row.column_int(6))});
               }));
  KBGAP_TRY(
      each_row("SELECT DISTINCT r.kb, s.superseded_kb FROM remediation_supersedes s"
               " JOIN remediations r ON r.id = s.remediation_id ORDER BY 1, 2",
               [&](const Statement& row) {
                 data.supersedes.emplace_back(static_cast<catalog::KbNumber>(row.column_int(0)),
                                              static_cast<catalog::KbNumber>(row.column_int(1)));
               }));
  return data;
}

}  // namespace kbgap::store::sqlite
