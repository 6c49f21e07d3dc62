// Inventory readers on the 51 real systeminfo and wmic qfe outputs shipped in data/inventories.
#include "inventory/inventory_reader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include "inventory/text_decode.h"
#include "inventory/windows_release.h"
#include "test_support.h"

namespace kbgap::inventory {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inventory_files() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(KBGAP_SOURCE_DIR) / "data/inventories")) {
    if (e.path().extension() == ".txt" && e.path().filename() != "LICENSE.txt") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

Inventory read_one(const std::string& name) {
  const fs::path path = fs::path(KBGAP_SOURCE_DIR) / "data/inventories" / name;
  auto r = read_inventory(test::read_file(path), name);
  if (!r) {
    ADD_FAILURE() << r.error().message;
    return {};
  }
  EXPECT_EQ(r->size(), 1u);
  return r->front();
}

// What WES-NG's authors wrote into each file name: "10_1803_x64_...", "srv_2012r2_x64_...",
// "7_sp1_x86_...", "vista_x64_sp1_...", "xp_sp2_x64_...". An expectation independent of kbgap.
struct Expected {
  std::string family, version, arch, service_pack;
};
Expected expected_from_name(const std::string& name) {
  Expected e;
  std::smatch m;
  if (std::regex_search(name, m, std::regex(R"(^(10|11)_(rtm|\d{4}|\d\dH\d)_(x64|x86)_)"))) {
    e.family = "Windows " + m[1].str();
    e.version = m[2] == "rtm" ? "1507" : m[2].str();
    e.arch = m[3];
  } else if (std::regex_search(name, m, std::regex(R"(^7_sp1_(x64|x86)_)"))) {
    e = {"Windows 7", "", m[1], "Service Pack 1"};
  } else if (std::regex_search(name, m, std::regex(R"(^8\.1_u1_(x64|x86)_)"))) {
    e = {"Windows 8.1", "", m[1], ""};
  } else if (std::regex_search(name, m, std::regex(R"(^srv_(\d{4})(r2)?_(?:(\d{4})_)?)"))) {
    // systeminfo does not tell Server 2003 R2 from 2003 ("Microsoft(R) Windows(R) Server 2003,
    // Standard Edition"): the prefix check below accepts either there.
    e.family = "Windows Server " + m[1].str() + (m[2].matched && m[1] != "2003" ? " R2" : "");
    e.version = m[3].matched ? m[3].str() : "";
  } else if (std::regex_search(name, m, std::regex(R"(^vista_(x64)_sp(\d))"))) {
    e = {"Windows Vista", "", m[1], m[2] == "0" ? "" : "Service Pack " + m[2].str()};
  } else if (std::regex_search(name, m, std::regex(R"(^xp_(rtm|sp\d)_(x64|x86))"))) {
    e.family = "Windows XP";
    e.arch = m[2];
  }
  if (std::regex_search(name, m, std::regex(R"(_(x64|x86)_)"))) e.arch = m[1];
  return e;
}

TEST(InventoryReader, ReadsEveryRealInventory) {
  const auto files = inventory_files();
  ASSERT_EQ(files.size(), 51u);
  int systeminfo = 0, hotfix_lists = 0;
  for (const fs::path& path : files) {
    const std::string name = path.filename().string();
    SCOPED_TRACE(name);
    Inventory inv = read_one(name);
    EXPECT_EQ(inv.device.id.size(), 40u);
    if (name.find("_qfe") != std::string::npos) {
      ++hotfix_lists;
      EXPECT_EQ(inv.format, InventoryFormat::kHotfixList);
      EXPECT_FALSE(inv.has_os);
      EXPECT_FALSE(inv.device.installed_kbs.empty());
      continue;
    }
    ++systeminfo;
    EXPECT_FALSE(inv.device.computer_dns_name.empty());
    EXPECT_EQ(inv.format, InventoryFormat::kSysteminfo);
    const Device& d = inv.device;
    Expected e = expected_from_name(name);
    ASSERT_FALSE(e.family.empty()) << "file name not understood";
    EXPECT_EQ(d.os_family.substr(0, e.family.size()), e.family) << d.os_name;
    if (!e.version.empty()) {
      EXPECT_EQ(d.version, e.version);
    }
    if (!e.arch.empty()) {
      EXPECT_EQ(architecture_name(d.architecture), e.arch) << d.os_name;
    }
    if (!e.service_pack.empty()) {
      EXPECT_EQ(d.service_pack, e.service_pack);
    }
    EXPECT_GT(d.build, 0);
  }
  EXPECT_EQ(systeminfo, 41);
  EXPECT_EQ(hotfix_lists, 10);
}

TEST(InventoryReader, ReadsLocalizedSysteminfo) {
  // Chinese (GBK code page): one hotfix.
  Inventory zh = read_one("10_1809_x64_enterprise_zh-cn_systeminfo.txt");
  EXPECT_EQ(zh.device.computer_dns_name, "DESKTOP-0CQH3P2");
  EXPECT_EQ(zh.device.os_family, "Windows 10");
  EXPECT_EQ(zh.device.version, "1809");
  EXPECT_EQ(zh.device.installed_kbs, std::vector<KbNumber>{4464455});
  // Russian (UTF-8): Windows Server 2012 R2 with seven hotfixes.
  Inventory ru = read_one("srv_2012r2_x64_standard_ru_systeminfo.txt");
  EXPECT_EQ(ru.device.os_family, "Windows Server 2012 R2");
  EXPECT_EQ(ru.device.architecture, Architecture::kX64);
  EXPECT_EQ(ru.device.installed_kbs,
            (std::vector<KbNumber>{2919355, 2919442, 2937220, 2938772, 2939471, 2949621, 2999226}));
  // French, PowerShell (UTF-16LE): labels with "[01] :" items.
  Inventory fr = read_one("7_sp1_x64_enterprise_fr_systeminfo_powershell.txt");
  EXPECT_EQ(fr.device.computer_dns_name, "WIN-IDKKFN87EL8");
  EXPECT_EQ(fr.device.os_family, "Windows 7");
  EXPECT_EQ(fr.device.service_pack, "Service Pack 1");
  EXPECT_FALSE(fr.device.installed_kbs.empty());
  // Italian (CP850): ten hotfixes, the first KB4100347.
  Inventory it = read_one("10_1803_x64_pro_it_systeminfo.txt");
  EXPECT_EQ(it.device.computer_dns_name, "PC044");
  EXPECT_EQ(it.device.installed_kbs.size(), 10u);
  EXPECT_EQ(it.device.edition, "Pro");
}

// systeminfo's "Network Card(s)" lists each card's addresses as numbered items, in every language:
// each is kept (Defender's ipAddresses), and no item that reads as an address becomes a KB.
TEST(InventoryReader, ReadsTheNetworkCardsAddressesInEveryLanguage) {
  const std::regex ipv4(R"(^\s+\[\d+\]\s?: ((\d{1,3}\.){3}\d{1,3})\s*$)");
  int with_addresses = 0;
  for (const fs::path& path : inventory_files()) {
    const std::string name = path.filename().string();
    if (name.find("_qfe") != std::string::npos) continue;
    SCOPED_TRACE(name);
    const Inventory inv = read_one(name);
    // The IPv4 items of the file, as its own lines give them.
    std::vector<std::string> listed;
    std::istringstream lines(decode_windows_text(test::read_file(path)));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::smatch m;
      if (std::regex_match(line, m, ipv4) &&
          std::find(listed.begin(), listed.end(), m[1].str()) == listed.end()) {
        listed.push_back(m[1]);
      }
    }
    std::vector<std::string> v4;
    for (const std::string& a : inv.device.ip_addresses) {
      EXPECT_EQ(canonical_ip(a), a);
      if (a.find(':') == std::string::npos) v4.push_back(a);
    }
    EXPECT_EQ(v4, listed);
    with_addresses += inv.device.ip_addresses.empty() ? 0 : 1;
    for (KbNumber kb : inv.device.installed_kbs) EXPECT_GE(kb, kMinKbNumber);
  }
  EXPECT_GE(with_addresses, 30);
  // A machine with VMware's host-only adapters first: its addresses in the order of its cards.
  const Inventory vm = read_one("10_1809_x64_pro_en-us_20190307_systeminfo.txt");
  ASSERT_GE(vm.device.ip_addresses.size(), 4u);
  EXPECT_EQ(vm.device.ip_addresses[0], "192.168.228.1");
  EXPECT_EQ(vm.device.ip_addresses[1], "fe80::612a:8729:a361:50b2");
}

