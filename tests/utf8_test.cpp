#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace kbgap {
namespace {

TEST(Utf8, WellFormedTextIsKept) {
  for (const std::string s : {"", "KB5034441", "Fenêtres 10 – 22H2", "中文 Windows",
                              "\xF0\x9F\x94\x92", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(is_utf8(s)) << s;
    EXPECT_EQ(valid_utf8(s), s);
  }
}

TEST(Utf8, IllFormedBytesBecomeReplacementCharacters) {
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  struct Case {
    std::string in, out;
  };
  for (const Case& c : std::initializer_list<Case>{
           // The id fuzz_request_target sent: D0 wants a continuation byte and C8 is none; CF A0
           // is U+03E0.
           {std::string("01\xD0\xC8\xCF\xA0") + "597", "01" + r + r + "\xCF\xA0" + "597"},
           {"\xC0\xAF", r + r},                  // overlong '/'
           {"\xE0\x80\xAF", r + r + r},          // overlong, three bytes
           {"\xED\xA0\x80", r + r + r},          // a UTF-16 surrogate
           {"\xF4\x90\x80\x80", r + r + r + r},  // above U+10FFFF
           {"\xF5\x80\x80\x80", r + r + r + r},  // no such lead byte
           {"ab\xE2\x82", "ab" + r + r},         // cut short
           {"\xFF", r},
       }) {
    EXPECT_FALSE(is_utf8(c.in));
    EXPECT_EQ(valid_utf8(c.in), c.out);
    EXPECT_TRUE(is_utf8(valid_utf8(c.in)));
  }
}

TEST(Utf8, AppendEncodesEveryLength) {
  std::string out;
  for (std::uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F512u}) append_utf8(out, cp);
  EXPECT_EQ(out, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x92");
}

}  // namespace
}  // namespace kbgap
