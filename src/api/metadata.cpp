// The CSDL document of GET /api/$metadata (docs/api.md §4), written with pugixml.
#include "api/metadata.h"

#include <fmt/format.h>

#include <pugixml.hpp>
#include <set>
#include <sstream>
#include <string_view>

namespace kbgap::api {
namespace {

bool is_time(std::string_view name) {
  static const std::set<std::string_view> kTimes = {
      "firstSeen",      "lastSeen",      "publishedOn",    "updatedOn",    "alertCreationTime",
      "firstEventTime", "lastEventTime", "lastUpdateTime", "resolvedTime", "generatedTime"};
  return kTimes.contains(name);
}

// "ipAddresses" -> "IpAddress": the complex type of an array of objects.
std::string complex_name(std::string_view property) {
  std::string name(property);
  if (name.size() > 2 && name.ends_with("es") && name.ends_with("sses"))
    name.resize(name.size() - 2);
  else if (name.size() > 1 && name.back() == 's')
    name.pop_back();
  if (!name.empty()) name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  return name;
}

std::string edm_type(std::string_view name, const boost::json::value& v) {
  if (is_time(name)) return "Edm.DateTimeOffset";
  switch (v.kind()) {
    case boost::json::kind::bool_:
      return "Edm.Boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "Edm.Int64";
    case boost::json::kind::double_:
      return "Edm.Double";
    case boost::json::kind::array: {
      const auto& a = v.as_array();
      if (!a.empty() && a.front().is_object()) {
        return fmt::format("Collection({}.{})", kODataNamespace, complex_name(name));
      }
      return "Collection(Edm.String)";
    }
    default:
      return "Edm.String";
  }
}

void properties(pugi::xml_node type, const boost::json::object& shape, bool entity) {
  for (const auto& kv : shape) {
    pugi::xml_node p = type.append_child("Property");
    p.append_attribute("Name") = std::string(kv.key()).c_str();
    p.append_attribute("Type") = edm_type(kv.key(), kv.value()).c_str();
    const bool key = entity && kv.key() == "id";
    if (key || kv.value().is_array()) p.append_attribute("Nullable") = "false";
  }
}

}  // namespace

std::string csdl(const std::vector<EntityDescription>& entities) {
  pugi::xml_document doc;
  pugi::xml_node decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "utf-8";
  pugi::xml_node edmx = doc.append_child("edmx:Edmx");
  edmx.append_attribute("Version") = "4.0";
  edmx.append_attribute("xmlns:edmx") = "http://docs.oasis-open.org/odata/ns/edmx";
  pugi::xml_node schema = edmx.append_child("edmx:DataServices").append_child("Schema");
  schema.append_attribute("Namespace") = kODataNamespace;
  schema.append_attribute("xmlns") = "http://docs.oasis-open.org/odata/ns/edm";
  std::set<std::string> complex_done;
  for (const EntityDescription& e : entities) {
    pugi::xml_node type = schema.append_child("EntityType");
    type.append_attribute("Name") = e.type.c_str();
    if (e.shape.contains("id")) {
      type.append_child("Key").append_child("PropertyRef").append_attribute("Name") = "id";
    }
    properties(type, e.shape, e.shape.contains("id"));
    // The complex types of its arrays of objects (Machine.ipAddresses: IpAddress).
    for (const auto& kv : e.shape) {
      const auto* a = kv.value().if_array();
      if (!a || a->empty() || !a->front().is_object()) continue;
      const std::string name = complex_name(kv.key());
      if (!complex_done.insert(name).second) continue;
      pugi::xml_node complex = schema.append_child("ComplexType");
      complex.append_attribute("Name") = name.c_str();
      properties(complex, a->front().as_object(), false);
    }
  }
  pugi::xml_node container = schema.append_child("EntityContainer");
  container.append_attribute("Name") = "Container";
  for (const EntityDescription& e : entities) {
    if (e.set.empty()) continue;
    pugi::xml_node set = container.append_child("EntitySet");
    set.append_attribute("Name") = e.set.c_str();
    set.append_attribute("EntityType") = fmt::format("{}.{}", kODataNamespace, e.type).c_str();
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default, pugi::encoding_utf8);
  return out.str();
}

}  // namespace kbgap::api
