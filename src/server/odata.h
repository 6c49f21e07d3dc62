// OData query options as Defender's API takes them (docs/api.md §3-4): $filter with eq, ne, gt, ge,
// lt, le, and, or, not, parentheses, startswith/endswith/contains and `field/any(x: x eq '...')`;
// $top, $skip, $count, $select. Anything else is a clear error, never a guess.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kbgap::server::odata {

// "%20" (and, in a query, "+") decoded; nullopt on a bad escape.
std::optional<std::string> url_decode(std::string_view text, bool plus_is_space = true);

class Filter {
 public:
  // `fields`: the entity's filterable fields. Errors say what and where ("at 14: ...").
  static Result<Filter> parse(std::string_view text, const std::vector<std::string>& fields);
  bool matches(const boost::json::object& entity) const;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
};

// One key of $orderby: a field (the entity's spelling) and its direction.
struct OrderKey {
  std::string field;
  bool descending = false;
};
// "lastSeen desc, computerDnsName" -> its keys; fields as $filter takes them (without case).
Result<std::vector<OrderKey>> parse_orderby(std::string_view text,
                                            const std::vector<std::string>& fields);
// An item's values of the keys (null where it has none), and their order: null, then false and
// true, numbers, and strings (without case, then with), each key ascending or descending.
std::vector<boost::json::value> order_keys(const boost::json::object& item,
                                           const std::vector<OrderKey>& keys);
bool order_before(const std::vector<boost::json::value>& a,
                  const std::vector<boost::json::value>& b, const std::vector<OrderKey>& keys);

struct Query {
  std::optional<Filter> filter;
  std::vector<OrderKey> orderby;    // $orderby, in order of precedence
  std::string orderby_text;         // as given, for @odata.nextLink
  std::vector<std::string> expand;  // $expand: the names as given
  std::size_t top = 0;              // the page size
  bool top_given = false;           // $top was in the query (not the collection's maximum)
  std::size_t skip = 0;
  // The export APIs' paging (docs/api.md): pageSize, and the older pageIndex (1, 2, ...);
  // other collections ignore them.
  std::optional<std::size_t> page_size, page_index;
  bool count = false;
  std::string filter_text;  // as given, for @odata.nextLink
  // Where the previous page stopped (kbgap's @odata.nextLink writes it): the position in the
  // collection to go on from, so that a page of a filtered collection does not scan again what
  // earlier pages did. Opaque to clients, who follow nextLink as it is.
  std::optional<std::size_t> skiptoken;
  // $select: the properties to keep, in the order given ("id,computerDnsName"); empty: all.
  std::vector<std::string> select;
  std::string select_text;  // as given, for @odata.nextLink and @odata.context
};

// The query string's parameters that are not OData options ("tag", "pageSize"): by lower-case
// name, decoded; the last of a name wins.
Result<std::map<std::string, std::string>> parameters(std::string_view query);
// The $select of an entity's query string (the one option an entity takes; others are ignored).
Result<std::vector<std::string>> entity_select(std::string_view query);
// The properties an @odata.context names after a $select: "(id,osPlatform)"; "" without one.
std::string selected_properties(const std::vector<std::string>& select);
// "id, computerDnsName" -> {"id", "computerDnsName"}; an error for an empty or malformed list.
Result<std::vector<std::string>> parse_select(std::string_view text);
// The entity with only the selected properties (all of them when `select` is empty). Selecting a
// property the entity does not have is an error naming it.
Result<boost::json::object> project(const boost::json::object& entity,
                                    const std::vector<std::string>& select);

// The query string of a collection request. `max_top` is the endpoint's largest page (also the
// page when $top is absent); $top above it is an error, as is an unknown $option.
Result<Query> parse_query(std::string_view query, std::size_t max_top,
                          const std::vector<std::string>& fields);

}  // namespace kbgap::server::odata