// lastIpAddress: a routable IPv4 address first, then IPv6, passing over loopback, link-local and
// unspecified addresses; the first address when all are of those.
TEST(InventoryReader, PrimaryAddress) {
  EXPECT_EQ(primary_ip({"fe80::1", "169.254.3.4", "127.0.0.1", "10.1.2.3"}), "10.1.2.3");
  EXPECT_EQ(primary_ip({"fe80::1", "2001:db8::7", "0.0.0.0"}), "2001:db8::7");
  EXPECT_EQ(primary_ip({"169.254.3.4", "fe80::1"}), "169.254.3.4");
  EXPECT_EQ(primary_ip({}), "");
  EXPECT_EQ(canonical_ip("2001:DB8:0:0:0:0:0:7"), "2001:db8::7");
  EXPECT_EQ(canonical_ip("10.0.0.1/24"), std::nullopt);
  EXPECT_EQ(canonical_ip("KB4540673"), std::nullopt);
}

TEST(InventoryReader, MapsToCatalogProductNames) {
  auto names = [](const std::string& file) { return os_product_names(read_one(file).device); };
  EXPECT_EQ(names("10_1803_x64_education_en-us_systeminfo.txt"),
            std::vector<std::string>{"Windows 10 Version 1803 for x64-based Systems"});
  EXPECT_EQ(names("10_1803_x86_enterprise_nl_systeminfo.txt"),
            std::vector<std::string>{"Windows 10 Version 1803 for 32-bit Systems"});
  EXPECT_EQ(names("10_rtm_x64_pro_en-us_systeminfo.txt"),
            std::vector<std::string>{"Windows 10 for x64-based Systems"});
  EXPECT_EQ(names("11_24H2_x64_enterprise_systeminfo.txt"),
            std::vector<std::string>{"Windows 11 Version 24H2 for x64-based Systems"});
  EXPECT_EQ(names("srv_2016_1607_datacenter_en-us_systeminfo.txt"),
            std::vector<std::string>{"Windows Server 2016"});
  EXPECT_EQ(
      names("srv_2008r2_sp1_x64_standard_en-us_systeminfo.txt"),
      std::vector<std::string>{"Windows Server 2008 R2 for x64-based Systems Service Pack 1"});
  EXPECT_EQ(names("7_sp1_x86_enterprise_en-us_systeminfo.txt"),
            std::vector<std::string>{"Windows 7 for 32-bit Systems Service Pack 1"});
  EXPECT_EQ(names("8.1_u1_x64_enterprise_en-us_systeminfo.txt"),
            std::vector<std::string>{"Windows 8.1 for x64-based systems"});
}

