#include "update/sync.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <set>

#include "catalog/cvrf_fields.h"
#include "catalog/cvrf_reader.h"
#include "catalog/import_sources.h"
#include "catalog/tar_zst_reader.h"
#include "common/clock.h"

namespace kbgap::catalog {
namespace {

namespace json = boost::json;

// A CVRF document is a few MB; the largest month MSRC published is under 40 MB.
constexpr std::size_t kMaxDocumentBytes = std::size_t{512} << 20;
constexpr std::size_t kMaxListBytes = std::size_t{16} << 20;

std::string text_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string without_trailing_slash(std::string s) {
  while (s.ends_with('/')) s.pop_back();
  return s;
}

// Month ids are "2016-Apr"; MSRC also published a few out-of-band documents with a suffix
// ("2017-May-B"). Letters, digits and '-' only: the id becomes a path segment.
bool plausible_id(std::string_view id) {
  return !id.empty() && id.size() <= 32 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
  });
}

}  // namespace

Result<std::vector<ListedMonth>> parse_updates(std::string_view body, const std::string& source) {
  const std::string base = without_trailing_slash(source);
  json::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object() || !doc.as_object().if_contains("value") ||
      !doc.as_object().at("value").is_array()) {
    return invalid_input(
        fmt::format("{}/updates: not the CVRF API's list of updates (a JSON object with a "
                    "\"value\" array)",
                    base));
  }
  const std::string origin = net::url_origin(base);
  std::vector<ListedMonth> months;
  for (const json::value& item : doc.as_object().at("value").as_array()) {
    if (!item.is_object()) continue;
    const json::object& o = item.as_object();
    ListedMonth m;
    // As the importer names it ("2018-FEB" is 2018-Feb), so that it compares with the stored
    // one; the URL keeps the id as listed (a mirror's files may be named so).
    const std::string listed_id = text_field(o, "ID");
    m.id = canonical_document_id(listed_id);
    m.title = text_field(o, "DocumentTitle");
    const auto initial = utc_time_from_rfc3339(text_field(o, "InitialReleaseDate"));
    const auto current = utc_time_from_rfc3339(text_field(o, "CurrentReleaseDate"));
    if (!plausible_id(listed_id) || !current) {
      return invalid_input(
          fmt::format("{}/updates: an entry without a month id or a CurrentReleaseDate ({})", base,
                      json::serialize(item).substr(0, 200)));
    }
    m.initial_release = initial.value_or(*current);
    m.current_release = *current;
    m.url = text_field(o, "CvrfUrl");
    if (m.url.empty() || net::url_origin(m.url) != origin) m.url = base + "/cvrf/" + listed_id;
    months.push_back(std::move(m));
  }
  // The list is not in release order (MSRC's is not): oldest first, so that an interrupted sync
  // has the older months.
  std::stable_sort(months.begin(), months.end(), [](const ListedMonth& a, const ListedMonth& b) {
    return a.initial_release < b.initial_release;
  });
  return months;
}

namespace {

Result<std::vector<ListedMonth>> list_months(const SyncOptions& options) {
  const std::string base = without_trailing_slash(options.source);
  net::FetchOptions fetch = options.fetch;
  fetch.accept = "application/json";
  fetch.max_bytes = kMaxListBytes;
  auto body = net::http_get(base + "/updates", fetch);
  if (!body) return body.error();
  return parse_updates(*body, base);
}

Result<std::string> fetch_month(const ListedMonth& month, const SyncOptions& options) {
  net::FetchOptions fetch = options.fetch;
  fetch.accept = "application/xml";
  fetch.max_bytes = kMaxDocumentBytes;
  auto xml = net::http_get(month.url, fetch);
  if (!xml) return io_error(fmt::format("month {}: {}", month.id, xml.error().message));
  return xml;
}

}  // namespace

