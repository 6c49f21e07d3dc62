// Whole-file reads for the commands' inputs.
#include "common/file.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

namespace kbgap {

Result<std::string> read_file_limited(const std::string& path, std::uintmax_t max_bytes,
                                      std::string_view what) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return io_error(fmt::format("{}: cannot read: {}", path, ec.message()));
  if (size > max_bytes) {
    return invalid_input(fmt::format("{}: {} bytes is larger than {} can be ({} at most)", path,
                                     size, what, max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(fmt::format("{}: cannot open", path));
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size) {
    return io_error(fmt::format("{}: short read", path));
  }
  return bytes;
}

}  // namespace kbgap