TEST(InventoryReader, HotfixListsCompleteTruncatedSysteminfo) {
  std::vector<Inventory> both;
  for (const char* name :
       {"7_sp1_x64_enterprise_en-us_B_systeminfo.txt", "7_sp1_x64_enterprise_en-us_B_qfe.txt"}) {
    both.push_back(read_one(name));
  }
  const std::size_t from_systeminfo = both[0].device.installed_kbs.size();
  const std::size_t from_qfe = both[1].device.installed_kbs.size();
  auto merged = merge_inventories(both);
  ASSERT_TRUE(merged) << merged.error().message;
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_GE(merged->front().installed_kbs.size(), std::max(from_systeminfo, from_qfe));
  EXPECT_GT(from_qfe, from_systeminfo) << "the qfe list is the complete one";
}

TEST(InventoryReader, WmicOutputAfterAnAsciiPreamble) {
  // "Please wait while WMIC is being installed." then UTF-16LE without a BOM.
  Inventory xp = read_one("xp_sp2_x64_qfe.txt");
  EXPECT_EQ(xp.device.computer_dns_name, "USER-8CEF73C787");
  EXPECT_GT(xp.device.installed_kbs.size(), 100u);
}

TEST(InventoryReader, ComputerNamesOfHotfixLists) {
  EXPECT_EQ(read_one("srv_2012r2_x64_standard_ru_qfe.txt").device.computer_dns_name, "DC");
  EXPECT_EQ(read_one("xp_rtm_x86_professional_en-us_qfe.txt").device.computer_dns_name, "WINXPSP0");
  EXPECT_EQ(read_one("7_sp1_x64_enterprise_en-us_B_qfe.txt").device.computer_dns_name,
            "WIN7SP1X64");
  // wmic qfe without the CSName column: no name, so it completes only a device given alone.
  Inventory nameless = read_one("10_1809_x64_pro_en-us_20190307_qfe.txt");
  EXPECT_EQ(nameless.device.computer_dns_name, "");
  auto alone =
      merge_inventories({read_one("10_1809_x64_pro_en-us_20190307_systeminfo.txt"), nameless});
  ASSERT_TRUE(alone) << alone.error().message;
  EXPECT_EQ(alone->size(), 1u);
  auto crowd = merge_inventories({read_one("10_1809_x64_pro_en-us_20190307_systeminfo.txt"),
                                  read_one("10_1803_x64_pro_it_systeminfo.txt"), nameless});
  ASSERT_FALSE(crowd);
  EXPECT_NE(crowd.error().message.find("without computer names"), std::string::npos);
}

