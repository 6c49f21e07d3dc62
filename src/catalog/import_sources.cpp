// Walks files, directories and .tar.zst archives for catalog import.
#include "catalog/import_sources.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <system_error>

#include "catalog/bundled_catalog.h"
#include "common/file.h"

namespace kbgap::catalog {
namespace fs = std::filesystem;

namespace {

constexpr const char* kArchiveMemberNotXml = "archive member that is not .xml";
constexpr std::uint64_t kMaxXmlBytes = 512ull << 20;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_archive_path(const std::string& path) {
  return ends_with(path, ".tar.zst") || ends_with(path, ".tzst");
}

Result<ImportSources> ImportSources::from_paths(const std::vector<std::string>& paths) {
  ImportSources s;
  auto add_file = [&](const fs::path& p) {
    std::error_code ec;
    Input in{p.string(), is_archive_path(p.string()), false, fs::file_size(p, ec), std::nullopt};
    if (ec) in.size = 0;
    s.total_bytes_ += in.size;
    s.inputs_.push_back(std::move(in));
  };
  for (const std::string& path : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      return io_error(fmt::format("{}: no such file or directory", path));
    }
    if (fs::is_directory(st)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(path, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().string();
        if (it->is_regular_file() && (ends_with(name, ".xml") || is_archive_path(name))) {
          found.push_back(it->path());
        }
      }
      if (ec) return io_error(fmt::format("{}: cannot list: {}", path, ec.message()));
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        return invalid_input(fmt::format("{}: directory holds no .xml or .tar.zst file", path));
      }
      for (const fs::path& p : found) add_file(p);
    } else {
      add_file(path);
    }
  }
  return s;
}

ImportSources ImportSources::bundled() {
  ImportSources s;
  s.inputs_.push_back(Input{std::string(kBundledCatalogName), true, true,
                            bundled_catalog_archive().size(), std::nullopt});
  s.total_bytes_ = bundled_catalog_archive().size();
  return s;
}

ImportSources ImportSources::from_memory(std::vector<SourceItem> items) {
  ImportSources s;
  for (SourceItem& item : items) {
    s.total_bytes_ += item.content.size();
    s.inputs_.push_back(
        Input{std::move(item.name), false, false, item.content.size(), std::move(item.content)});
  }
  return s;
}

std::uint64_t ImportSources::done_bytes() const {
  return finished_bytes_ + (archive_ ? archive_->consumed() : 0);
}

Result<std::optional<SourceItem>> ImportSources::next() {
  while (index_ < inputs_.size()) {
    Input& in = inputs_[index_];
    if (in.content) {
      finished_bytes_ += in.size;
      ++index_;
      return std::optional<SourceItem>(SourceItem{in.path, std::move(*in.content)});
    }
    if (!in.archive) {
      auto content = read_file_limited(in.path, kMaxXmlBytes, "a CVRF document");
      if (!content) return content.error();
      finished_bytes_ += in.size;
      ++index_;
      return std::optional<SourceItem>(SourceItem{in.path, std::move(*content)});
    }
    if (!archive_) {
      if (in.bundled) {
        archive_ = TarZstReader::from_memory(bundled_catalog_archive(), in.path);
      } else {
        auto opened = TarZstReader::open_file(in.path);
        if (!opened) return opened.error();
        archive_ = std::move(*opened);
      }
    }
    auto member = archive_->next();
    if (!member) return member.error();
    if (!*member) {
      finished_bytes_ += in.size;
      archive_.reset();
      ++index_;
      continue;
    }
    if (!ends_with((*member)->name, ".xml")) {
      skips_.add(kArchiveMemberNotXml);
      continue;
    }
    return std::optional<SourceItem>(
        SourceItem{fmt::format("{}!{}", in.path, (*member)->name), std::move((*member)->content)});
  }
  return std::optional<SourceItem>{};
}

}  // namespace kbgap::catalog
