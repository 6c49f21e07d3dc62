// Exposes the archive that bundled_catalog.S places in the binary's read-only data.
#include "catalog/bundled_catalog.h"

extern "C" const unsigned char kbgap_bundled_catalog_start[];
extern "C" const unsigned char kbgap_bundled_catalog_end[];
extern "C" const unsigned char kbgap_bundled_wesng_start[];
extern "C" const unsigned char kbgap_bundled_wesng_end[];

namespace kbgap::catalog {

std::span<const unsigned char> bundled_catalog_archive() {
  return {kbgap_bundled_catalog_start, kbgap_bundled_catalog_end};
}

std::span<const unsigned char> bundled_wesng_archive() {
  return {kbgap_bundled_wesng_start, kbgap_bundled_wesng_end};
}

}  // namespace kbgap::catalog
