// Thin, owning wrappers over libpq.
#include "store/postgres/pg_db.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <regex>

#include "common/clock.h"
#include "store/postgres/migrations.h"

namespace kbgap::store::postgres {

std::string Rows::text(int row, int column) const {
  const char* v = PQgetvalue(result_.get(), row, column);
  return std::string(v, static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

std::int64_t Rows::integer(int row, int column) const {
  return std::strtoll(PQgetvalue(result_.get(), row, column), nullptr, 10);
}

std::optional<double> Rows::optional_double(int row, int column) const {
  if (null(row, column)) return std::nullopt;
  return std::strtod(PQgetvalue(result_.get(), row, column), nullptr);
}

std::optional<bool> Rows::optional_bool(int row, int column) const {
  if (null(row, column)) return std::nullopt;
  return PQgetvalue(result_.get(), row, column)[0] == 't';
}

void CopyBuffer::separate() {
  if (row_open_) data_ += '\t';
  row_open_ = true;
}

CopyBuffer& CopyBuffer::field(std::string_view text) {
  separate();
  for (char c : text) {
    switch (c) {
      case '\\':
        data_ += "\\\\";
        break;
      case '\t':
        data_ += "\\t";
        break;
      case '\n':
        data_ += "\\n";
        break;
      case '\r':
        data_ += "\\r";
        break;
      default:
        data_ += c;
    }
  }
  return *this;
}

CopyBuffer& CopyBuffer::field(std::int64_t value) {
  separate();
  data_ += std::to_string(value);
  return *this;
}

CopyBuffer& CopyBuffer::field(std::optional<double> value) {
  if (!value) return null();
  separate();
  data_ += fmt::format("{}", *value);
  return *this;
}

CopyBuffer& CopyBuffer::field(std::optional<bool> value) {
  if (!value) return null();
  separate();
  data_ += *value ? 't' : 'f';
  return *this;
}

CopyBuffer& CopyBuffer::null() {
  separate();
  data_ += "\\N";
  return *this;
}

void CopyBuffer::end_row() {
  data_ += '\n';
  row_open_ = false;
  ++rows_;
}

// A text[] literal of `items`, each quoted.
std::string text_array(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (std::string_view item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : item) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

bool is_postgres_url(std::string_view url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

std::string redact_url(std::string_view url) {
  // user:password@ up to the last '@' (a password may hold '?' or '/' where libpq accepts them).
  static const std::regex in_url(R"(^(postgres(?:ql)?://[^:/@?]*:).*@)");
  static const std::regex in_keywords(R"((password\s*=\s*)('[^']*'|\S+))");
  std::string out = std::regex_replace(std::string(url), in_url, "$1***@");
  out = std::regex_replace(out, in_keywords, "$1***");
  return std::regex_replace(out, std::regex(R"(([?&]password=)[^&]*)"), "$1***");
}

namespace {

// SQLSTATE classes that mean "not now" rather than "wrong": connection exceptions (08), the server
// shutting down or starting (57P01-57P03), too many connections (53300).
bool unavailable_state(std::string_view state) {
  return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03" ||
         state == "53300";
}

std::string first_line(const char* message) {
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace

Error Connection::failure(const PGresult* result, std::string_view what) const {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string message =
      first_line(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_.get()));
  if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK || (state && unavailable_state(state))) {
    return unavailable_error(fmt::format("PostgreSQL at {} is unavailable: {}", where_, message));
  }
  return storage_error(fmt::format("PostgreSQL at {}: {} in: {}", where_, message, what));
}

Result<Connection> Connection::open(const std::string& url) {
  Connection c;
  c.url_ = url;
  c.where_ = redact_url(url);
  // A server that does not answer within 5 s counts as unavailable, not as a hang; nor does a
  // connection whose peer vanished without closing it (keepalives, and 30 s for unacknowledged
  // data). The URL's own settings come after these and win.
  const char* keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                        "application_name",    "dbname",           nullptr};
  const char* values[] = {"5", "1", "10", "5", "3", "30000", "kbgap", url.c_str(), nullptr};
  c.conn_.reset(PQconnectdbParams(keys, values, 1));
  if (!c.conn_ || PQstatus(c.conn_.get()) != CONNECTION_OK) {
    return unavailable_error(fmt::format("PostgreSQL at {} is unavailable: {}", c.where_,
                                         first_line(PQerrorMessage(c.conn_.get()))));
  }
  // Times and ids compare as bytes whatever the database's locale; messages stay short.
  KBGAP_TRY(c.exec("SET client_min_messages = warning; SET TIME ZONE 'UTC'"));
  return c;
}

Result<void> Connection::ensure_connected() {
  if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return ok_result();
  PQreset(conn_.get());
  ++session_;
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return unavailable_error(fmt::format("PostgreSQL at {} is unavailable: {}", where_,
                                         first_line(PQerrorMessage(conn_.get()))));
  }
  return exec("SET client_min_messages = warning; SET TIME ZONE 'UTC'");
}

Result<Rows> Connection::query(std::string_view sql, const std::vector<Param>& params) {
  return run(sql, &params);
}

Result<Rows> Connection::run(std::string_view sql, const std::vector<Param>* params) {
  const std::string text(sql);
  std::vector<const char*> values;
  if (params) {
    values.reserve(params->size());
    for (const Param& p : *params) values.push_back(p ? p->c_str() : nullptr);
  }
  for (int attempt = 0;; ++attempt) {
    KBGAP_TRY(ensure_connected());
    const bool idle = PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
    // Without parameters, the simple protocol: several statements may go at once.
    Rows rows(params ? PQexecParams(conn_.get(), text.c_str(), static_cast<int>(values.size()),
                                    nullptr, values.data(), nullptr, nullptr, 0)
                     : PQexec(conn_.get(), text.c_str()));
    const PGresult* r = rows.raw();
    const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
    // A connection that broke while idle (the server restarted since the last statement): the
    // statement was not run inside a transaction, so it is sent once more on a new connection.
    if (attempt == 0 && idle && PQstatus(conn_.get()) != CONNECTION_OK) continue;
    return failure(r, sql.substr(0, 200));
  }
}

Result<void> Connection::exec(std::string_view sql) {
  auto rows = run(sql, nullptr);
  if (!rows) return rows.error();
  return ok_result();
}

Result<void> Connection::copy(std::string_view table_and_columns, const CopyBuffer& rows) {
  KBGAP_TRY(ensure_connected());
  const std::string sql = fmt::format("COPY {} FROM STDIN", table_and_columns);
  {
    Rows start(PQexec(conn_.get(), sql.c_str()));
    if (!start.raw() || PQresultStatus(start.raw()) != PGRES_COPY_IN) {
      return failure(start.raw(), sql);
    }
  }
  const std::string& data = rows.data();
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t at = 0; at < data.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, data.size() - at);
    if (PQputCopyData(conn_.get(), data.data() + at, static_cast<int>(n)) != 1) {
      return failure(nullptr, sql);
    }
  }
  if (PQputCopyEnd(conn_.get(), nullptr) != 1) return failure(nullptr, sql);
  std::optional<Error> error;
  while (PGresult* raw = PQgetResult(conn_.get())) {
    Rows r(raw);
    if (PQresultStatus(raw) != PGRES_COMMAND_OK && !error) error = failure(raw, sql);
  }
  if (error) return *error;
  return ok_result();
}

Transaction::~Transaction() {
  if (open_) (void)c_.exec("ROLLBACK");
}

Result<void> Transaction::begin(std::string_view mode) {
  KBGAP_TRY(c_.exec(mode));
  open_ = true;
  return ok_result();
}

Result<void> Transaction::commit() {
  open_ = false;
  return c_.exec("COMMIT");
}

// One lock for every kbgap on this database: 'kbgap' in ASCII.
constexpr std::int64_t kMigrationLock = 0x6b62676170;

Result<void> migrate(Connection& c) {
  KBGAP_TRY(c.exec(fmt::format("SELECT pg_advisory_lock({})", kMigrationLock)));
  struct Unlock {
    Connection& c;
    ~Unlock() { (void)c.exec(fmt::format("SELECT pg_advisory_unlock({})", kMigrationLock)); }
  } unlock{c};
  KBGAP_TRY(
      c.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
             " applied_at text NOT NULL)"));
  auto current = c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current) return current.error();
  const std::int64_t have = current->integer(0, 0);
  const int newest = kMigrations.back().version;
  if (have > newest) {
    return storage_error(fmt::format(
        "PostgreSQL at {}: database schema version {} is newer than this kbgap knows ({}); "
        "upgrade kbgap",
        c.where(), have, newest));
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= have) continue;
    Transaction tx(c);
    KBGAP_TRY(tx.begin());
    if (auto applied = c.exec(m.sql); !applied) {
      return storage_error(fmt::format("PostgreSQL at {}: migration {} failed: {}", c.where(),
                                       m.version, applied.error().message));
    }
    KBGAP_TRY(c.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                      {std::to_string(m.version), utc_now()}));
    KBGAP_TRY(tx.commit());
  }
  return ok_result();
}

}  // namespace kbgap::store::postgres
