// PostgreSQL device store: one transaction per batch (COPY into a temporary table, then one
// upsert), the fleet version bumped inside it and announced to every server by NOTIFY.
#include "store/postgres/pg_device_store.h"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>

#include "common/clock.h"
#include "common/text.h"
#include "store/device_batch.h"

namespace kbgap::store::postgres {
namespace {

constexpr const char* kChannel = "kbgap_fleet";
// Serializes writers of the change log across servers: 'kbgapcl' in ASCII.
constexpr std::int64_t kChangeLogLock = 0x6b62676170636c;
// Held for its session by the one server that records the change log: 'kbgaprc'.
constexpr std::int64_t kRecorderLock = 0x6b626761707263;

}  // namespace

Result<std::unique_ptr<PgDeviceStore>> PgDeviceStore::open(const std::string& url) {
  auto c = Connection::open(url);
  if (!c) return c.error();
  KBGAP_TRY(migrate(*c));
  auto store = std::unique_ptr<PgDeviceStore>(new PgDeviceStore(std::move(*c)));
  auto version = store->c_.query("SELECT version FROM fleet_version WHERE id = 1");
  if (!version) return version.error();
  if (version->size() != 1) return storage_error("PostgreSQL: fleet_version has no row");
  store->version_ = version->integer(0, 0);
  static std::atomic<std::uint64_t> stores{0};
  store->pending_ = fmt::format(" pending {}-{}-{}-{:016x}", ::gethostid(), ::getpid(), stores++,
                                std::random_device()() * 0x100000000ull + std::random_device()());
  store->listener_ = std::thread([s = store.get(), url] { s->listen(url); });
  return store;
}

PgDeviceStore::~PgDeviceStore() {
  stop_ = true;
  if (listener_.joinable()) listener_.join();
}

void PgDeviceStore::raise(std::int64_t version) {
  std::int64_t seen = version_.load();
  while (seen < version && !version_.compare_exchange_weak(seen, version)) {
  }
}

void PgDeviceStore::listen(std::string url) {
  using namespace std::chrono;
  std::optional<Connection> c;
  int listening = 0;  // the session that listens
  auto last_check = steady_clock::now() - hours(1);
  while (!stop_) {
    if (!c || PQstatus(c->handle()) != CONNECTION_OK) {
      c.reset();
      auto opened = Connection::open(url);
      if (!opened || !opened->exec(fmt::format("LISTEN {}", kChannel))) {
        // Down: the known version stays, reads go on from the last snapshot; try again soon.
        for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(milliseconds(100));
        continue;
      }
      c = std::move(*opened);
      listening = PQbackendPID(c->handle());
      last_check = steady_clock::now() - hours(1);
    }
    // A query below may have opened the connection again: LISTEN belongs to a session.
    if (PQbackendPID(c->handle()) != listening) {
      c.reset();
      continue;
    }
    // Notifications can be missed while reconnecting: the version is read now and then as well.
    if (steady_clock::now() - last_check >= milliseconds(500)) {
      last_check = steady_clock::now();
      const std::int64_t known = version_.load();
      if (auto v = c->query("SELECT version FROM fleet_version WHERE id = 1"); v && v->size()) {
        const std::int64_t now = v->integer(0, 0);
        // Below what this server knew before it asked (every number it knows was committed
        // before it learned it, so a read after that cannot be lower unless the database went
        // back): restored or failed over to an older copy, or a notification lied. The
        // database's number is the truth; unless a newer one arrived meanwhile.
        if (now < known) {
          std::int64_t expected = known;
          version_.compare_exchange_strong(expected, now);
        } else {
          raise(now);
        }
      }
      continue;
    }
    pollfd fd{PQsocket(c->handle()), POLLIN, 0};
    if (fd.fd < 0) {
      c.reset();
      continue;
    }
    (void)::poll(&fd, 1, 100);
    if (PQconsumeInput(c->handle()) != 1) continue;  // the connection broke: opened again above
    while (PGnotify* n = PQnotifies(c->handle())) {
      raise(std::strtoll(n->extra, nullptr, 10));
      PQfreemem(n);
    }
  }
}

Result<std::int64_t> PgDeviceStore::version() {
  return version_.load();
}

bool PgDeviceStore::records_changes() {
  std::lock_guard lock(mutex_);
  if (!c_.ensure_connected()) return false;
  if (recorder_session_ == c_.session()) return true;  // still the session that took the lock
  auto taken = c_.query(fmt::format("SELECT pg_try_advisory_lock({})", kRecorderLock));
  if (!taken || taken->size() != 1 || taken->text(0, 0) != "t") return false;
  recorder_session_ = c_.session();  // the one that ran the query
  // Changes recorded and never published are those of a recorder whose session ended (killed,
  // or its connection lost) before it published them: no reader lists them, and this one
  // records from its own snapshots. They go with its first recording (record_changes), or they
  // would be kept for good.
  clean_log_ = true;
  return true;
}

Result<void> PgDeviceStore::check() {
  std::lock_guard lock(mutex_);
  return c_.exec("SELECT 1");
}

Result<VersionStep> PgDeviceStore::bump_version() {
  // The row's lock also orders the writes of every server: one at a time commits its version.
  auto v = c_.query(
      "UPDATE fleet_version f SET version = version + 1 WHERE id = 1 RETURNING version, devices,"
      " coalesce((SELECT token FROM version_tokens t WHERE t.version = f.version - 1), '')");
  if (!v) return v.error();
  if (v->size() != 1) return storage_error("PostgreSQL: fleet_version has no row");
  VersionStep step;
  step.version = v->integer(0, 0);
  step.devices = v->integer(0, 1);
  step.previous_token = v->text(0, 2);
  step.token = new_version_token();
  // Its token, and the tokens kept as long as removals are.
  KBGAP_TRY(
      c_.query("INSERT INTO version_tokens (version, token) VALUES ($1, $2)"
               " ON CONFLICT (version) DO UPDATE SET token = excluded.token",
               {std::to_string(step.version), step.token}));
  KBGAP_TRY(c_.query("DELETE FROM version_tokens WHERE version <= $1",
                     {std::to_string(step.version - kKeepRemovals)}));
  // Delivered to every listener when the transaction commits, never before.
  KBGAP_TRY(c_.query("SELECT pg_notify($1, $2)", {kChannel, std::to_string(step.version)}));
  return step;
}

Result<DeviceWrite> PgDeviceStore::put(const std::vector<inventory::Device>& devices,
                                       std::string_view now) {
  auto prepared = prepare_batch(devices, now);
  if (!prepared) return prepared.error();
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin());
  auto step = bump_version();
  if (!step) return step.error();
  std::vector<std::string_view> tenants, ids;
  tenants.reserve(prepared->size());
  ids.reserve(prepared->size());
  for (const PreparedDevice& p : *prepared) {
    tenants.push_back(p.device.tenant);
    ids.push_back(p.device.id);
  }
  auto existing = c_.query(
      "SELECT tenant, id, first_seen FROM devices"
      " WHERE (tenant, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
      {text_array(tenants), text_array(ids)});
  if (!existing) return existing.error();
  std::map<std::pair<std::string, std::string>, std::string> stored_first;
  for (int i = 0; i < existing->size(); ++i) {
    stored_first.emplace(std::pair{existing->text(i, 0), existing->text(i, 1)},
                         existing->text(i, 2));
  }
  DeviceWrite write;
  write.version = step->version;
  write.token = std::move(step->token);
  write.previous_token = std::move(step->previous_token);
  CopyBuffer rows;
  for (PreparedDevice& p : *prepared) {
    inventory::Device& d = p.device;
    auto it = stored_first.find(std::pair{d.tenant, d.id});
    (it != stored_first.end() ? write.replaced : write.created) += 1;
    // The earlier first-seen time is kept.
    if (it != stored_first.end()) {
      if (auto stored = utc_time_from_rfc3339(it->second); stored && *stored < d.first_seen) {
        d.first_seen = std::move(*stored);
        p.json = stored_json(d);
      }
    }
    rows.field(d.tenant)
        .field(d.id)
        .field(d.computer_dns_name)
        .field(to_lower(d.computer_dns_name))
        .field(p.json)
        .field(d.first_seen)
        .field(d.last_seen)
        .field(now)
        .end_row();
  }
  write.stored = step->devices + static_cast<std::int64_t>(write.created);
  KBGAP_TRY(c_.exec(
      "CREATE TEMP TABLE IF NOT EXISTS incoming_devices (tenant text COLLATE \"C\","
      " id text COLLATE \"C\", computer_dns_name text, name_key text COLLATE \"C\", inventory text,"
      " first_seen text COLLATE \"C\", last_seen text COLLATE \"C\", updated_at text)"
      " ON COMMIT DELETE ROWS"));
  KBGAP_TRY(
      c_.copy("incoming_devices (tenant, id, computer_dns_name, name_key, inventory, first_seen,"
              " last_seen, updated_at)",
              rows));
  // Each row carries the version that wrote it: what changed_since() reads.
  KBGAP_TRY(c_.query(
      "INSERT INTO devices (tenant, id, computer_dns_name, name_key, inventory,"
      " first_seen, last_seen, updated_at, written_version)"
      " SELECT tenant, id, computer_dns_name, name_key, inventory, first_seen, last_seen,"
      " updated_at, $1 FROM incoming_devices"
      " ON CONFLICT (tenant, id) DO UPDATE SET computer_dns_name = excluded.computer_dns_name,"
      " name_key = excluded.name_key, inventory = excluded.inventory,"
      " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
      " updated_at = excluded.updated_at, written_version = excluded.written_version",
      {std::to_string(write.version)}));
  if (write.created > 0) {
    KBGAP_TRY(c_.query("UPDATE fleet_version SET devices = devices + $1 WHERE id = 1",
                       {std::to_string(write.created)}));
  }
  KBGAP_TRY(tx.commit());
  raise(write.version);
  write.devices.reserve(prepared->size());
  for (PreparedDevice& p : *prepared) write.devices.push_back(stored_device(p));
  return write;
}