// The same WMI objects as other tools print them: one field per line, a blank line between
// hotfixes. Made from the real wmic qfe table of a Windows 7 machine, column by column.
std::string as_field_list(const std::string& table, std::string_view separator, bool padded) {
  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  // Column starts: where each header word begins.
  std::vector<std::pair<std::size_t, std::string>> columns;
  const std::string& header = lines.at(0);
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (header[i] != ' ' && (i == 0 || header[i - 1] == ' ')) {
      columns.emplace_back(i, header.substr(i, header.find(' ', i) - i));
    }
  }
  std::string out = "\r\n";
  for (std::size_t r = 1; r < lines.size(); ++r) {
    if (lines[r].find_first_not_of(' ') == std::string::npos) continue;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const std::size_t from = columns[c].first;
      const std::size_t to = c + 1 < columns.size() ? columns[c + 1].first : lines[r].size();
      std::string value = from < lines[r].size() ? lines[r].substr(from, to - from) : "";
      value.erase(value.find_last_not_of(' ') + 1);
      std::string label = columns[c].second;
      // Get-HotFix names the computer "Source".
      if (padded && label == "CSName") label = "Source";
      if (padded) label.resize(std::max<std::size_t>(label.size(), 20), ' ');
      out += label + std::string(separator) + value + "\r\n";
    }
    out += "\r\n";
  }
  return out;
}

std::string utf16le_with_bom(const std::string& ascii) {
  std::string out = "\xFF\xFE";
  for (char c : ascii) {
    out.push_back(c);
    out.push_back('\0');
  }
  return out;
}

TEST(InventoryReader, HotfixListsOneFieldPerLineReadLikeTheTable) {
  const fs::path path =
      fs::path(KBGAP_SOURCE_DIR) / "data/inventories/7_sp1_x64_enterprise_en-us_B_qfe.txt";
  const std::string table = decode_windows_text(test::read_file(path));
  const Inventory expected = read_one("7_sp1_x64_enterprise_en-us_B_qfe.txt");
  ASSERT_GT(expected.device.installed_kbs.size(), 100u);
  // wmic qfe list full (UTF-16LE with a BOM, as wmic writes to a file), and Get-HotFix |
  // Format-List (UTF-8 with a BOM, as PowerShell 5.1's Out-File -Encoding utf8 writes).
  const std::string full = utf16le_with_bom(as_field_list(table, "=", false));
  const std::string format_list = "\xEF\xBB\xBF" + as_field_list(table, " : ", true);
  for (const auto& [name, bytes] :
       {std::pair{"wmic qfe list full", full}, std::pair{"Format-List", format_list}}) {
    auto r = read_inventory(bytes, name);
    ASSERT_TRUE(r) << name << ": " << r.error().message;
    const Device& d = r->front().device;
    EXPECT_FALSE(r->front().has_os) << name;
    EXPECT_EQ(d.installed_kbs, expected.device.installed_kbs) << name;
    EXPECT_EQ(d.computer_dns_name, "WIN7SP1X64") << name;
  }
}

TEST(InventoryReader, AnEmptyWmicOutputIsAListOfNoHotfixes) {
  // What `wmic qfe > qfe.txt` writes on a device without hotfixes: a BOM and a line break.
  auto empty = read_inventory(std::string("\xFF\xFE\r\0\n\0", 6), "qfe.txt");
  ASSERT_TRUE(empty) << empty.error().message;
  ASSERT_EQ(empty->size(), 1u);
  EXPECT_FALSE(empty->front().has_os);
  EXPECT_TRUE(empty->front().device.installed_kbs.empty());
  const Inventory win10 = read_one("10_1809_x64_pro_en-us_20190307_systeminfo.txt");
  auto merged = merge_inventories({win10, empty->front()});
  ASSERT_TRUE(merged) << merged.error().message;
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_EQ(merged->front().installed_kbs, win10.device.installed_kbs);
}

