// A recursive-descent reader of OData $filter expressions, evaluated over JSON entities.
#include "server/odata.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>

#include "common/clock.h"
#include "common/text.h"

namespace kbgap::server::odata {
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxFilterLength = 4096;
constexpr int kMaxDepth = 32;

enum class Op { kEq, kNe, kGt, kGe, kLt, kLe };

}  // namespace

struct Filter::Node {
  enum class Kind { kAnd, kOr, kNot, kCompare, kStartsWith, kEndsWith, kContains, kAny };
  Kind kind = Kind::kCompare;
  std::shared_ptr<const Node> left, right;  // and/or: both; not: left
  std::string field;
  Op op = Op::kEq;
  json::value literal;  // string, number, bool or null
};

namespace {

using Node = Filter::Node;

struct Token {
  enum class Type { kIdent, kString, kNumber, kDate, kLParen, kRParen, kComma, kColon, kEnd };
  Type type = Type::kEnd;
  std::string text;
  std::size_t at = 0;
};

class Parser {
 public:
  Parser(std::string_view text, const std::vector<std::string>& fields)
      : text_(text), fields_(fields) {}

  Result<std::shared_ptr<const Node>> run() {
    KBGAP_TRY(tokenize());
    auto node = expression(0);
    if (!node) return node.error();
    if (peek().type != Token::Type::kEnd) return fail(peek(), "unexpected text");
    return node;
  }

 private:
  Error fail(const Token& t, std::string_view what) const {
    return invalid_input(fmt::format(
        "Invalid $filter at {}: {}{}", t.at + 1, what,
        t.type == Token::Type::kEnd ? " (at the end)" : fmt::format(" near '{}'", t.text)));
  }