Result<bool> PgDeviceStore::remove(std::string_view tenant, std::string_view id) {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin());
  // The version row first, as put() does: two servers' writes lock in one order, never deadlock.
  auto step = bump_version();
  if (!step) return step.error();
  const std::int64_t version = step->version;
  auto removed = c_.query("DELETE FROM devices WHERE tenant = $1 AND id = $2 RETURNING id",
                          {std::string(tenant), std::string(id)});
  if (!removed) return removed.error();
  if (removed->size() == 0) return false;  // rolled back: nothing changed
  // Remembered for changed_since(); the oldest forgotten (a snapshot from before them reads every
  // device).
  KBGAP_TRY(
      c_.query("INSERT INTO removed_devices (tenant, id, version) VALUES ($1, $2, $3)"
               " ON CONFLICT (tenant, id) DO UPDATE SET version = excluded.version",
               {std::string(tenant), std::string(id), std::to_string(version)}));
  KBGAP_TRY(c_.exec("UPDATE fleet_version SET devices = devices - 1 WHERE id = 1"));
  if (version > kKeepRemovals) {
    const std::string horizon = std::to_string(version - kKeepRemovals);
    KBGAP_TRY(c_.query("DELETE FROM removed_devices WHERE version <= $1", {horizon}));
    KBGAP_TRY(c_.query("UPDATE fleet_version SET forgotten = greatest(forgotten, $1) WHERE id = 1",
                       {horizon}));
  }
  KBGAP_TRY(tx.commit());
  raise(version);
  return true;
}