// Get-ComputerInfo's default list of the same machine a real systeminfo describes: the same
// device, as far as PowerShell prints it (it cuts OsHotFixes after four with "...").
TEST(InventoryReader, GetComputerInfoReadsLikeTheSysteminfoOfItsMachine) {
  for (const char* name : {"10_1809_x64_pro_en-us_20190307_systeminfo.txt",
                           "srv_2016_1607_datacenter_en-us_systeminfo.txt",
                           "7_sp1_x64_enterprise_en-us_A_systeminfo.txt"}) {
    const Device expected = read_one(name).device;
    std::string kbs;
    for (std::size_t i = 0; i < std::min<std::size_t>(4, expected.installed_kbs.size()); ++i) {
      kbs += fmt::format("{}KB{}", i ? ", " : "", expected.installed_kbs[i]);
    }
    if (expected.installed_kbs.size() > 4) kbs += "...";
    const std::string version =
        fmt::format("{}.{}.{}", expected.major, expected.minor, expected.build);
    const std::string text = fmt::format(
        "\r\nWindowsBuildLabEx                                       : {3}.1.amd64fre.release\r\n"
        "WindowsCurrentVersion                                   : 6.3\r\n"
        "WindowsEditionId                                        : {4}\r\n"
        "WindowsInstallationType                                 : Client\r\n"
        "WindowsProductName                                      : {1}\r\n"
        "WindowsRegisteredOwner                                  : user\r\n"
        "BiosBIOSVersion                                         : {{LENOVO - 1380, N1FET64W "
        "(1.38 ),\r\n"
        "                                                          Lenovo - 1380}}\r\n"
        "CsDNSHostName                                           : {0}\r\n"
        "CsName                                                  : {0}\r\n"
        "CsSystemType                                            : x64-based PC\r\n"
        "OsName                                                  : {1}\r\n"
        "OsType                                                  : WINNT\r\n"
        "OsVersion                                               : {2}\r\n"
        "OsCSDVersion                                            : {5}\r\n"
        "OsBuildNumber                                           : {3}\r\n"
        "OsHotFixes                                              : {{{6}}}\r\n"
        "OsArchitecture                                          : 64-bit\r\n"
        "OsServicePackMajorVersion                               : {7}\r\n",
        expected.computer_dns_name, expected.os_name, version, expected.build, expected.edition,
        expected.service_pack, kbs, expected.service_pack.empty() ? "0" : "1");
    auto r = read_inventory("\xEF\xBB\xBF" + text, "computerinfo.txt");
    ASSERT_TRUE(r) << name << ": " << r.error().message;
    const Device& d = r->front().device;
    EXPECT_TRUE(r->front().has_os);
    EXPECT_EQ(r->front().format, InventoryFormat::kComputerInfo);
    EXPECT_EQ(d.computer_dns_name, expected.computer_dns_name) << name;
    EXPECT_EQ(d.os_family, expected.os_family) << name;
    EXPECT_EQ(d.version, expected.version) << name;
    EXPECT_EQ(d.build, expected.build) << name;
    EXPECT_EQ(d.architecture, Architecture::kX64) << name;
    EXPECT_EQ(d.service_pack, expected.service_pack) << name;
    const std::vector<KbNumber> first(
        expected.installed_kbs.begin(),
        expected.installed_kbs.begin() +
            static_cast<std::ptrdiff_t>(std::min<std::size_t>(4, expected.installed_kbs.size())));
    EXPECT_EQ(d.installed_kbs, first) << name;
  }
}

TEST(InventoryReader, HotfixListWithoutItsDeviceIsAnError) {
  std::vector<Inventory> only{read_one("srv_2012r2_x64_standard_ru_qfe.txt")};
  auto merged = merge_inventories(only);
  ASSERT_FALSE(merged);
  EXPECT_NE(merged.error().message.find("without that computer's systeminfo"), std::string::npos);
}

TEST(InventoryReader, NotAnInventoryIsAnError) {
  for (std::string_view bytes : {std::string_view(""), std::string_view("hello world\n"),
                                 std::string_view("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16)}) {
    auto r = read_inventory(bytes, "x.txt");
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().message.starts_with("x.txt:1: ")) << r.error().message;
  }
}

TEST(TextDecode, DecodesEveryEncodingSeen) {
  EXPECT_EQ(decode_windows_text("a\r\nb\r\r\nc"), "a\nb\nc");
  EXPECT_EQ(decode_windows_text(std::string_view("\xFF\xFE"
                                                 "A\0:\0\r\0\n\0",
                                                 10)),
            "A:\n");
  EXPECT_EQ(decode_windows_text("\xEF\xBB\xBF"
                                "caf\xC3\xA9"),
            "caf\xC3\xA9");
  EXPECT_EQ(decode_windows_text("caf\x82"), "caf\xEF\xBF\xBD");  // CP850 'é' is not ASCII
}

}  // namespace
}  // namespace kbgap::inventory
