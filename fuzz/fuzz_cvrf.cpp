// libFuzzer target: an MSRC CVRF document (catalog import reads these from files and URLs).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "catalog/cvrf_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  (void)kbgap::catalog::read_cvrf(xml, "fuzz.xml");
  return 0;
}
