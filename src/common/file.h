// Reading a whole input file, with a size limit so that a wrong path cannot exhaust memory.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace kbgap {

// The file's bytes; an error naming the file when it cannot be read or is over `max_bytes`
// ("<path>: N bytes is larger than <what> can be (M at most)").
Result<std::string> read_file_limited(const std::string& path, std::uintmax_t max_bytes,
                                      std::string_view what);

}  // namespace kbgap
