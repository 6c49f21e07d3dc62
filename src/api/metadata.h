// GET /api/$metadata: the CSDL (OData 4.0) document of the entities kbgap serves, made from their
// own JSON shapes, so that what it declares is what the endpoints answer (docs/api.md §4).
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <vector>

namespace kbgap::api {

struct EntityDescription {
  std::string type;           // "Machine": microsoft.windowsDefenderATP.api.Machine
  std::string set;            // "Machines" ("" when the type has no entity set of its own)
  boost::json::object shape;  // an item with every property; its values' kinds give the types
};

// The namespace Defender's @odata.context names types in.
inline constexpr const char* kODataNamespace = "microsoft.windowsDefenderATP.api";

// Properties named like times are Edm.DateTimeOffset; numbers Edm.Int64 or Edm.Double; arrays
// of strings Collection(Edm.String); an array of objects a collection of a complex type named
// after the property (ipAddresses: IpAddress); anything null in the shape Edm.String. Every
// entity type's key is `id`.
std::string csdl(const std::vector<EntityDescription>& entities);

}  // namespace kbgap::api