  Result<void> tokenize() {
    std::size_t i = 0;
    while (i < text_.size()) {
      const char c = text_[i];
      if (c == ' ') {
        ++i;
        continue;
      }
      Token t;
      t.at = i;
      if (c == '(' || c == ')' || c == ',' || c == ':') {
        t.type = c == '('   ? Token::Type::kLParen
                 : c == ')' ? Token::Type::kRParen
                 : c == ',' ? Token::Type::kComma
                            : Token::Type::kColon;
        t.text = std::string(1, c);
        ++i;
      } else if (c == '\'') {
        t.type = Token::Type::kString;
        ++i;
        for (;;) {
          if (i >= text_.size()) {
            t.text = std::string(text_.substr(t.at, 20));
            return fail(t, "unterminated string");
          }
          if (text_[i] == '\'') {
            if (i + 1 < text_.size() && text_[i + 1] == '\'') {
              t.text.push_back('\'');
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          t.text.push_back(text_[i++]);
        }
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-') {
        std::size_t j = i + 1;
        while (j < text_.size() &&
               (std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '.' ||
                text_[j] == ':' || text_[j] == '-' || text_[j] == '+')) {
          ++j;
        }
        t.text = std::string(text_.substr(i, j - i));
        t.type = t.text.find_first_of("T:") != std::string::npos ||
                         (t.text.size() >= 10 && t.text[4] == '-' && t.text[7] == '-')
                     ? Token::Type::kDate
                     : Token::Type::kNumber;
        i = j;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t j = i + 1;
        while (j < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[j])) ||
                                    text_[j] == '_' || text_[j] == '/' || text_[j] == '.')) {
          ++j;
        }
        t.type = Token::Type::kIdent;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else {
        t.text = std::string(1, c);
        return fail(t, "unexpected character");
      }
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.at = text_.size();
    tokens_.push_back(end);
    return ok_result();
  }

  const Token& peek() const { return tokens_[pos_]; }
  // Steps over the next token when it is of `type`; otherwise "expected <what>".
  Result<void> expect(Token::Type type, std::string_view what) {
    if (peek().type != type) return fail(peek(), fmt::format("expected {}", what));
    next();
    return ok_result();
  }
  const Token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool keyword(std::string_view word) const {
    return peek().type == Token::Type::kIdent && peek().text == word;
  }

  Result<std::shared_ptr<const Node>> expression(int depth) {
    if (depth > kMaxDepth) return fail(peek(), "expression nested too deeply");
    return chain(depth, "or", Node::Kind::kOr, &Parser::conjunction);
  }

  Result<std::shared_ptr<const Node>> conjunction(int depth) {
    return chain(depth, "and", Node::Kind::kAnd, &Parser::unary);
  }

  // operand (word operand)*, joined left to right.
  Result<std::shared_ptr<const Node>> chain(
      int depth, std::string_view word, Node::Kind kind,
      Result<std::shared_ptr<const Node>> (Parser::*operand)(int)) {
    auto left = (this->*operand)(depth);
    if (!left) return left;
    while (keyword(word)) {
      next();
      auto right = (this->*operand)(depth);
      if (!right) return right;
      auto n = std::make_shared<Node>();
      n->kind = kind;
      n->left = *left;
      n->right = *right;
      left = std::shared_ptr<const Node>(n);
    }
    return left;
  }

  Result<std::shared_ptr<const Node>> unary(int depth) {
    if (depth > kMaxDepth) return fail(peek(), "expression nested too deeply");
    if (keyword("not")) {
      next();
      auto inner = unary(depth + 1);
      if (!inner) return inner;
      auto n = std::make_shared<Node>();
      n->kind = Node::Kind::kNot;
      n->left = *inner;
      return std::shared_ptr<const Node>(n);
    }
    if (peek().type == Token::Type::kLParen) {
      next();
      auto inner = expression(depth + 1);
      if (!inner) return inner;
      KBGAP_TRY(expect(Token::Type::kRParen, "')'"));
      return inner;
    }
    if (peek().type != Token::Type::kIdent) return fail(peek(), "expected a field or a function");
    const Token name = next();
    if (name.text == "startswith" || name.text == "endswith" || name.text == "contains") {
      return function(name);
    }
    const auto slash = name.text.find("/any");
    if (slash != std::string::npos && slash + 4 == name.text.size()) return any(name);
    auto field = known_field(name, name.text);
    if (!field) return field.error();
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kCompare;
    n->field = *field;
    auto op = comparison();
    if (!op) return op.error();
    n->op = *op;
    auto value = literal();
    if (!value) return value.error();
    n->literal = std::move(*value);
    return std::shared_ptr<const Node>(n);
  }

  // Names compare without case, as Defender's do (computerDnsName, ComputerDNSName): the
  // entity's own spelling is what is compared.
  Result<std::string> known_field(const Token& at, std::string_view name) const {
    const std::string lower = to_lower(name);
    auto it = std::find_if(fields_.begin(), fields_.end(),
                           [&](const std::string& f) { return to_lower(f) == lower; });
    if (it == fields_.end()) {
      return fail(at, fmt::format("'{}' is not a field this collection can be filtered on", name));
    }
    return *it;
  }

  Result<Op> comparison() {
    const Token t = next();
    static constexpr std::pair<std::string_view, Op> kOps[] = {{"eq", Op::kEq}, {"ne", Op::kNe},
                                                               {"gt", Op::kGt}, {"ge", Op::kGe},
                                                               {"lt", Op::kLt}, {"le", Op::kLe}};
    if (t.type == Token::Type::kIdent) {
      for (const auto& [word, op] : kOps) {
        if (t.text == word) return op;
      }
    }
    return fail(t, "expected eq, ne, gt, ge, lt or le");
  }

  Result<json::value> literal() {
    const Token t = next();
    switch (t.type) {
      case Token::Type::kString:
        return json::value(t.text);
      case Token::Type::kDate: {
        // As kbgap stores times (UTC to the second, "2018-08-01T00:00:00Z"), so that dates
        // compare as dates: 2018-08-01Z is that day's start; an offset is moved to UTC.
        std::string text = t.text;
        if (text.size() == 10 || (text.size() == 11 && (text[10] == 'Z' || text[10] == 'z'))) {
          text = text.substr(0, 10) + "T00:00:00Z";
        } else if (text.size() >= 16 && text[13] == ':' && (text.size() == 16 || text[16] != ':')) {
          text.insert(16, ":00");  // 2018-08-01T10:00Z: OData's seconds are optional
        }
        auto utc = utc_time_from_rfc3339(text);
        if (!utc) return fail(t, "not a date (2018-08-01Z or 2018-08-01T10:00:00Z)");
        return json::value(*utc);
      }
      case Token::Type::kNumber: {
        double v = 0;
        auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || end != t.text.data() + t.text.size() || !std::isfinite(v)) {
          return fail(t, "not a number");
        }
        return json::value(v);
      }
      case Token::Type::kIdent:
        if (t.text == "true") return json::value(true);
        if (t.text == "false") return json::value(false);
        if (t.text == "null") return json::value(nullptr);
        break;
      default:
        break;
    }
    return fail(t, "expected a value ('text', a number, true, false, null or a date)");
  }

