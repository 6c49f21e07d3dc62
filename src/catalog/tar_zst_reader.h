// .tar.zst archives (the bundled catalog's format, `catalog import` and `catalog fetch`), read and
// written with libarchive: regular files only, one member at a time. The reader also reads .zip
// archives (WES-NG's definitions, catalog/wesng_reader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/result.h"

struct archive;

namespace kbgap::catalog {

enum class ArchiveFormat { kTarZst, kZip };

struct ArchiveMember {
  std::string name;     // path inside the archive
  std::string content;  // the member's bytes
};

class TarZstReader {
 public:
  // Members larger than this are refused (a corrupt size field must not allocate gigabytes).
  static constexpr std::uint64_t kMaxMemberBytes = 512ull << 20;

  // Reads from a file; errors name its path.
  static Result<TarZstReader> open_file(const std::string& path,
                                        ArchiveFormat format = ArchiveFormat::kTarZst);
  // Reads from bytes that outlive the reader (the bundled catalog); `display_name` names it.
  static TarZstReader from_memory(std::span<const unsigned char> bytes, std::string display_name,
                                  ArchiveFormat format = ArchiveFormat::kTarZst);

  TarZstReader(TarZstReader&&) noexcept = default;
  TarZstReader& operator=(TarZstReader&&) noexcept = default;
  ~TarZstReader() = default;

  // The next regular file, std::nullopt at the end of the archive, or an error naming the archive.
  Result<std::optional<ArchiveMember>> next();

  // Compressed bytes consumed so far, for progress.
  std::uint64_t consumed() const;
  std::uint64_t compressed_size() const { return compressed_size_; }

 private:
  TarZstReader() = default;
  Error corrupt(const std::string& what) const;
  struct Free {
    void operator()(archive* a) const;
  };
  std::string display_name_;
  ArchiveFormat format_ = ArchiveFormat::kTarZst;
  std::unique_ptr<archive, Free> archive_;
  std::string open_error_;  // set when the input could not be opened at all
  bool finished_ = false;
  std::uint64_t compressed_size_ = 0;
};

// Writes a .tar.zst archive of regular files to `path`, atomically: the file appears, complete,
// when close() succeeds, and never half-written.
class TarZstWriter {
 public:
  static Result<TarZstWriter> create(const std::string& path);
  TarZstWriter(TarZstWriter&&) noexcept = default;
  TarZstWriter& operator=(TarZstWriter&&) noexcept = default;
  ~TarZstWriter();

  Result<void> add(const std::string& name, std::string_view content);
  Result<void> close();

 private:
  TarZstWriter() = default;
  struct Free {
    void operator()(archive* a) const;
  };
  std::string path_, temporary_;
  std::unique_ptr<archive, Free> archive_;
};

}  // namespace kbgap::catalog
