// UTF-8 for text that reaches JSON. Boost.JSON writes a string's bytes as given, so a request's
// invalid bytes echoed in an answer would make the whole body invalid JSON (found by
// fuzz_request_target); everything taken from a request passes through valid_utf8 first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kbgap {

// U+FFFD, what a byte or unit that encodes nothing becomes.
inline constexpr std::uint32_t kReplacementCharacter = 0xFFFD;

// Appends the code point as UTF-8.
void append_utf8(std::string& out, std::uint32_t code_point);

// Well-formed UTF-8 (RFC 3629: shortest forms, no surrogates, nothing above U+10FFFF).
bool is_utf8(std::string_view s);

// The text with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view s);

}  // namespace kbgap
