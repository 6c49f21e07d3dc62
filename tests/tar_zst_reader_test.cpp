// The .tar.zst reader on the real bundled archive, whole and damaged.
#include "catalog/tar_zst_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/bundled_catalog.h"
#include "test_support.h"

namespace kbgap::catalog {
namespace {

std::vector<unsigned char> bundled_bytes() {
  auto span = bundled_catalog_archive();
  return {span.begin(), span.end()};
}

// Reads every member; returns the error message, or "" when the archive read cleanly.
std::string read_all(std::span<const unsigned char> bytes, int* members = nullptr) {
  auto reader = TarZstReader::from_memory(bytes, "damaged.tar.zst");
  int n = 0;
  for (;;) {
    auto member = reader.next();
    if (!member) return member.error().message;
    if (!*member) break;
    ++n;
  }
  if (members) *members = n;
  return "";
}

TEST(TarZstReader, ReadsAllRealDocuments) {
  auto reader = TarZstReader::from_memory(bundled_catalog_archive(), "bundled");
  int members = 0;
  std::uint64_t bytes = 0;
  for (;;) {
    auto member = reader.next();
    ASSERT_TRUE(member) << member.error().message;
    if (!*member) break;
    EXPECT_TRUE((*member)->name.starts_with("cvrf/cvrfDocument-")) << (*member)->name;
    EXPECT_NE((*member)->content.substr(0, 200).find("cvrfdoc "), std::string::npos)
        << (*member)->name;
    bytes += (*member)->content.size();
    ++members;
  }
  EXPECT_EQ(members, 127);
  EXPECT_GT(bytes, 240'000'000u);  // 243 MB of XML (data/catalog/PROVENANCE.md)
  EXPECT_EQ(reader.consumed(), bundled_catalog_archive().size());
}

TEST(TarZstReader, TruncatedArchiveIsAnError) {
  auto bytes = bundled_bytes();
  for (std::size_t keep : {bytes.size() / 2, bytes.size() - 100, std::size_t{10}}) {
    std::string error = read_all(std::span(bytes.data(), keep));
    EXPECT_NE(error.find("damaged.tar.zst: corrupt .tar.zst archive"), std::string::npos) << error;
  }
}

TEST(TarZstReader, FlippedBytesAreAnError) {
  auto bytes = bundled_bytes();
  for (std::size_t at : {std::size_t{100}, bytes.size() / 3, bytes.size() - 20}) {
    auto damaged = bytes;
    damaged[at] ^= 0x5a;
    std::string error = read_all(damaged);
    EXPECT_NE(error.find("damaged.tar.zst: corrupt .tar.zst archive"), std::string::npos)
        << "flip at " << at << ": " << error;
  }
}

TEST(TarZstReader, EmptyFileIsAnError) {
  EXPECT_EQ(read_all({}), "damaged.tar.zst: corrupt .tar.zst archive: empty file");
}

TEST(TarZstReader, NotZstdIsAnError) {
  std::string text = "<?xml version=\"1.0\"?><cvrfdoc/>";
  std::string error =
      read_all(std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
  EXPECT_NE(error.find("corrupt .tar.zst archive"), std::string::npos) << error;
}

}  // namespace
}  // namespace kbgap::catalog
