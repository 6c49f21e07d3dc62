// Turns the bytes of a Windows command's output into UTF-8, whatever code page wrote them.
#pragma once

#include <string>
#include <string_view>

namespace kbgap::inventory {

// UTF-16LE (with or without BOM, even after an ASCII preamble such as WMIC's "Please wait while
// WMIC is being installed."), UTF-8 (with or without BOM), or a legacy code page (CP850, CP1252,
// GBK...). Legacy bytes that are not ASCII become U+FFFD: kbgap reads only ASCII values
// (versions, KB numbers, architectures) out of such files. Line ends become "\n".
std::string decode_windows_text(std::string_view bytes);

}  // namespace kbgap::inventory
