// RAII handles for SQLite: a connection and prepared statements, with errors as values.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kbgap::store::sqlite {

class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}

  // Bind by 1-based index. Text is copied by SQLite (SQLITE_TRANSIENT) only when asked.
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::optional<double> value);
  Statement& bind(int index, std::optional<bool> value);
  Statement& bind_null(int index);

  // Steps once: true when a row is ready, false when done; errors carry SQLite's message.
  Result<bool> step();
  // Steps to completion and resets, for statements that return no rows.
  Result<void> run();
  void reset();

  std::int64_t column_int(int i) const { return sqlite3_column_int64(stmt_.get(), i); }
  std::string column_text(int i) const;
  bool column_is_null(int i) const { return sqlite3_column_type(stmt_.get(), i) == SQLITE_NULL; }
  std::optional<double> column_optional_double(int i) const;
  std::optional<bool> column_optional_bool(int i) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

class Database {
 public:
  // Opens (creating if needed) with WAL, full sync, foreign keys and a busy timeout.
  static Result<Database> open(const std::string& path);

  Result<Statement> prepare(std::string_view sql);
  Result<void> exec(const std::string& sql);  // one or more statements, no rows
  std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }
  sqlite3* handle() const { return db_.get(); }
  const std::string& path() const { return path_; }

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

}  // namespace kbgap::store::sqlite