std::size_t SyncSummary::changed() const {
  return static_cast<std::size_t>(
      std::count_if(fetched.begin(), fetched.end(), [](const DocumentResult& d) {
        return d.outcome == DocumentOutcome::kAdded || d.outcome == DocumentOutcome::kReplaced;
      }));
}

Result<SyncSummary> sync_catalog(CatalogStore& store, const SyncOptions& options) {
  auto months = list_months(options);
  if (!months) return months.error();

  auto stored = store.documents();
  if (!stored) return stored.error();
  std::map<std::string, std::string> stored_release;  // id -> current release, normalized
  std::set<std::string> read_again;  // stored by an older kbgap, without all it reads now
  for (const StoredDocument& d : *stored) {
    if (must_read_again(d)) {
      read_again.insert(d.id);
      continue;
    }
    stored_release[d.id] = utc_time_from_rfc3339(d.current_release).value_or(d.current_release);
  }
  // A month fetched before at the listed time and found unchanged (or older than what is stored:
  // the list ran ahead of the document) is current too: not fetched again at every sync.
  auto fetched_before = store.listed_releases();
  if (!fetched_before) return fetched_before.error();
  for (const auto& [id, listed] : *fetched_before) {
    if (read_again.contains(id)) continue;
    auto& known = stored_release[id];
    known = std::max(known, listed);
  }

  SyncSummary summary;
  summary.listed = months->size();
  std::vector<const ListedMonth*> wanted;
  for (const ListedMonth& m : *months) {
    auto it = stored_release.find(m.id);
    if (!options.all && it != stored_release.end() && it->second >= m.current_release) {
      ++summary.up_to_date;
      continue;
    }
    wanted.push_back(&m);
  }

  for (std::size_t i = 0; i < wanted.size(); ++i) {
    const ListedMonth& m = *wanted[i];
    if (options.on_month) options.on_month(i, wanted.size(), m);
    auto xml = fetch_month(m, options);
    if (!xml) return xml.error();
    std::vector<SourceItem> items;
    items.push_back(SourceItem{net::url_for_messages(m.url), std::move(*xml)});
    ImportSources sources = ImportSources::from_memory(std::move(items));
    auto imported = import_catalog(sources, store, nullptr);
    if (!imported) {
      return Error{imported.error().code,
                   fmt::format("month {}: {}", m.id, imported.error().message)};
    }
    KBGAP_TRY(store.record_listed_release(m.id, m.current_release));
    for (DocumentResult& d : imported->documents) {
      if (d.id != m.id) {
        // Imported all the same (it is a valid document), but the list said otherwise.
        d.source += fmt::format(" (listed as {})", m.id);
      }
      summary.fetched.push_back(std::move(d));
    }
    if (options.on_month) options.on_month(i + 1, wanted.size(), m);
  }
  return summary;
}

Result<std::size_t> fetch_catalog_archive(const SyncOptions& options, const std::string& out) {
  auto months = list_months(options);
  if (!months) return months.error();
  if (months->empty())
    return invalid_input(fmt::format("{}/updates lists no month", options.source));
  auto writer = TarZstWriter::create(out);
  if (!writer) return writer.error();
  for (std::size_t i = 0; i < months->size(); ++i) {
    const ListedMonth& m = (*months)[i];
    if (options.on_month) options.on_month(i, months->size(), m);
    auto xml = fetch_month(m, options);
    if (!xml) return xml.error();
    // What an isolated site imports must be what `catalog import` accepts.
    auto parsed = read_cvrf(*xml, net::url_for_messages(m.url));
    if (!parsed) {
      return Error{parsed.error().code, fmt::format("month {}: {}", m.id, parsed.error().message)};
    }
    KBGAP_TRY(writer->add(fmt::format("cvrf/cvrfDocument-{}.xml", m.id), *xml));
  }
  if (options.on_month) options.on_month(months->size(), months->size(), months->back());
  KBGAP_TRY(writer->close());
  return months->size();
}

}  // namespace kbgap::catalog
