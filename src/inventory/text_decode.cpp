// Encoding detection and conversion for systeminfo, wmic and PowerShell output.
#include "inventory/text_decode.h"

#include <cstdint>

#include "common/utf8.h"

namespace kbgap::inventory {
namespace {

void decode_utf16le(std::string_view bytes, std::string& out) {
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
    std::uint32_t unit =
        static_cast<unsigned char>(bytes[i]) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8);
    if (unit >= 0xD800 && unit <= 0xDBFF && i + 3 < bytes.size()) {
      std::uint32_t low =
          static_cast<unsigned char>(bytes[i + 2]) |
          (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 3])) << 8);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        append_utf8(out, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
        i += 2;
        continue;
      }
    }
    append_utf8(out, unit >= 0xD800 && unit <= 0xDFFF ? kReplacementCharacter : unit);
  }
}

void decode_single_byte(std::string_view s, std::string& out) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x80) {
      out.push_back(c);
    } else {
      append_utf8(out, kReplacementCharacter);
    }
  }
}

std::string normalize_line_ends(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      // "\r\n", "\r\r\n" (wmic writes that) and a lone "\r" all end one line.
      while (i + 1 < in.size() && in[i + 1] == '\r') ++i;
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
      out.push_back('\n');
    } else if (in[i] != '\0') {
      out.push_back(in[i]);
    }
  }
  return out;
}

}  // namespace

std::string decode_windows_text(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  if (bytes.starts_with("\xFF\xFE")) {
    decode_utf16le(bytes.substr(2), out);
  } else if (bytes.starts_with("\xEF\xBB\xBF")) {
    if (is_utf8(bytes.substr(3))) {
      out.assign(bytes.substr(3));
    } else {
      decode_single_byte(bytes.substr(3), out);
    }
  } else if (auto nul = bytes.find('\0'); nul != std::string_view::npos && nul > 0) {
    // UTF-16LE without BOM: an ASCII character, then its zero high byte. What precedes it is an
    // ASCII preamble ("Please wait while WMIC is being installed.").
    std::size_t start = nul - 1;
    decode_single_byte(bytes.substr(0, start), out);
    out.push_back('\n');
    std::string_view rest = bytes.substr(start);
    if (rest.starts_with("\xFF\xFE")) rest.remove_prefix(2);
    decode_utf16le(rest, out);
  } else if (is_utf8(bytes)) {
    out.assign(bytes);
  } else {
    decode_single_byte(bytes, out);
  }
  return normalize_line_ends(out);
}

}  // namespace kbgap::inventory