Result<PgDeviceStore::VersionRow> PgDeviceStore::database_version() {
  auto v = c_.query("SELECT version, forgotten, devices FROM fleet_version WHERE id = 1");
  if (!v) return v.error();
  if (v->size() != 1) return storage_error("PostgreSQL: fleet_version has no row");
  return VersionRow{v->integer(0, 0), v->integer(0, 1), v->integer(0, 2)};
}

Result<std::string> PgDeviceStore::token_of(std::int64_t version) {
  auto t =
      c_.query("SELECT token FROM version_tokens WHERE version = $1", {std::to_string(version)});
  if (!t) return t.error();
  return t->size() == 1 ? t->text(0, 0) : std::string();
}

Result<void> PgDeviceStore::read_devices(std::string_view where, std::optional<std::int64_t> since,
                                         std::vector<inventory::Device>& devices,
                                         std::vector<DamagedDevice>& damaged) {
  // Pages of rows, not one result of every row: a million stored inventories would be gigabytes
  // in libpq's memory at once.
  constexpr int kPage = 5000;
  const std::string sql = fmt::format(
      "SELECT tenant, id, inventory, first_seen, last_seen FROM devices"
      " WHERE (tenant, id) > ($1, $2) AND ({}) ORDER BY tenant, id LIMIT {}",
      where, kPage);
  std::string last_tenant, last_id;  // every tenant's name is longer
  for (;;) {
    auto rows = since ? c_.query(sql, {last_tenant, last_id, std::to_string(*since)})
                      : c_.query(sql, {last_tenant, last_id});
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
      std::string tenant = rows->text(i, 0);
      std::string id = rows->text(i, 1);
      auto read =
          read_stored_device(tenant, id, rows->text(i, 2), rows->text(i, 3), rows->text(i, 4));
      if (!read) {
        damaged.push_back({std::move(tenant), std::move(id), read.error().message});
        continue;
      }
      devices.push_back(std::move(*read));
    }
    if (rows->size() < kPage) return ok_result();
    last_tenant = rows->text(rows->size() - 1, 0);
    last_id = rows->text(rows->size() - 1, 1);
  }
}

