// The CVRF reader on the real MSRC documents, and on inputs that are not documents at all.
#include "catalog/cvrf_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "catalog/cvrf_fields.h"
#include "test_support.h"

namespace kbgap::catalog {
namespace {

using test::count_occurrences;
using test::real_document;
using test::real_documents;

ParsedDocument parse(const std::string& id) {
  auto parsed = read_cvrf(real_document(id), id + ".xml");
  if (!parsed) ADD_FAILURE() << parsed.error().message;
  return parsed ? std::move(parsed).value() : ParsedDocument{};
}

const Product* find_product(const Document& doc, std::string_view id) {
  for (const Product& p : doc.products) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::vector<std::pair<const Vulnerability*, const KbFix*>> fixes_of(const Document& doc,
                                                                    KbNumber kb) {
  std::vector<std::pair<const Vulnerability*, const KbFix*>> out;
  for (const Vulnerability& v : doc.vulnerabilities) {
    for (const KbFix& f : v.fixes) {
      if (f.kb == kb) out.emplace_back(&v, &f);
    }
  }
  return out;
}

TEST(CvrfReader, ReadsTheMarch2020Header) {
  ParsedDocument p = parse("2020-Mar");
  const Document& doc = p.document;
  EXPECT_EQ(doc.id, "2020-Mar");
  EXPECT_EQ(doc.title, "March 2020 Security Updates");
  EXPECT_EQ(doc.initial_release, "2020-03-10T07:00:00Z");
  EXPECT_EQ(doc.current_release, "2020-04-01T07:00:00Z");
  EXPECT_EQ(doc.revision, "11");
  EXPECT_EQ(doc.sha256.size(), 64u);
  const Product* p1909 = find_product(doc, "11713");
  ASSERT_NE(p1909, nullptr);
  EXPECT_EQ(p1909->name, "Windows 10 Version 1909 for x64-based Systems");
  EXPECT_EQ(p1909->family, "Windows");
}

TEST(CvrfReader, Kb4540673FixesWindows10Version1909AndSupersedesKb4532693) {
  ParsedDocument p = parse("2020-Mar");
  auto fixes = fixes_of(p.document, 4540673);
  ASSERT_FALSE(fixes.empty());
  std::set<std::string> cves;  // fixed by KB4540673 on Windows 10 1909 x64 itself
  for (const auto& [vuln, fix] : fixes) {
    EXPECT_EQ(fix->supersedes, std::vector<KbNumber>{4532693}) << vuln->cve;
    EXPECT_EQ(fix->url, "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673");
    EXPECT_EQ(fix->restart_required, "Yes");
    EXPECT_EQ(fix->subtype, "Security Update");
    if (std::find(fix->product_ids.begin(), fix->product_ids.end(), "11713") !=
        fix->product_ids.end()) {
      cves.insert(vuln->cve);
    }
  }
  EXPECT_TRUE(cves.contains("CVE-2020-0684")) << "the LNK vulnerability";
  EXPECT_GT(cves.size(), 50u);
}

TEST(CvrfReader, ReadsCveDetails) {
  ParsedDocument p = parse("2020-Mar");
  auto it = std::find_if(p.document.vulnerabilities.begin(), p.document.vulnerabilities.end(),
                         [](const Vulnerability& v) { return v.cve == "CVE-2020-0684"; });
  ASSERT_NE(it, p.document.vulnerabilities.end());
  EXPECT_EQ(it->title, "LNK Remote Code Execution Vulnerability");
  EXPECT_EQ(it->severity, "Critical");
  EXPECT_EQ(it->impact, "Remote Code Execution");
  ASSERT_TRUE(it->cvss_base.has_value());
  EXPECT_DOUBLE_EQ(*it->cvss_base, 8.8);
  EXPECT_EQ(it->exploited, std::optional<bool>(false));
  EXPECT_EQ(it->publicly_disclosed, std::optional<bool>(false));
  auto ap = std::find_if(it->products.begin(), it->products.end(),
                         [](const AffectedProduct& a) { return a.product_id == "11713"; });
  ASSERT_NE(ap, it->products.end());
  EXPECT_EQ(ap->severity, "Critical");
}

// Defender's publishedOn, updatedOn, cvssVector and exploit flags come from the CVE's own entries:
// its revision history (1.0 on Patch Tuesday, 1.1 a week later), its score set, its threat data.
TEST(CvrfReader, ReadsACvesOwnDatesVectorAndExploitStatus) {
  ParsedDocument p = parse("2024-Jan");
  auto it = std::find_if(p.document.vulnerabilities.begin(), p.document.vulnerabilities.end(),
                         [](const Vulnerability& v) { return v.cve == "CVE-2024-20674"; });
  ASSERT_NE(it, p.document.vulnerabilities.end());
  EXPECT_EQ(it->published, "2024-01-09T08:00:00Z");
  EXPECT_EQ(it->updated, "2024-01-18T08:00:00Z");
  EXPECT_EQ(it->cvss_vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C");
  EXPECT_EQ(it->exploited, std::optional<bool>(false));
  // The month's header says something else: the document's own dates are not the CVE's.
  EXPECT_NE(p.document.current_release, it->updated);
  // Every CVE of every month: published no later than updated, a vector only with a score.
  for (const auto& [id, xml] : real_documents()) {
    auto parsed = read_cvrf(xml, id);
    ASSERT_TRUE(parsed) << parsed.error().message;
    for (const Vulnerability& v : parsed->document.vulnerabilities) {
      EXPECT_LE(v.published, v.updated) << id << ": " << v.cve;
      if (!v.cvss_vector.empty()) {
        EXPECT_TRUE(v.cvss_base.has_value()) << id << ": " << v.cve;
        EXPECT_TRUE(v.cvss_vector.starts_with("CVSS:3")) << id << ": " << v.cvss_vector;
      }
    }
  }
}

TEST(CvrfReader, Kb5008212CarriesFixedBuild19043_1415) {
  ParsedDocument p = parse("2021-Dec");
  EXPECT_EQ(p.document.title, "December 2021 Security Updates");
  auto fixes = fixes_of(p.document, 5008212);
  ASSERT_FALSE(fixes.empty());
  bool found = false;
  for (const auto& [vuln, fix] : fixes) {
    if (fix->fixed_build == "10.0.19043.1415") found = true;
    EXPECT_EQ(fix->supersedes, std::vector<KbNumber>{5006670}) << vuln->cve;
  }
  EXPECT_TRUE(found);
}

TEST(CvrfReader, ReadsEveryVulnerabilityOfEveryRealDocument) {
  ASSERT_EQ(real_documents().size(), 127u);
  for (const auto& [id, xml] : real_documents()) {
    auto parsed = read_cvrf(xml, id);
    ASSERT_TRUE(parsed) << parsed.error().message;
    const Document& doc = parsed->document;
    EXPECT_EQ(doc.id, id);
    // 2023-Dec uses default namespaces: <Vulnerability> where the others say <vuln:Vulnerability>.
    EXPECT_EQ(doc.vulnerabilities.size(), count_occurrences(xml, "<vuln:Vulnerability ") +
                                              count_occurrences(xml, "<Vulnerability "))
        << id;
    // Products are listed twice in 2016-2017 documents (in their family and again flat): once each.
    std::set<std::string> ids;
    for (const Product& p : doc.products) {
      EXPECT_TRUE(ids.insert(p.id).second) << id << ": " << p.id;
    }
    EXPECT_LE(doc.products.size(), count_occurrences(xml, "<prod:FullProductName ") +
                                       count_occurrences(xml, "<FullProductName "))
        << id;
    // Monthly documents and the out-of-band ones ("Oct-OOB": "October 27, 2016 Security Update").
    EXPECT_NE(doc.title.find("Security Update"), std::string::npos) << id << ": " << doc.title;
    for (const Vulnerability& v : doc.vulnerabilities) {
      EXPECT_TRUE(v.cve.starts_with("CVE-") || v.cve.starts_with("ADV")) << id << ": " << v.cve;
    }
  }
}

TEST(CvrfReader, ReadsDefaultNamespaceDocuments) {
  const std::string& xml = real_document("2023-Dec");
  ASSERT_TRUE(xml.starts_with("<cvrfdoc ")) << "2023-Dec is the document without prefixes";
  ParsedDocument p = parse("2023-Dec");
  EXPECT_EQ(p.document.title, "December 2023 Security Updates");
  EXPECT_EQ(p.document.initial_release, "2023-12-12T08:00:00Z");
  EXPECT_EQ(p.document.vulnerabilities.size(), count_occurrences(xml, "<Vulnerability "));
  std::size_t fixes = 0;
  for (const Vulnerability& v : p.document.vulnerabilities) fixes += v.fixes.size();
  EXPECT_GT(fixes, 0u);
}

TEST(CvrfReader, NormalizesTheUpperCaseIdOfFebruary2018) {
  ASSERT_NE(real_document("2018-Feb").find("<cvrf:ID>2018-FEB</cvrf:ID>"), std::string::npos);
  ParsedDocument p = parse("2018-Feb");
  EXPECT_EQ(p.document.id, "2018-Feb");
  EXPECT_EQ(p.skips.get(reason::kDocumentIdCase), 1u);
}

TEST(CvrfReader, RepairsTheDoubleDotBuildsOfOctober2024) {
  const std::string& xml = real_document("2024-Oct");
  ParsedDocument p = parse("2024-Oct");
  EXPECT_EQ(p.skips.get(reason::kFixedBuildEmptyPart),
            count_occurrences(xml, "<vuln:FixedBuild>10.0.20348..2762</vuln:FixedBuild>"));
  bool repaired = false;
  for (const Vulnerability& v : p.document.vulnerabilities) {
    for (const KbFix& f : v.fixes) {
      EXPECT_EQ(f.fixed_build.find(".."), std::string::npos);
      if (f.fixed_build_raw == "10.0.20348..2762") {
        EXPECT_EQ(f.fixed_build, "10.0.20348.2762");
        repaired = true;
      }
    }
  }
  EXPECT_TRUE(repaired);
}

TEST(CvrfReader, CountsWhatItPassesOver) {
  const std::string& xml = real_document("2021-Aug");
  ParsedDocument p = parse("2021-Aug");
  std::uint64_t not_vendor_fix = 0;
  for (const char* type : {"Known Issue", "Release Notes", "Mitigation", "Workaround"}) {
    not_vendor_fix +=
        count_occurrences(xml, std::string("<vuln:Remediation Type=\"") + type + "\">");
  }
  EXPECT_EQ(p.skips.get(reason::kNotVendorFix), not_vendor_fix);
  EXPECT_GT(p.skips.get(reason::kFixWithoutKb), 0u);  // "Release Notes", "Click to Run"
  std::size_t kept = 0;
  for (const Vulnerability& v : p.document.vulnerabilities) kept += v.fixes.size();
  EXPECT_EQ(kept + p.skips.get(reason::kFixWithoutKb) + p.skips.get(reason::kDuplicateFix),
            count_occurrences(xml, "<vuln:Remediation Type=\"Vendor Fix\">"));
}

TEST(CvrfReader, MergesDuplicateRemediationsKeepingTheFixedBuild) {
  // Every document: no vulnerability lists one KB twice for the same products and sub-type.
  for (const auto& [id, xml] : real_documents()) {
    auto parsed = read_cvrf(xml, id);
    ASSERT_TRUE(parsed);
    for (const Vulnerability& v : parsed->document.vulnerabilities) {
      std::set<std::tuple<KbNumber, std::vector<std::string>, std::string>> seen;
      for (const KbFix& f : v.fixes) {
        EXPECT_TRUE(seen.emplace(f.kb, f.product_ids, f.subtype).second)
            << id << " " << v.cve << " KB" << f.kb;
      }
    }
  }
}

TEST(CvrfReader, ZeroByteFileIsAnError) {
  auto r = read_cvrf("", "empty.xml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidInput);
  EXPECT_EQ(r.error().message, "empty.xml:1: empty file, expected an MSRC CVRF XML document");
}

TEST(CvrfReader, TruncatedDocumentIsAnErrorWithItsLine) {
  const std::string& xml = real_document("2020-Mar");
  std::string truncated = xml.substr(0, xml.size() / 2);
  auto r = read_cvrf(truncated, "half.xml");
  ASSERT_FALSE(r);
  const int lines = static_cast<int>(count_occurrences(truncated, "\n")) + 1;
  EXPECT_TRUE(r.error().message.starts_with("half.xml:")) << r.error().message;
  EXPECT_NE(r.error().message.find("malformed XML"), std::string::npos) << r.error().message;
  // The error names a line near the cut, not line 1.
  int line = std::stoi(r.error().message.substr(std::string_view("half.xml:").size()));
  EXPECT_GT(line, lines - 50) << r.error().message;
}

TEST(CvrfReader, XmlThatIsNotCvrfIsAnError) {
  auto r = read_cvrf("<?xml version=\"1.0\"?>\n<project><name>x</name></project>\n", "pom.xml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "pom.xml:2: not an MSRC CVRF document (root element <project>, expected <cvrfdoc>)");
}

TEST(CvrfReader, CvrfWithoutIdentificationIsAnError) {
  auto r = read_cvrf(
      "<cvrf:cvrfdoc xmlns:cvrf=\"http://www.icasi.org/CVRF/schema/cvrf/1.1\">"
      "<cvrf:DocumentTitle>x</cvrf:DocumentTitle><cvrf:DocumentTracking/></cvrf:cvrfdoc>",
      "bare.xml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("without DocumentTracking/Identification/ID"), std::string::npos)
      << r.error().message;
}

TEST(CvrfReader, DeeplyNestedProductTreeIsAnErrorNotACrash) {
  std::string xml =
      "<cvrfdoc><DocumentTitle>t</DocumentTitle><DocumentTracking><Identification><ID>2020-Mar"
      "</ID></Identification><InitialReleaseDate>2020-03-10T07:00:00Z</InitialReleaseDate>"
      "<CurrentReleaseDate>2020-03-10T07:00:00Z</CurrentReleaseDate></DocumentTracking>"
      "<ProductTree>\n";
  for (int i = 0; i < 200000; ++i) xml += "<Branch Type=\"Vendor\" Name=\"x\">";
  for (int i = 0; i < 200000; ++i) xml += "</Branch>";
  xml += "</ProductTree></cvrfdoc>";
  auto r = read_cvrf(xml, "deep.xml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "deep.xml:2: product tree nested deeper than 16 branches");
}

TEST(CvrfReader, BinaryGarbageIsAnError) {
  std::string garbage(4096, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 131 + 7);
  auto r = read_cvrf(garbage, "garbage.bin");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("garbage.bin:")) << r.error().message;
}

}  // namespace
}  // namespace kbgap::catalog