  Result<std::shared_ptr<const Node>> function(const Token& name) {
    KBGAP_TRY(expect(Token::Type::kLParen, "'('"));
    const Token f = next();
    if (f.type != Token::Type::kIdent) return fail(f, "expected a field");
    auto field = known_field(f, f.text);
    if (!field) return field.error();
    KBGAP_TRY(expect(Token::Type::kComma, "','"));
    const Token s = next();
    if (s.type != Token::Type::kString) return fail(s, "expected a 'text' value");
    KBGAP_TRY(expect(Token::Type::kRParen, "')'"));
    auto n = std::make_shared<Node>();
    n->kind = name.text == "startswith" ? Node::Kind::kStartsWith
              : name.text == "endswith" ? Node::Kind::kEndsWith
                                        : Node::Kind::kContains;
    n->field = *field;
    n->literal = json::value(s.text);
    return std::shared_ptr<const Node>(n);
  }

  // field/any(x: x op value)
  Result<std::shared_ptr<const Node>> any(const Token& name) {
    const std::string collection = name.text.substr(0, name.text.size() - 4);
    auto field = known_field(name, collection);
    if (!field) return field.error();
    KBGAP_TRY(expect(Token::Type::kLParen, "'('"));
    const Token var = next();
    if (var.type != Token::Type::kIdent) return fail(var, "expected a variable name");
    KBGAP_TRY(expect(Token::Type::kColon, "':'"));
    const Token use = next();
    if (use.type != Token::Type::kIdent || use.text != var.text) {
      return fail(use, fmt::format("expected '{}'", var.text));
    }
    auto op = comparison();
    if (!op) return op.error();
    auto value = literal();
    if (!value) return value.error();
    KBGAP_TRY(expect(Token::Type::kRParen, "')'"));
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::kAny;
    n->field = *field;
    n->op = *op;
    n->literal = std::move(*value);
    return std::shared_ptr<const Node>(n);
  }

  std::string_view text_;
  const std::vector<std::string>& fields_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
};

// Strings compare without case, as Defender's names do; numbers as numbers; null equals only
// null (or an absent field).
bool compare(const json::value& value, Op op, const json::value& literal) {
  if (literal.is_null() || value.is_null()) {
    const bool equal = literal.is_null() && value.is_null();
    return op == Op::kEq ? equal : op == Op::kNe ? !equal : false;
  }
  int order = 0;
  if (value.is_string() && literal.is_string()) {
    const std::string a = to_lower(value.as_string()), b = to_lower(literal.as_string());
    order = a < b ? -1 : a > b ? 1 : 0;
  } else if (value.is_number() && literal.is_number()) {
    const double a = value.to_number<double>(), b = literal.to_number<double>();
    order = a < b ? -1 : a > b ? 1 : 0;
  } else if (value.is_bool() && literal.is_bool()) {
    order = value.as_bool() == literal.as_bool() ? 0 : value.as_bool() ? 1 : -1;
  } else {
    return op == Op::kNe;  // different types are never equal
  }
  switch (op) {
    case Op::kEq:
      return order == 0;
    case Op::kNe:
      return order != 0;
    case Op::kGt:
      return order > 0;
    case Op::kGe:
      return order >= 0;
    case Op::kLt:
      return order < 0;
    case Op::kLe:
      return order <= 0;
  }
  return false;
}

bool evaluate(const Node& n, const json::object& entity) {
  auto field = [&]() -> json::value {
    auto it = entity.find(n.field);
    return it == entity.end() ? json::value(nullptr) : it->value();
  };
  switch (n.kind) {
    case Node::Kind::kAnd:
      return evaluate(*n.left, entity) && evaluate(*n.right, entity);
    case Node::Kind::kOr:
      return evaluate(*n.left, entity) || evaluate(*n.right, entity);
    case Node::Kind::kNot:
      return !evaluate(*n.left, entity);
    case Node::Kind::kCompare:
      return compare(field(), n.op, n.literal);
    case Node::Kind::kStartsWith:
    case Node::Kind::kEndsWith:
    case Node::Kind::kContains: {
      const json::value v = field();
      if (!v.is_string()) return false;
      const std::string s = to_lower(v.as_string()), p = to_lower(n.literal.as_string());
      if (n.kind == Node::Kind::kStartsWith) return s.starts_with(p);
      if (n.kind == Node::Kind::kEndsWith) return s.ends_with(p);
      return s.find(p) != std::string::npos;
    }
    case Node::Kind::kAny: {
      const json::value v = field();
      if (!v.is_array()) return false;
      const auto& a = v.as_array();
      return std::any_of(a.begin(), a.end(),
                         [&](const json::value& item) { return compare(item, n.op, n.literal); });
    }
  }
  return false;
}

}  // namespace

