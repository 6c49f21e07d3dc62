// libFuzzer target: a .tar.zst archive as `kbgap catalog import FILE.tar.zst` reads it
// (libarchive's zstd filter and tar formats, kbgap's member limits).
#include <cstddef>
#include <cstdint>
#include <span>

#include "catalog/tar_zst_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto reader = kbgap::catalog::TarZstReader::from_memory(std::span(data, size), "fuzz.tar.zst");
  for (int members = 0; members < 64; ++members) {
    auto member = reader.next();
    if (!member || !*member) break;
  }
  (void)reader.consumed();
  return 0;
}