Result<StoredDevices> PgDeviceStore::all() {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);  // the rows and the version they are, as one state
  KBGAP_TRY(tx.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  StoredDevices out;
  auto version = database_version();
  if (!version) return version.error();
  out.version = version->version;
  auto token = token_of(out.version);
  if (!token) return token.error();
  out.token = std::move(*token);
  KBGAP_TRY(read_devices("true", std::nullopt, out.devices, out.damaged));
  KBGAP_TRY(tx.commit());
  raise(out.version);
  return out;
}

Result<void> PgDeviceStore::recount() {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  // READ COMMITTED whatever the database's default: the count must see what committed before it.
  KBGAP_TRY(tx.begin("BEGIN ISOLATION LEVEL READ COMMITTED"));
  // Every writer locks the version row first: with it held, the count below (a new statement,
  // which sees every write committed before it) cannot move until this commits.
  KBGAP_TRY(c_.exec("SELECT version FROM fleet_version WHERE id = 1 FOR UPDATE"));
  KBGAP_TRY(
      c_.exec("UPDATE fleet_version SET devices = (SELECT count(*) FROM devices) WHERE id = 1"));
  return tx.commit();
}

Result<std::optional<DeviceChanges>> PgDeviceStore::changed_since(std::int64_t since,
                                                                  std::string_view token) {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  auto version = database_version();
  if (!version) return version.error();
  const std::int64_t now = version->version;
  if (since > now || since < version->forgotten) return std::optional<DeviceChanges>();
  auto then = token_of(since);
  if (!then) return then.error();
  if (*then != token) return std::optional<DeviceChanges>();  // not the version the caller read
  DeviceChanges out;
  out.version = now;
  auto current = token_of(now);
  if (!current) return current.error();
  out.token = std::move(*current);
  out.stored = version->devices;
  KBGAP_TRY(read_devices("written_version > $3::bigint", since, out.written, out.damaged));
  // A device removed, then written again, is listed as written only.
  auto removed = c_.query(
      "SELECT tenant, id FROM removed_devices r WHERE version > $1::bigint AND NOT EXISTS"
      " (SELECT 1 FROM devices d WHERE d.tenant = r.tenant AND d.id = r.id) ORDER BY tenant, id",
      {std::to_string(since)});
  if (!removed) return removed.error();
  for (int i = 0; i < removed->size(); ++i) {
    out.removed.push_back({removed->text(i, 0), removed->text(i, 1)});
  }
  KBGAP_TRY(tx.commit());
  // The newest version known here, too (a server's own writes raise it at once; this keeps a
  // server that missed a notification from asking again).
  raise(now);
  return std::optional<DeviceChanges>(std::move(out));
}

