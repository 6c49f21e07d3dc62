// Shared test helpers: the real CVRF documents bundled with kbgap, temporary dirs, running kbgap.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

namespace kbgap::test {

// Every document of data/catalog/cvrf-2016-2026.tar.zst, by its month id ("2020-Mar").
const std::map<std::string, std::string>& real_documents();
const std::string& real_document(const std::string& id);

// 2020-Mar as MSRC might revise it: revision 12, released 2020-05-01, its first vulnerability
// withdrawn (how many remain is set in `vulnerabilities`).
std::string newer_revision_of_march_2020(std::size_t* vulnerabilities);

// Counts occurrences of `needle` in `haystack`: an independent check on what the parser reads.
std::size_t count_occurrences(std::string_view haystack, std::string_view needle);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str(const std::string& child = "") const;

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& path, std::string_view content);
std::string read_file(const std::filesystem::path& path);

// Everything a catalog database holds, summarized as text: equal dumps, equal catalogs.
std::string dump(const std::string& db_path);

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// PostgreSQL for the tests of the PostgreSQL backend: the throwaway server ctest starts
// (scripts/pg_server.sh, KBGAP_TEST_POSTGRES names the file with its URL). A TempPgDatabase is a
// new, empty database on it, dropped at the end; `url()` is empty when there is no server (the
// test is then skipped: run it through ctest).
class TempPgDatabase {
 public:
  TempPgDatabase();
  ~TempPgDatabase();
  TempPgDatabase(const TempPgDatabase&) = delete;
  TempPgDatabase& operator=(const TempPgDatabase&) = delete;
  const std::string& url() const { return url_; }
  // Runs SQL on it behind kbgap's back (damage from outside); false with the message on failure.
  bool sql(const std::string& statements, std::string* error = nullptr) const;

 private:
  std::string admin_url_, name_, url_;
};

// Runs the built kbgap binary with the given arguments (already shell-quoted), CI=true.
CommandResult run_kbgap(const std::string& args);

}  // namespace kbgap::test
