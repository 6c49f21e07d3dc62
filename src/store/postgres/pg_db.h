// RAII handles for PostgreSQL (libpq): a connection that reconnects, results, COPY, with errors
// as values. A connection that is down or refused is ErrorCode::kUnavailable (the API answers 503
// with Retry-After); every other failure is kStorage. docs/scaling.md says how kbgap uses it.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kbgap::store::postgres {

// A query's rows, read as text (libpq's text format).
class Rows {
 public:
  Rows() = default;
  explicit Rows(PGresult* result) : result_(result) {}
  int size() const { return result_ ? PQntuples(result_.get()) : 0; }
  bool null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string text(int row, int column) const;
  std::int64_t integer(int row, int column) const;
  std::optional<double> optional_double(int row, int column) const;
  std::optional<bool> optional_bool(int row, int column) const;
  const PGresult* raw() const { return result_.get(); }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> result_;
};

// A parameter of a query: text, or SQL NULL.
using Param = std::optional<std::string>;

// Builds COPY's text format: rows of tab-separated fields, escaped.
class CopyBuffer {
 public:
  CopyBuffer& field(std::string_view text);
  CopyBuffer& field(std::int64_t value);
  CopyBuffer& field(std::optional<double> value);
  CopyBuffer& field(std::optional<bool> value);
  CopyBuffer& null();
  void end_row();
  const std::string& data() const { return data_; }
  std::size_t rows() const { return rows_; }
  void clear() {
    data_.clear();
    rows_ = 0;
  }

 private:
  void separate();
  std::string data_;
  bool row_open_ = false;
  std::size_t rows_ = 0;
};

class Connection {
 public:
  // Connects to `url` (postgresql://user@host:port/db?... or libpq's key=value form).
  static Result<Connection> open(const std::string& url);

  // One statement with parameters ($1, $2, ...). A connection found broken is opened again once
  // before the statement is sent (never inside a transaction: `in_transaction` says so).
  Result<Rows> query(std::string_view sql, const std::vector<Param>& params = {});
  // One or more statements without parameters.
  Result<void> exec(std::string_view sql);
  // COPY <table> (<columns>) FROM STDIN with the buffer's rows.
  Result<void> copy(std::string_view table_and_columns, const CopyBuffer& rows);
  // Reconnects when the connection is down; kUnavailable when that fails.
  Result<void> ensure_connected();
  // Which session this is: a number that changes each time the connection is opened again (with
  // the session goes what it held, such as advisory locks).
  std::uint64_t session() const { return session_; }
  PGconn* handle() const { return conn_.get(); }
  // The URL without its password, for messages.
  const std::string& where() const { return where_; }

 private:
  Error failure(const PGresult* result, std::string_view what) const;
  Result<Rows> run(std::string_view sql, const std::vector<Param>* params);
  struct Finish {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  std::unique_ptr<PGconn, Finish> conn_;
  std::string url_, where_;
  std::uint64_t session_ = 1;
};

// A transaction: BEGIN now, ROLLBACK unless committed.
class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Result<void> begin(std::string_view mode = "BEGIN");
  Result<void> commit();

 private:
  Connection& c_;
  bool open_ = false;
};

// A text[] literal of `items` (each quoted), for a parameter such as `id = ANY($1::text[])`.
std::string text_array(const std::vector<std::string_view>& items);

// Whether a storage URL names PostgreSQL (postgresql:// or postgres://).
bool is_postgres_url(std::string_view url);
// The URL with any password replaced by "***".
std::string redact_url(std::string_view url);

// Applies the numbered migrations of src/store/postgres/migrations the database lacks, under a
// session advisory lock, so that servers starting together apply each exactly once.
Result<void> migrate(Connection& c);

}  // namespace kbgap::store::postgres
