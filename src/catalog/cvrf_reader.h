// Reads one MSRC CVRF 1.2 XML document (as served by the MSRC Security Updates API) into the model.
#pragma once

#include <string_view>

#include "catalog/model.h"
#include "common/result.h"

namespace kbgap::catalog {

struct ParsedDocument {
  Document document;
  SkipCounts skips;  // what was passed over or repaired in this document, by reason
};

// `source` names the input in error messages ("file.xml", "archive.tar.zst!cvrf/x.xml").
// Errors read "<source>:<line>: <what is wrong>".
Result<ParsedDocument> read_cvrf(std::string_view xml, std::string_view source);

}  // namespace kbgap::catalog
