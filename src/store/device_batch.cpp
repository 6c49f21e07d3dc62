#include "store/device_batch.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <map>
#include <random>
#include <unordered_map>

#include "common/clock.h"
#include "inventory/json_inventory.h"

namespace kbgap::store {

std::string stored_json(const inventory::Device& device) {
  return boost::json::serialize(inventory::device_json(device));
}

Result<std::vector<PreparedDevice>> prepare_batch(const std::vector<inventory::Device>& devices,
                                                  std::string_view now) {
  // A device is its tenant and id.
  std::map<std::pair<std::string_view, std::string_view>, std::size_t> last;
  for (std::size_t i = 0; i < devices.size(); ++i) last[{devices[i].tenant, devices[i].id}] = i;
  std::vector<PreparedDevice> out;
  out.reserve(last.size());
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (last[{devices[i].tenant, devices[i].id}] != i) continue;
    PreparedDevice p{devices[i], {}, {}};
    inventory::Device& d = p.device;
    const std::string where = d.source.empty() ? std::string("device") : d.source;
    auto fail = [&](std::string_view why) {
      return invalid_input(fmt::format("{}: device {} ({}) cannot be stored: {}", where,
                                       d.computer_dns_name.substr(0, 80), d.id, why));
    };
    if (!inventory::valid_tenant(d.tenant)) {
      return fail(fmt::format("'{}' is not a tenant name ({})", d.tenant.substr(0, 40),
                              inventory::kTenantRule));
    }
    for (auto [name, time] :
         {std::pair{"firstSeen", &d.first_seen}, std::pair{"lastSeen", &d.last_seen}}) {
      if (time->empty()) continue;
      auto utc = utc_time_from_rfc3339(*time);
      if (!utc) {
        return fail(fmt::format("{} is not an RFC 3339 time: '{}'", name, time->substr(0, 40)));
      }
      *time = *utc < now ? std::move(*utc) : std::string(now);
    }
    // PostgreSQL's text cannot hold a NUL, and no machine's name has one: refused on every backend.
    if (d.computer_dns_name.find('\0') != std::string::npos) {
      return fail("computerDnsName holds a NUL character");
    }
    // Seen last now unless told; seen first when last seen unless told; never first after last.
    if (d.last_seen.empty()) d.last_seen = std::string(now);
    if (d.first_seen.empty() || d.last_seen < d.first_seen) d.first_seen = d.last_seen;
    p.json = stored_json(d);
    // The stored form must read back, or the row would be lost to every later read.
    // The read-back document in a buffer on the stack: parsed for every device of every
    // write, it would otherwise leave the heap fragmented (bench/soak.sh: the resident size grew
    // 6-9% in 60 s with the heap, under 1% without the check; docs/security.md).
    unsigned char buffer[64 * 1024];
    boost::json::monotonic_resource arena(buffer, sizeof buffer);
    auto back = inventory::parse_kbgap_json(p.json, where, inventory::TimeFields::kCheck, &arena);
    if (!back) return fail(back.error().message);
    if (back->size() != 1 || back->front().device.id != d.id) {
      return fail("its stored form reads back as another device");
    }
    p.read_back = std::move(back->front().device);
    out.push_back(std::move(p));
  }
  return out;
}

namespace {

constexpr std::string_view kStoredSource = "stored";  // the source of a device read from a row

// A row's time column as read_stored_device reads it.
std::string stored_time(std::string_view column) {
  auto utc = utc_time_from_rfc3339(column);
  return utc ? std::move(*utc) : std::string();
}

}  // namespace

inventory::Device stored_device(PreparedDevice& p) {
  inventory::Device d = std::move(p.read_back);
  p.read_back = inventory::Device();
  d.tenant = p.device.tenant;
  d.source = std::string(kStoredSource);
  d.first_seen = stored_time(p.device.first_seen);
  d.last_seen = stored_time(p.device.last_seen);
  return d;
}

