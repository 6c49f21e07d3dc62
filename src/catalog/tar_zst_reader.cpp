// .tar.zst through libarchive: its zstd filter and tar formats (ustar, pax, GNU) only; or .zip
// (stored or deflated members).
#include "catalog/tar_zst_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <system_error>

namespace kbgap::catalog {
namespace {

archive* new_reader(ArchiveFormat format) {
  archive* a = archive_read_new();
  if (format == ArchiveFormat::kZip) {
    archive_read_support_format_zip(a);
  } else {
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
  }
  return a;
}

std::string message_of(archive* a) {
  const char* text = archive_error_string(a);
  return text ? text : "unreadable";
}

}  // namespace

void TarZstReader::Free::operator()(archive* a) const {
  archive_read_free(a);
}
void TarZstWriter::Free::operator()(archive* a) const {
  archive_write_free(a);
}

Result<TarZstReader> TarZstReader::open_file(const std::string& path, ArchiveFormat format) {
  TarZstReader r;
  r.display_name_ = path;
  r.format_ = format;
  std::error_code ec;
  r.compressed_size_ = std::filesystem::file_size(path, ec);
  if (ec) return io_error(fmt::format("{}: cannot read: {}", path, ec.message()));
  r.archive_.reset(new_reader(format));
  if (r.compressed_size_ == 0) {
    r.open_error_ = "empty file";
  } else if (archive_read_open_filename(r.archive_.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    const std::string why = message_of(r.archive_.get());
    if (!std::filesystem::is_regular_file(path, ec)) {
      return io_error(fmt::format("{}: cannot read: {}", path, why));
    }
    r.open_error_ = why;
  }
  return r;
}

TarZstReader TarZstReader::from_memory(std::span<const unsigned char> bytes,
                                       std::string display_name, ArchiveFormat format) {
  TarZstReader r;
  r.display_name_ = std::move(display_name);
  r.format_ = format;
  r.compressed_size_ = bytes.size();
  r.archive_.reset(new_reader(format));
  if (bytes.empty()) {
    r.open_error_ = "empty file";
  } else if (archive_read_open_memory(r.archive_.get(), bytes.data(), bytes.size()) != ARCHIVE_OK) {
    r.open_error_ = message_of(r.archive_.get());
  }
  return r;
}

Error TarZstReader::corrupt(const std::string& what) const {
  return invalid_input(fmt::format("{}: corrupt {} archive: {}", display_name_,
                                   format_ == ArchiveFormat::kZip ? ".zip" : ".tar.zst", what));
}

std::uint64_t TarZstReader::consumed() const {
  if (finished_) return compressed_size_;
  const la_int64_t n = archive_ ? archive_filter_bytes(archive_.get(), -1) : 0;
  return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

Result<std::optional<ArchiveMember>> TarZstReader::next() {
  if (!open_error_.empty()) return corrupt(open_error_);
  if (finished_) return std::optional<ArchiveMember>{};
  for (;;) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(archive_.get(), &entry);
    if (status == ARCHIVE_EOF) {
      finished_ = true;
      return std::optional<ArchiveMember>{};
    }
    if (status != ARCHIVE_OK && status != ARCHIVE_WARN) return corrupt(message_of(archive_.get()));
    if (archive_entry_filetype(entry) != AE_IFREG) continue;  // directories, links: not files
    const char* name = archive_entry_pathname(entry);
    ArchiveMember member;
    member.name = name ? name : "";
    if (archive_entry_size_is_set(entry)) {
      const la_int64_t size = archive_entry_size(entry);
      if (size < 0 || static_cast<std::uint64_t>(size) > kMaxMemberBytes) {
        return corrupt(fmt::format("member {} declares {} bytes (at most {})", member.name, size,
                                   kMaxMemberBytes));
      }
      member.content.reserve(static_cast<std::size_t>(size));
    }
    char buffer[1 << 16];
    for (;;) {
      const la_ssize_t n = archive_read_data(archive_.get(), buffer, sizeof buffer);
      if (n == 0) break;
      if (n < 0) return corrupt(message_of(archive_.get()));
      if (member.content.size() + static_cast<std::size_t>(n) > kMaxMemberBytes) {
        return corrupt(
            fmt::format("member {} is larger than {} bytes", member.name, kMaxMemberBytes));
      }
      member.content.append(buffer, static_cast<std::size_t>(n));
    }
    return std::optional<ArchiveMember>(std::move(member));
  }
}

Result<TarZstWriter> TarZstWriter::create(const std::string& path) {
  TarZstWriter w;
  w.path_ = path;
  w.temporary_ = path + ".partial";
  w.archive_.reset(archive_write_new());
  archive* a = w.archive_.get();
  if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_open_filename(a, w.temporary_.c_str()) != ARCHIVE_OK) {
    return io_error(fmt::format("{}: cannot write: {}", path, message_of(a)));
  }
  return w;
}

TarZstWriter::~TarZstWriter() {
  if (archive_) {  // not closed: leave nothing behind
    archive_.reset();
    std::remove(temporary_.c_str());
  }
}

Result<void> TarZstWriter::add(const std::string& name, std::string_view content) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                 archive_entry_free);
  archive_entry_set_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0644);
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
  archive_entry_set_mtime(entry.get(), std::time(nullptr), 0);
  archive* a = archive_.get();
  if (archive_write_header(a, entry.get()) != ARCHIVE_OK ||
      archive_write_data(a, content.data(), content.size()) !=
          static_cast<la_ssize_t>(content.size())) {
    return io_error(fmt::format("{}: cannot write {}: {}", path_, name, message_of(a)));
  }
  return ok_result();
}

Result<void> TarZstWriter::close() {
  if (archive_write_close(archive_.get()) != ARCHIVE_OK) {
    return io_error(fmt::format("{}: cannot write: {}", path_, message_of(archive_.get())));
  }
  archive_.reset();
  std::error_code ec;
  std::filesystem::rename(temporary_, path_, ec);
  if (ec) {
    std::remove(temporary_.c_str());
    return io_error(fmt::format("{}: cannot write: {}", path_, ec.message()));
  }
  return ok_result();
}

}  // namespace kbgap::catalog
