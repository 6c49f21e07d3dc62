// Thin, owning wrappers over the SQLite C API.
#include "store/sqlite/sqlite_db.h"

#include <fmt/format.h>

namespace kbgap::store::sqlite {

Statement& Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}

Statement& Statement::bind(int index, std::optional<double> value) {
  if (value) {
    sqlite3_bind_double(stmt_.get(), index, *value);
  } else {
    sqlite3_bind_null(stmt_.get(), index);
  }
  return *this;
}

Statement& Statement::bind(int index, std::optional<bool> value) {
  if (value) {
    sqlite3_bind_int(stmt_.get(), index, *value ? 1 : 0);
  } else {
    sqlite3_bind_null(stmt_.get(), index);
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_.get());
  return storage_error(fmt::format("sqlite: {}", sqlite3_errmsg(db)));
}

Result<void> Statement::run() {
  auto r = step();
  reset();
  if (!r) return r.error();
  return ok_result();
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::string Statement::column_text(int i) const {
  const auto* text = sqlite3_column_text(stmt_.get(), i);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), i)));
}

std::optional<double> Statement::column_optional_double(int i) const {
  if (sqlite3_column_type(stmt_.get(), i) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt_.get(), i);
}

std::optional<bool> Statement::column_optional_bool(int i) const {
  if (sqlite3_column_type(stmt_.get(), i) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int(stmt_.get(), i) != 0;
}

Result<Database> Database::open(const std::string& path) {
  // No global memory statistics: they take a process-wide mutex on every SQLite allocation.
  static const int configured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)configured;
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Database db;
  db.db_.reset(raw);
  db.path_ = path;
  if (rc != SQLITE_OK) {
    return storage_error(fmt::format("{}: cannot open database: {}", path,
                                     raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 10000);
  auto r = db.exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
      "PRAGMA temp_store=MEMORY;");
  if (!r) {
    return storage_error(
        fmt::format("{}: not a usable SQLite database: {}", path, r.error().message));
  }
  return db;
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return storage_error(fmt::format("sqlite: {} in: {}", sqlite3_errmsg(db_.get()), sql));
  }
  return Statement(stmt);
}

Result<void> Database::exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return storage_error(fmt::format("sqlite: {}", text));
  }
  return ok_result();
}

}  // namespace kbgap::store::sqlite
