// A gzip stream written into memory (libarchive's raw format with its gzip filter): the export
// APIs' files of JSON lines (docs/api.md, "The export APIs").
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct archive;

namespace kbgap {

class GzipWriter {
 public:
  GzipWriter();
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;
  ~GzipWriter();

  void write(std::string_view bytes);
  // The whole gzip stream; the writer is done after it.
  std::string finish();

 private:
  struct Free {
    void operator()(archive* a) const;
  };
  std::string out_;
  std::unique_ptr<archive, Free> archive_;
};

}  // namespace kbgap
