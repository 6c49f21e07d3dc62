// Turns the arguments of `catalog import` (files, directories, .tar.zst archives) into XML inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/model.h"
#include "catalog/tar_zst_reader.h"
#include "common/result.h"

namespace kbgap::catalog {

struct SourceItem {
  std::string name;     // "dir/cvrfDocument-2020-Mar.xml" or "archive.tar.zst!cvrf/x.xml"
  std::string content;  // the XML bytes
};

// Yields every XML document below the given paths in a stable order, one at a time, so an import
// of many documents never holds them all in memory.
class ImportSources {
 public:
  // Resolves paths now: a missing path is an error before anything is read.
  static Result<ImportSources> from_paths(const std::vector<std::string>& paths);
  static ImportSources bundled();
  // Documents already in memory (fetched ones), each named by where it came from.
  static ImportSources from_memory(std::vector<SourceItem> items);

  Result<std::optional<SourceItem>> next();

  std::uint64_t total_bytes() const { return total_bytes_; }  // on disk, compressed where so
  std::uint64_t done_bytes() const;
  const SkipCounts& skips() const { return skips_; }  // archive members that are not XML

 private:
  struct Input {
    std::string path;
    bool archive = false;
    bool bundled = false;
    std::uint64_t size = 0;
    std::optional<std::string> content;  // a document in memory
  };
  std::vector<Input> inputs_;
  std::size_t index_ = 0;
  std::optional<TarZstReader> archive_;
  std::uint64_t finished_bytes_ = 0;
  std::uint64_t total_bytes_ = 0;
  SkipCounts skips_;
};

bool is_archive_path(const std::string& path);

}  // namespace kbgap::catalog
