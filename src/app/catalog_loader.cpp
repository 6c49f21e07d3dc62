// Catalog loading shared by the commands that evaluate devices.
#include "app/catalog_loader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/data_dir.h"
#include "common/digest.h"
#include "common/progress.h"
#include "update/importer.h"

namespace kbgap::app {
namespace {

// A whole file mapped read-only; empty when it cannot be (absent, unreadable, empty).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* p =
          ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = p;
        size_ = static_cast<std::size_t>(st.st_size);
        ::madvise(p, size_, MADV_WILLNEED);
      }
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace

std::function<void(const catalog::ImportProgress&)> progress_to(ProgressBar& bar) {
  return [&bar](const catalog::ImportProgress& p) {
    bar.update(p.done_bytes, p.total_bytes,
               fmt::format("{} documents, {}", p.documents, p.current));
  };
}

Result<void> ensure_bundled_catalog(catalog::CatalogStore& store) {
  ProgressBar bar("importing bundled catalog", ProgressBar::interactive());
  auto start = std::chrono::steady_clock::now();
  auto imported = catalog::ensure_catalog(store, progress_to(bar));
  bar.finish();
  if (!imported) return imported.error();
  if (!imported->documents.empty()) {
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    const auto wesng = std::count_if(
        imported->documents.begin(), imported->documents.end(),
        [](const catalog::DocumentResult& d) { return catalog::is_wesng_document(d.id); });
    const std::size_t msrc = imported->documents.size() - static_cast<std::size_t>(wesng);
    if (msrc > 0) {
      std::fprintf(stderr,
                   "kbgap: imported the bundled catalog in %.1f s: %zu MSRC documents, %zu days "
                   "of bulletins before April 2016 (from WES-NG's definitions)\n",
                   elapsed.count(), msrc, static_cast<std::size_t>(wesng));
    } else {
      std::fprintf(stderr,
                   "kbgap: imported the bundled bulletins before April 2016 (%zu days, from "
                   "WES-NG's definitions) in %.1f s\n",
                   static_cast<std::size_t>(wesng), elapsed.count());
    }
  }
  return ok_result();
}

std::string catalog_fingerprint(const std::vector<catalog::StoredDocument>& documents) {
  std::string tag;
  for (const catalog::StoredDocument& d : documents) tag += fmt::format("{}:{}\n", d.id, d.sha256);
  return sha256_hex(tag);
}

Result<engine::CatalogIndex> load_catalog_index(
    const std::string& data_dir, std::vector<catalog::StoredDocument>* documents_out) {
  auto store = open_catalog_store(data_dir);
  if (!store) return store.error();
  KBGAP_TRY(ensure_bundled_catalog(**store));
  // The index is cached beside the catalog, tagged with the documents it was built from: any
  // import that changes a document changes the tag, and the index is built again.
  auto documents = (*store)->documents();
  if (!documents) return documents.error();
  const std::string fingerprint = catalog_fingerprint(*documents);
  if (documents_out) *documents_out = *documents;
  const std::filesystem::path cache = std::filesystem::path(data_dir) / kIndexFileName;
  {
    // Mapped, not read: the index is read once, in order (a stream copy cost more than the
    // parsing; a read() into a fresh buffer, a few ms of page faults and copying).
    const MappedFile mapped(cache.string());
    if (!mapped.bytes().empty()) {
      const std::string_view bytes = mapped.bytes();
      bool damaged = false;
      if (auto index = engine::CatalogIndex::from_snapshot(bytes, fingerprint, &damaged)) {
        return std::move(*index);
      }
      if (damaged) {
        std::fprintf(stderr, "kbgap: %s is damaged (its checksum does not match): rebuilding it\n",
                     cache.string().c_str());
      }
    }
  }
  auto data = (*store)->load();
  if (!data) return data.error();
  engine::CatalogIndex index = engine::CatalogIndex::build(*data);
  // A cache: when it cannot be written (read-only data directory), the next run builds again.
  const std::filesystem::path tmp = cache.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    const std::string bytes = index.snapshot(fingerprint);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, cache, ec);
  if (ec) std::filesystem::remove(tmp, ec);
  return index;
}

}  // namespace kbgap::app
