// The MSRC CVRF catalog compiled into the binary, so that kbgap works offline on a fresh machine.
#pragma once

#include <span>
#include <string_view>

namespace kbgap::catalog {

// The bytes of data/catalog/cvrf-2016-2026.tar.zst as it was at build time.
std::span<const unsigned char> bundled_catalog_archive();

// How the bundled catalog is named in progress and errors.
inline constexpr std::string_view kBundledCatalogName = "<bundled>/cvrf-2016-2026.tar.zst";

// The bytes of data/catalog/wesng-before-2016.zip: WES-NG's rows posted before April 2016
// (data/catalog/PROVENANCE.md; BSD-3-Clause, data/catalog/WESNG-LICENSE.txt).
std::span<const unsigned char> bundled_wesng_archive();
inline constexpr std::string_view kBundledWesngName = "<bundled>/wesng-before-2016.zip";

}  // namespace kbgap::catalog
