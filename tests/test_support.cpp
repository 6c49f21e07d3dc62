// Test helpers over the real data bundled with kbgap.
#include "test_support.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "catalog/bundled_catalog.h"
#include "catalog/tar_zst_reader.h"
#include "store/postgres/pg_db.h"

namespace kbgap::test {

const std::map<std::string, std::string>& real_documents() {
  static const std::map<std::string, std::string> docs = [] {
    std::map<std::string, std::string> out;
    auto reader = catalog::TarZstReader::from_memory(catalog::bundled_catalog_archive(), "bundled");
    for (;;) {
      auto member = reader.next();
      if (!member) throw std::runtime_error(member.error().message);
      if (!*member) break;
      // cvrf/cvrfDocument-2020-Mar.xml -> 2020-Mar
      std::string name = (*member)->name;
      auto dash = name.find("cvrfDocument-");
      auto dot = name.rfind(".xml");
      if (dash == std::string::npos || dot == std::string::npos) continue;
      dash += std::string_view("cvrfDocument-").size();
      out.emplace(name.substr(dash, dot - dash), std::move((*member)->content));
    }
    return out;
  }();
  return docs;
}

const std::string& real_document(const std::string& id) {
  const auto& docs = real_documents();
  auto it = docs.find(id);
  if (it == docs.end()) throw std::runtime_error("no bundled document " + id);
  return it->second;
}

std::size_t count_occurrences(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          fmt::format("kbgap-test-{}-{:08x}", ::getpid(), rd());
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::str(const std::string& child) const {
  return child.empty() ? path_.string() : (path_ / child).string();
}

void write_file(const std::filesystem::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string newer_revision_of_march_2020(std::size_t* vulnerabilities) {
  std::string xml = real_document("2020-Mar");
  auto replace = [&](const std::string& from, const std::string& to) {
    auto pos = xml.find(from);
    if (pos == std::string::npos) throw std::runtime_error("not in document: " + from);
    xml.replace(pos, from.size(), to);
  };
  replace("<cvrf:CurrentReleaseDate>2020-04-01T07:00:00Z",
          "<cvrf:CurrentReleaseDate>2020-05-01T07:00:00Z");
  replace("<cvrf:Number>11</cvrf:Number>", "<cvrf:Number>12</cvrf:Number>");
  auto start = xml.find("<vuln:Vulnerability ");
  auto end = xml.find("</vuln:Vulnerability>", start) + std::string("</vuln:Vulnerability>").size();
  xml.erase(start, end - start);
  *vulnerabilities = count_occurrences(xml, "<vuln:Vulnerability ");
  return xml;
}

TempPgDatabase::TempPgDatabase() {
  const char* file = std::getenv("KBGAP_TEST_POSTGRES");
  if (file == nullptr || *file == '\0') return;
  std::ifstream in(file);
  if (!in || !std::getline(in, admin_url_) || admin_url_.empty()) {
    throw std::runtime_error(fmt::format("KBGAP_TEST_POSTGRES: cannot read a URL from {}", file));
  }
  static std::atomic<int> made{0};
  name_ = fmt::format("kbgap_test_{}_{}", ::getpid(), made++);
  auto admin = store::postgres::Connection::open(admin_url_);
  if (!admin) throw std::runtime_error(admin.error().message);
  if (auto r = admin->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_)); !r) {
    throw std::runtime_error(r.error().message);
  }
  if (auto r = admin->exec(fmt::format("CREATE DATABASE {}", name_)); !r) {
    throw std::runtime_error(r.error().message);
  }
  // The admin URL ends in /postgres (scripts/pg_server.sh).
  url_ = admin_url_.substr(0, admin_url_.rfind('/') + 1) + name_;
}

TempPgDatabase::~TempPgDatabase() {
  if (url_.empty()) return;
  if (auto admin = store::postgres::Connection::open(admin_url_)) {
    (void)admin->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_));
  }
}

bool TempPgDatabase::sql(const std::string& statements, std::string* error) const {
  auto c = store::postgres::Connection::open(url_);
  auto done = c ? c->exec(statements) : Result<void>(c.error());
  if (!done && error) *error = done.error().message;
  return done.ok();
}

CommandResult run_kbgap(const std::string& args) {
  TempDir io;
  std::string cmd = fmt::format("CI=true {} {} >{} 2>{} </dev/null", KBGAP_BINARY, args,
                                io.str("out"), io.str("err"));
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(io.path() / "out");
  r.err = read_file(io.path() / "err");
  return r;
}

// Everything stored, as text: two catalogs are the same when their dumps are.
std::string dump(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::string out;
  for (const char* sql :
       {"SELECT id, title, current_release, revision, sha256 FROM documents ORDER BY id",
        "SELECT COUNT(*), SUM(length(name)) FROM products",
        "SELECT COUNT(*), SUM(kb), SUM(length(fixed_build)) FROM remediations",
        "SELECT COUNT(*) FROM remediation_products",
        "SELECT COUNT(*), SUM(superseded_kb) FROM remediation_supersedes",
        "SELECT COUNT(*) FROM vulnerabilities", "SELECT COUNT(*) FROM vulnerability_products",
        "SELECT tenant, id, inventory, first_seen, last_seen FROM devices ORDER BY tenant, id",
        "SELECT version FROM fleet_version", "PRAGMA integrity_check"}) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* t = sqlite3_column_text(stmt, i);
        out += t ? reinterpret_cast<const char*>(t) : "NULL";
        out += '|';
      }
      out += '\n';
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

}  // namespace kbgap::test
