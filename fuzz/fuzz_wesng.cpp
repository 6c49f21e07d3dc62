// libFuzzer target: WES-NG's CSV as `kbgap catalog import definitions.zip` reads it (libcsv in
// strict mode, then the mapping onto catalog documents). The zip around it is fuzz_archive's.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "catalog/wesng_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view csv(reinterpret_cast<const char*>(data), size);
  auto read = kbgap::catalog::read_wesng_csv(csv, "fuzz.csv", "20260628", {});
  if (read) {
    for (const auto& doc : read->documents) (void)doc.vulnerabilities.size();
  }
  return 0;
}