Result<void> PgDeviceStore::check_recorder_session() const {
  if (recorder_session_ == 0 || recorder_session_ == c_.session()) return ok_result();
  return unavailable_error(fmt::format(
      "PostgreSQL at {}: the session that held the change log's lock has ended", c_.where()));
}

Result<void> PgDeviceStore::record_changes(const std::vector<ChangeSet>& sets) {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin());
  KBGAP_TRY(check_recorder_session());
  // Numbered on from the end of the log: one server at a time.
  KBGAP_TRY(c_.exec(fmt::format("SELECT pg_advisory_xact_lock({})", kChangeLogLock)));
  const bool cleaning = clean_log_;
  if (cleaning) {
    KBGAP_TRY(on_change_log("DELETE FROM {} WHERE NOT at >= '0'", {}));
    parts_.clear();  // none of the parts it knew is stored now
  }
  // Each tenant's rows on from the end of its log.
  std::map<std::string, std::int64_t, std::less<>> ends;
  parts_.begin();
  const std::string where = fmt::format("PostgreSQL at {}", c_.where());
  auto insert = [&](const ChangePart& part) -> Result<std::int64_t> {
    auto id =
        c_.query("INSERT INTO change_parts (at, rows, count) VALUES ($1, $2, $3) RETURNING id",
                 {pending_, change_rows_json(part.rows), std::to_string(part.count)});
    if (!id) return id.error();
    return id->integer(0, 0);
  };
  CopyBuffer devices;
  for (const ChangeSet& set : sets) {
    auto it = ends.find(set.tenant);
    if (it == ends.end()) {
      auto end = c_.query(
          "SELECT position + count FROM device_changes WHERE tenant = $1"
          " ORDER BY position DESC LIMIT 1",
          {set.tenant});
      if (!end) return end.error();
      it = ends.emplace(set.tenant, end->size() ? end->integer(0, 0) : 0).first;
    }
    std::int64_t& position = it->second;
    const auto count = static_cast<std::int64_t>(set.rows());
    std::vector<std::int64_t> ids;
    ids.reserve(set.parts.size());
    for (const auto& part : set.parts) {
      auto part_row = parts_.id(*part, where, insert);
      if (!part_row) return part_row.error();
      ids.push_back(*part_row);
    }
    auto id = c_.query(
        "INSERT INTO change_sets (at, rows, count, parts) VALUES ($1, '[]', $2, $3) RETURNING id",
        {pending_, std::to_string(count), part_ids_json(ids)});
    if (!id) return id.error();
    const std::int64_t set_id = id->integer(0, 0);
    for (const auto& [device_id, device_name] : set.devices) {
      devices.field(set.tenant)
          .field(pending_)
          .field(device_id)
          .field(device_name)
          .field(set_id)
          .field(count);
      devices.field(position).end_row();
      position += count;
    }
  }
  if (devices.rows() > 0) {
    KBGAP_TRY(
        c_.copy("device_changes (tenant, at, device_id, device_name, change_set, count, position)",
                devices));
  }
  KBGAP_TRY(tx.commit());
  parts_.committed();
  if (cleaning) clean_log_ = false;
  return ok_result();
}

Result<void> PgDeviceStore::on_change_log(std::string_view sql, const std::vector<Param>& params) {
  for (const char* table : {"device_changes", "change_sets", "change_parts"}) {
    KBGAP_TRY(c_.query(fmt::format(fmt::runtime(sql), table), params));
  }
  return ok_result();
}

Result<void> PgDeviceStore::publish_changes(std::string_view at, std::string_view forget_before) {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin());
  KBGAP_TRY(check_recorder_session());
  KBGAP_TRY(on_change_log("UPDATE {} SET at = $1 WHERE at = $2", {std::string(at), pending_}));
  // Times start with a digit; unpublished changes (a space first) are not forgotten here.
  KBGAP_TRY(
      on_change_log("DELETE FROM {} WHERE at >= '0' AND at < $1", {std::string(forget_before)}));
  KBGAP_TRY(tx.commit());
  parts_.clear();
  return ok_result();
}