Result<inventory::Device> read_stored_device(std::string_view tenant, std::string_view id,
                                             std::string_view inventory,
                                             std::string_view first_seen,
                                             std::string_view last_seen) {
  // The times are the columns' (below): a row an older kbgap wrote with times as given is not
  // damaged for that.
  auto read = inventory::parse_kbgap_json(inventory, kStoredSource, inventory::TimeFields::kIgnore);
  if (!read) return read.error();
  if (read->size() != 1 || read->front().device.id != id) {
    return invalid_input("stored: the row's inventory is of another device");
  }
  inventory::Device d = std::move(read->front().device);
  d.tenant = std::string(tenant);
  d.first_seen = stored_time(first_seen);
  d.last_seen = stored_time(last_seen);
  return d;
}

std::string change_rows_json(const std::vector<std::pair<std::string, VulnerabilityRow>>& set) {
  boost::json::array rows;
  rows.reserve(set.size());
  for (const auto& [status, r] : set) {
    rows.push_back(boost::json::array{status, r.software, r.version, r.cve, r.cvss, r.severity,
                                      r.exploitability, r.kb, r.kb_name, r.kb_url});
  }
  return boost::json::serialize(rows);
}

Result<std::vector<std::pair<std::string, VulnerabilityRow>>> parse_change_rows(
    std::string_view text, std::string_view where) {
  // Written by change_rows_json above; a row that does not read back is a damaged database.
  std::vector<std::pair<std::string, VulnerabilityRow>> out;
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(text, ec);
  const auto* rows = ec ? nullptr : parsed.if_array();
  if (!rows) return storage_error(fmt::format("{} is not JSON", where));
  for (const auto& v : *rows) {
    const auto* a = v.if_array();
    if (!a || a->size() != 10 || !(*a)[0].is_string() || !(*a)[1].is_string() ||
        !(*a)[2].is_string() || !(*a)[3].is_string() || !(*a)[4].is_number() ||
        !(*a)[5].is_string() || !(*a)[6].is_string() || !(*a)[7].is_int64() ||
        !(*a)[8].is_string() || !(*a)[9].is_string()) {
      return storage_error(fmt::format("{} has a malformed row", where));
    }
    VulnerabilityRow r;
    r.software = (*a)[1].as_string();
    r.version = (*a)[2].as_string();
    r.cve = (*a)[3].as_string();
    r.cvss = (*a)[4].to_number<double>();
    r.severity = (*a)[5].as_string();
    r.exploitability = (*a)[6].as_string();
    r.kb = (*a)[7].as_int64();
    r.kb_name = (*a)[8].as_string();
    r.kb_url = (*a)[9].as_string();
    out.emplace_back(std::string((*a)[0].as_string()), std::move(r));
  }
  return out;
}

Result<std::int64_t> RecordedParts::id(const ChangePart& part, std::string_view where,
                                       const Insert& insert) {
  if (auto it = known_.find(part.serial); it != known_.end()) return it->second;
  if (auto it = added_.find(part.serial); it != added_.end()) return it->second;
  if (part.rows.size() != part.count) {
    return storage_error(fmt::format(
        "{}: a change part was passed without its rows, and it was not recorded", where));
  }
  auto id = insert(part);
  if (!id) return id.error();
  added_.emplace(part.serial, *id);
  return *id;
}

Result<std::vector<std::pair<std::string, VulnerabilityRow>>> assemble_change_rows(
    const std::vector<std::pair<std::int64_t, std::string>>& texts, std::string_view where) {
  std::vector<std::pair<std::string, VulnerabilityRow>> out;
  for (const auto& [id, text] : texts) {
    auto rows = parse_change_rows(
        text, id == 0 ? std::string(where) : fmt::format("{}, part {}", where, id));
    if (!rows) return rows.error();
    std::move(rows->begin(), rows->end(), std::back_inserter(out));
  }
  return out;
}

std::string part_ids_json(const std::vector<std::int64_t>& ids) {
  return boost::json::serialize(boost::json::value_from(ids));
}

Result<std::vector<std::int64_t>> parse_part_ids(std::string_view text, std::string_view where) {
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(text, ec);
  const auto* ids = ec ? nullptr : parsed.if_array();
  if (!ids) return storage_error(fmt::format("{}: its parts are not JSON", where));
  std::vector<std::int64_t> out;
  out.reserve(ids->size());
  for (const auto& v : *ids) {
    if (!v.is_int64()) return storage_error(fmt::format("{} names a malformed part", where));
    out.push_back(v.as_int64());
  }
  return out;
}

std::string new_version_token() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  return fmt::format("{:016x}", random());
}

}  // namespace kbgap::store
