// The JSON shapes of Defender for Endpoint's API that kbgap serves (docs/api.md §2): one place
// renders them for the server and for `kbgap scan --format json`.
#pragma once

#include <boost/json.hpp>
#include <string_view>

#include "engine/evaluate.h"

namespace kbgap::api {

// "https://<host>" -> "https://<host>/api/$metadata#Collection(...PublicProductFixDto)".
std::string missing_kbs_context(std::string_view base_url);

// One PublicProductFixDto: id, name, productsNames, url, machineMissedOn, cveAddressed.
boost::json::object product_fix_dto(const engine::MissingKb& kb, std::int64_t machine_missed_on);

// The whole body of GET /api/machines/{id}/getmissingkbs.
boost::json::object missing_kbs_body(const engine::Evaluation& evaluation,
                                     std::string_view base_url);

}  // namespace kbgap::api