std::optional<std::string> url_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (text[i] == '%') {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        return std::nullopt;
      }
      int v = 0;
      std::from_chars(text.data() + i + 1, text.data() + i + 3, v, 16);
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

Result<Filter> Filter::parse(std::string_view text, const std::vector<std::string>& fields) {
  if (text.size() > kMaxFilterLength) {
    return invalid_input(
        fmt::format("Invalid $filter: longer than {} characters", kMaxFilterLength));
  }
  Parser parser(text, fields);
  auto root = parser.run();
  if (!root) return root.error();
  Filter f;
  f.root_ = *root;
  return f;
}

bool Filter::matches(const json::object& entity) const {
  return evaluate(*root_, entity);
}

Result<std::vector<std::string>> parse_select(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    const auto comma = text.find(',');
    std::string_view name = text.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    const bool identifier =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
    if (!identifier) {
      return invalid_input(fmt::format("Invalid $select: '{}' is not a property name",
                                       std::string(name.substr(0, 64))));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.emplace_back(name);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

Result<std::vector<OrderKey>> parse_orderby(std::string_view text,
                                            const std::vector<std::string>& fields) {
  std::vector<OrderKey> out;
  while (true) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    auto trim = [](std::string_view& v) {
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    };
    trim(item);
    const auto space = item.find(' ');
    std::string_view name = item.substr(0, space);
    std::string_view direction =
        space == std::string_view::npos ? std::string_view() : item.substr(space + 1);
    trim(direction);
    const std::string lower = to_lower(name);
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&](const std::string& f) { return to_lower(f) == lower; });
    if (name.empty() || field == fields.end()) {
      return invalid_input(
          fmt::format("Invalid $orderby: '{}' is not a field this collection can be ordered by",
                      std::string(name.substr(0, 64))));
    }
    const std::string dir = to_lower(direction);
    if (!dir.empty() && dir != "asc" && dir != "desc") {
      return invalid_input(fmt::format("Invalid $orderby: '{}' is not asc or desc",
                                       std::string(direction.substr(0, 16))));
    }
    out.push_back({*field, dir == "desc"});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::vector<boost::json::value> order_keys(const boost::json::object& item,
                                           const std::vector<OrderKey>& keys) {
  std::vector<boost::json::value> out;
  out.reserve(keys.size());
  for (const OrderKey& k : keys) {
    const auto* v = item.if_contains(k.field);
    out.push_back(v ? *v : boost::json::value(nullptr));
  }
  return out;
}

namespace {

// -1, 0, 1: null < booleans < numbers < strings (without case, then with); arrays and objects
// last, as equal.
int compare_values(const boost::json::value& a, const boost::json::value& b) {
  auto rank = [](const boost::json::value& v) {
    if (v.is_null()) return 0;
    if (v.is_bool()) return 1;
    if (v.is_number()) return 2;
    if (v.is_string()) return 3;
    return 4;
  };
  const int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 1:
      return a.as_bool() == b.as_bool() ? 0 : a.as_bool() ? 1 : -1;
    case 2: {
      const double x = a.to_number<double>(), y = b.to_number<double>();
      return x < y ? -1 : y < x ? 1 : 0;
    }
    case 3: {
      const std::string x = to_lower(a.as_string()), y = to_lower(b.as_string());
      if (x != y) return x < y ? -1 : 1;
      const auto c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    default:
      return 0;
  }
}

}  // namespace

bool order_before(const std::vector<boost::json::value>& a,
                  const std::vector<boost::json::value>& b, const std::vector<OrderKey>& keys) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const int c = compare_values(a[i], b[i]);
    if (c != 0) return keys[i].descending ? c > 0 : c < 0;
  }
  return false;
}

Result<boost::json::object> project(const boost::json::object& entity,
                                    const std::vector<std::string>& select) {
  if (select.empty()) return entity;
  boost::json::object out;
  for (const std::string& name : select) {
    // The entity's own spelling of the name, whatever its case in $select.
    const boost::json::key_value_pair* found = nullptr;
    if (auto it = entity.find(name); it != entity.end()) {
      found = &*it;
    } else {
      const std::string lower = to_lower(name);
      for (const auto& kv : entity) {
        if (to_lower(kv.key()) == lower) found = &kv;
      }
    }
    if (!found) {
      return invalid_input(fmt::format("Invalid $select: this entity has no property '{}'", name));
    }
    out[found->key()] = found->value();
  }
  return out;
}

