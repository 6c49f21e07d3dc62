// Streams the regular files out of a zstd-compressed tar archive, one member at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/result.h"

struct ZSTD_DCtx_s;

namespace kbgap::catalog {

struct ArchiveMember {
  std::string name;     // path inside the archive
  std::string content;  // the member's bytes
};

class TarZstReader {
 public:
  // Members larger than this are refused (a corrupt size field must not allocate gigabytes).
  static constexpr std::uint64_t kMaxMemberBytes = 512ull << 20;

  // Reads from a file; `display_name` names it in errors.
  static Result<TarZstReader> open_file(const std::string& path);
  // Reads from bytes that outlive the reader (the bundled catalog).
  static TarZstReader from_memory(std::span<const unsigned char> bytes, std::string display_name);

  TarZstReader(TarZstReader&&) noexcept;
  TarZstReader& operator=(TarZstReader&&) noexcept;
  ~TarZstReader();

  // The next regular file, std::nullopt at the end of the archive, or an error naming the archive.
  Result<std::optional<ArchiveMember>> next();

  // Compressed bytes consumed so far, for progress.
  std::uint64_t consumed() const { return consumed_; }
  std::uint64_t compressed_size() const { return compressed_size_; }

 private:
  TarZstReader();
  Result<bool> fill_output();                         // false at the end of the input
  Result<void> read_exact(char* out, std::size_t n);  // decompressed bytes, or error
  Result<void> drain();
  Result<std::size_t> read_compressed(char* out, std::size_t n);
  Error corrupt(const std::string& what) const;

  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  struct DctxFree {
    void operator()(ZSTD_DCtx_s* d) const;
  };

  std::string display_name_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::span<const unsigned char> memory_;
  std::unique_ptr<ZSTD_DCtx_s, DctxFree> dctx_;
  std::string in_buf_;
  std::size_t in_pos_ = 0, in_len_ = 0;
  std::string out_buf_;
  std::size_t out_pos_ = 0, out_len_ = 0;
  std::size_t last_frame_hint_ = 0;  // ZSTD_decompressStream's last return: 0 when a frame ended
  bool pending_output_ = false;
  bool input_done_ = false;
  bool finished_ = false;
  std::uint64_t consumed_ = 0;
  std::uint64_t compressed_size_ = 0;
};

}  // namespace kbgap::catalog