Result<void> PgDeviceStore::discard_changes() {
  std::lock_guard lock(mutex_);
  Transaction tx(c_);
  KBGAP_TRY(tx.begin());
  KBGAP_TRY(on_change_log("DELETE FROM {} WHERE at = $1", {pending_}));
  parts_.clear();  // whether or not they are gone: passed again, they are stored again
  return tx.commit();
}

Result<DeviceStore::ChangeRange> PgDeviceStore::changes_since(std::string_view tenant,
                                                              std::string_view since) {
  std::lock_guard lock(mutex_);
  // A tenant's rows are numbered in the order they were recorded.
  auto row = c_.query(
      "SELECT coalesce((SELECT position + count FROM device_changes WHERE tenant = $1"
      " AND at >= '0' ORDER BY position DESC LIMIT 1), 0),"
      " (SELECT min(position) FROM device_changes WHERE tenant = $1 AND at >= $2)",
      {std::string(tenant), std::string(since)});
  if (!row) return row.error();
  ChangeRange range;
  range.end = row->integer(0, 0);
  range.first = row->null(0, 1) ? range.end : row->integer(0, 1);
  return range;
}

Result<std::vector<DeviceChange>> PgDeviceStore::device_changes(std::string_view tenant,
                                                                std::int64_t position,
                                                                std::size_t limit) {
  std::lock_guard lock(mutex_);
  auto rows = c_.query(
      "SELECT CASE WHEN at >= '0' THEN at ELSE '' END, device_id, device_name, change_set,"
      " count, position FROM device_changes"
      " WHERE tenant = $1 AND position >= coalesce((SELECT max(position) FROM device_changes"
      " WHERE tenant = $1 AND position <= $2::bigint), 0) ORDER BY position LIMIT $3::bigint",
      {std::string(tenant), std::to_string(position), std::to_string(limit)});
  if (!rows) return rows.error();
  std::vector<DeviceChange> out;
  for (int i = 0; i < rows->size(); ++i) {
    out.push_back({rows->text(i, 0), rows->text(i, 1), rows->text(i, 2), rows->integer(i, 3),
                   rows->integer(i, 4), rows->integer(i, 5)});
  }
  return out;
}

Result<std::vector<std::pair<std::string, VulnerabilityRow>>> PgDeviceStore::change_set(
    std::int64_t id) {
  using Rows = std::vector<std::pair<std::string, VulnerabilityRow>>;
  const std::string where = fmt::format("PostgreSQL at {}: change set {}", c_.where(), id);
  std::vector<std::pair<std::int64_t, std::string>> texts;  // read under the lock, parsed after
  {
    std::lock_guard lock(mutex_);
    auto row = c_.query("SELECT rows, parts FROM change_sets WHERE id = $1", {std::to_string(id)});
    if (!row) return row.error();
    if (row->size() == 0) return Rows();
    // A set recorded before parts were (migration 006) holds its rows itself.
    if (row->null(0, 1)) {
      texts.emplace_back(0, row->text(0, 0));
    } else {
      auto ids = parse_part_ids(row->text(0, 1), where);
      if (!ids) return ids.error();
      auto parts = c_.query("SELECT id, rows FROM change_parts WHERE id = ANY($1::bigint[])",
                            {fmt::format("{{{}}}", fmt::join(*ids, ","))});
      if (!parts) return parts.error();
      std::map<std::int64_t, int> at;  // part id, its result row
      for (int i = 0; i < parts->size(); ++i) at.emplace(parts->integer(i, 0), i);
      for (std::int64_t p : *ids) {
        auto it = at.find(p);
        if (it == at.end()) return Rows();  // forgotten meanwhile, with its set
        texts.emplace_back(p, parts->text(it->second, 1));
      }
    }
  }
  return assemble_change_rows(texts, where);
}

}  // namespace kbgap::store::postgres
