// WES-NG's definitions (Windows Exploit Suggester - Next Generation, github.com/bitsadmin/wesng,
// BSD-3-Clause): the rows posted before MSRC's CVRF documents begin (April 2016), mapped onto the
// catalog's model. The rules are in docs/catalog.md, "Before 2016".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "catalog/model.h"
#include "catalog/tar_zst_reader.h"
#include "common/result.h"

namespace kbgap::catalog {

// MSRC's CVRF API starts with the documents of April 2016: WES-NG rows posted before are read.
inline constexpr std::string_view kWesngBefore = "20160401";
// The documents made from WES-NG's rows are named "wesng-2015-12-08": one per day of posting.
inline constexpr std::string_view kWesngDocumentPrefix = "wesng-";
// The version of the mapping rules (wesng_reader.cpp): in each document's revision
// ("20260628.2") and digest, so that a kbgap with other rules replaces what an older one stored.
inline constexpr int kWesngMapping = 3;  // 3: a CVE's dates
// Does a stored document of WES-NG's rows come from this version of the rules?
bool current_wesng_mapping(std::string_view revision);

bool is_wesng_document(std::string_view document_id);

struct WesngDefinitions {
  std::string member;               // the CSV read: "CVEs_20260628.csv"
  std::vector<Document> documents;  // one per day rows were posted, oldest first
  std::uint64_t rows = 0;           // records read, the header excluded
  std::uint64_t imported = 0;       // rows mapped onto a document
  SkipCounts skipped;               // rows left out, by reason
  SkipCounts repaired;              // fields partly read, their rows kept (Supersedes "None")
  // Rows imported for something an inventory does not show (Office, VBScript 5.8, Internet
  // Explorer 9, ...), by its name: in the catalog, but on no device until kbgap can see it.
  std::map<std::string, std::uint64_t> not_on_devices;
};

// Reads WES-NG's definitions.zip (or kbgap's extract of it, data/catalog/wesng-before-2016.zip)
// from `archive` (opened as a zip). `product_ids`: the catalog's product ids by normalized name
// (fold_name, common/text.h), so that a row for a
// product MSRC also names lands on MSRC's product. Errors name the archive, member and line.
Result<WesngDefinitions> read_wesng(TarZstReader& archive, std::string_view archive_name,
                                    const std::map<std::string, std::string>& product_ids);
// The CSV itself (`where` names it in errors; `definitions_day`: "20260628", a valid date, from
// the member's name).
Result<WesngDefinitions> read_wesng_csv(std::string_view content, const std::string& where,
                                        std::string_view definitions_day,
                                        const std::map<std::string, std::string>& product_ids);

}  // namespace kbgap::catalog
