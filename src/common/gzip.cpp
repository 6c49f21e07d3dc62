// gzip through libarchive: the raw format holds one unnamed entry, the gzip filter compresses it,
// and the write callback appends to a string.
#include "common/gzip.h"

#include <archive.h>
#include <archive_entry.h>

#include <stdexcept>

namespace kbgap {
namespace {

la_ssize_t append(struct archive*, void* client, const void* buffer, size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

void check(struct archive* a, int status) {
  if (status < ARCHIVE_WARN) {  // only on allocation failure: memory is the only sink
    throw std::runtime_error(std::string("gzip: ") + archive_error_string(a));
  }
}

}  // namespace

void GzipWriter::Free::operator()(archive* a) const {
  archive_write_free(a);
}

GzipWriter::GzipWriter() : archive_(archive_write_new()) {
  struct archive* a = archive_.get();
  check(a, archive_write_add_filter_gzip(a));
  check(a, archive_write_set_format_raw(a));
  check(a, archive_write_set_bytes_in_last_block(a, 1));  // no padding after the stream
  check(a, archive_write_open(a, &out_, nullptr, append, nullptr));
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                 archive_entry_free);
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  check(a, archive_write_header(a, entry.get()));
}

GzipWriter::~GzipWriter() = default;

void GzipWriter::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const la_ssize_t n = archive_write_data(archive_.get(), bytes.data(), bytes.size());
    check(archive_.get(), n < 0 ? static_cast<int>(n) : ARCHIVE_OK);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string GzipWriter::finish() {
  check(archive_.get(), archive_write_close(archive_.get()));
  return std::move(out_);
}

}  // namespace kbgap
