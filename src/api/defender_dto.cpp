// Defender's PublicProductFixDto and the collection that carries it.
#include "api/defender_dto.h"

#include <fmt/format.h>

namespace kbgap::api {

std::string missing_kbs_context(std::string_view base_url) {
  return fmt::format(
      "{}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)",
      base_url);
}

boost::json::object product_fix_dto(const engine::MissingKb& kb, std::int64_t machine_missed_on) {
  boost::json::object o;
  o["id"] = std::to_string(kb.kb);
  o["name"] = kb.name;
  boost::json::array products;
  for (const std::string& p : kb.products_names) products.emplace_back(p);
  o["productsNames"] = std::move(products);
  o["url"] = kb.url;
  o["machineMissedOn"] = machine_missed_on;
  o["cveAddressed"] = static_cast<std::int64_t>(kb.cves.size());
  return o;
}

boost::json::object missing_kbs_body(const engine::Evaluation& evaluation,
                                     std::string_view base_url) {
  boost::json::object body;
  body["@odata.context"] = missing_kbs_context(base_url);
  boost::json::array value;
  for (const engine::MissingKb& kb : evaluation.missing) value.push_back(product_fix_dto(kb, 1));
  body["value"] = std::move(value);
  return body;
}

}  // namespace kbgap::api