namespace {

// Calls on_pair(key, value) for each key=value pair of a query string, in order, undecoded;
// stops at the first error on_pair returns.
template <typename OnPair>
Result<void> for_each_pair(std::string_view query, OnPair&& on_pair) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    KBGAP_TRY(on_pair(pair.substr(0, eq), eq == std::string_view::npos ? "" : pair.substr(eq + 1)));
  }
  return ok_result();
}

}  // namespace

Result<std::map<std::string, std::string>> parameters(std::string_view query) {
  std::map<std::string, std::string> out;
  KBGAP_TRY(for_each_pair(query, [&](std::string_view key, std::string_view value) -> Result<void> {
    auto k = url_decode(key);
    auto v = url_decode(value);
    if (!k || !v) return invalid_input("Invalid query string: a bad %-escape");
    if (!k->starts_with('$')) out[to_lower(*k)] = std::move(*v);
    return ok_result();
  }));
  return out;
}

Result<std::vector<std::string>> entity_select(std::string_view query) {
  std::vector<std::string> select;
  KBGAP_TRY(for_each_pair(query, [&](std::string_view key, std::string_view value) -> Result<void> {
    auto name = url_decode(key);
    if (!name || to_lower(*name) != "$select") return ok_result();
    auto decoded = url_decode(value);
    if (!decoded) return invalid_input("Invalid $select: a bad %-escape");
    auto parsed = parse_select(*decoded);
    if (!parsed) return parsed.error();
    select = std::move(*parsed);
    return ok_result();
  }));
  return select;
}

std::string selected_properties(const std::vector<std::string>& select) {
  return select.empty() ? "" : fmt::format("({})", fmt::join(select, ","));
}

Result<Query> parse_query(std::string_view query, std::size_t max_top,
                          const std::vector<std::string>& fields) {
  Query q;
  q.top = max_top;
  KBGAP_TRY(for_each_pair(
      query, [&](std::string_view raw_key, std::string_view raw_value) -> Result<void> {
        auto key = url_decode(raw_key);
        auto value = url_decode(raw_value);
        if (!key || !value) return invalid_input("Invalid query string: a bad %-escape");
        // Option names without case, as Defender takes them ($Filter, $TOP).
        if (key->starts_with('$')) *key = to_lower(*key);
        auto number = [&](std::size_t& out) -> Result<void> {
          std::size_t v = 0;
          auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), v);
          if (value->empty() || ec != std::errc() || end != value->data() + value->size()) {
            return invalid_input(
                fmt::format("Invalid {}: '{}' is not a whole number", *key, *value));
          }
          out = v;
          return ok_result();
        };
        if (*key == "$filter") {
          auto filter = Filter::parse(*value, fields);
          if (!filter) return filter.error();
          q.filter = std::move(*filter);
          q.filter_text = *value;
        } else if (*key == "$top") {
          KBGAP_TRY(number(q.top));
          q.top_given = true;
          if (q.top > max_top) {
            return invalid_input(fmt::format(
                "Invalid $top: {} is above this collection's maximum of {}", q.top, max_top));
          }
        } else if (*key == "$skip") {
          KBGAP_TRY(number(q.skip));
        } else if (*key == "$skiptoken") {
          std::size_t position = 0;
          KBGAP_TRY(number(position));
          q.skiptoken = position;
        } else if (*key == "$count") {
          if (*value != "true" && *value != "false") {
            return invalid_input("Invalid $count: expected true or false");
          }
          q.count = *value == "true";
        } else if (*key == "$orderby") {
          auto keys = parse_orderby(*value, fields);
          if (!keys) return keys.error();
          q.orderby = std::move(*keys);
          q.orderby_text = *value;
        } else if (*key == "$expand") {
          auto names = parse_select(*value);
          if (!names)
            return invalid_input(fmt::format("Invalid $expand: '{}'", value->substr(0, 64)));
          q.expand = std::move(*names);
        } else if (*key == "$select") {
          auto select = parse_select(*value);
          if (!select) return select.error();
          q.select = std::move(*select);
          q.select_text = *value;
        } else if (key->starts_with("$")) {
          return invalid_input(fmt::format("The query option {} is not supported", *key));
        } else if (to_lower(*key) == "pagesize" || to_lower(*key) == "pageindex") {
          std::size_t n = 0;
          KBGAP_TRY(number(n));
          if (n == 0) return invalid_input(fmt::format("Invalid {}: expected 1 or more", *key));
          (to_lower(*key) == "pagesize" ? q.page_size : q.page_index) = n;
        }
        return ok_result();
      }));
  return q;
}

}  // namespace kbgap::server::odata
