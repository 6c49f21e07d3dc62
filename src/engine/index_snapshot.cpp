// A binary image of the CatalogIndex, so that a command evaluating devices starts in
// milliseconds instead of re-reading and re-indexing the whole catalog (docs/engine.md).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/digest.h"
#include "engine/catalog_index.h"
#include "engine/engine_digest.h"

namespace kbgap::engine {
namespace {

constexpr char kMagic[8] = {'K', 'B', 'G', 'A', 'P', 'I', 'D', 'X'};
// 2: CVEs in the order of their ids; 3: a SHA-256 of everything before it at the end;
// 4: servicing models (line models, hosted products, carried fixes, foreign fixed builds).
constexpr std::uint32_t kVersion = 6;
constexpr std::size_t kChecksumSize = 64;  // hex

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void i32(std::int32_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  template <typename I>
  void u32s(const std::vector<I>& v) {
    static_assert(sizeof(I) == 4 && std::is_trivially_copyable_v<I>);
    u32(static_cast<std::uint32_t>(v.size()));
    raw(v.data(), v.size() * sizeof(I));
  }
  std::string take() { return std::move(out_); }
  void raw(const void* p, std::size_t n) {
    if (n > 0) out_.append(static_cast<const char*>(p), n);  // an empty vector's data() may be null
  }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == in_.size(); }
  std::uint8_t u8() {
    std::uint8_t v = 0;
    raw(&v, 1);
    return v;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  std::int32_t i32() {
    std::int32_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  double f64() {
    double v = 0;
    raw(&v, sizeof v);
    return v;
  }
  std::string str() {
    const std::uint32_t n = u32();
    if (!check(n)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // A list of indices of `count` things; refused (empty, and the reader failed) when one is
  // out of range.
  template <typename I>
  std::vector<I> indices(std::size_t count) {
    static_assert(sizeof(I) == 4 && std::is_trivially_copyable_v<I>);
    const std::uint32_t n = u32();
    if (!check(std::size_t{n} * sizeof(I))) return {};
    std::vector<I> v(n);
    raw(v.data(), n * sizeof(I));
    if (!std::all_of(v.begin(), v.end(), [&](I i) { return i.value() < count; })) {
      ok_ = false;
      return {};
    }
    return v;
  }
  template <typename I>
  I index(std::size_t count) {
    const I i{u32()};
    if (i.value() >= count) ok_ = false;
    return i;
  }
  // A count of elements of at least `min_bytes` each: refuses counts the input cannot hold.
  std::uint32_t count(std::size_t min_bytes) {
    const std::uint32_t n = u32();
    return check(std::size_t{n} * min_bytes) ? n : 0;
  }

 private:
  bool check(std::size_t n) {
    if (!ok_ || in_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  void raw(void* p, std::size_t n) {
    if (n == 0 || !check(n)) return;  // an empty vector's data() may be null
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string CatalogIndex::snapshot(std::string_view fingerprint) const {
  std::string out = snapshot_body(fingerprint);
  out += sha256_hex(out);
  return out;
}

std::string CatalogIndex::snapshot_body(std::string_view fingerprint) const {
  Writer w;
  w.raw(kMagic, sizeof kMagic);
  w.u32(kVersion);
  w.str(KBGAP_ENGINE_DIGEST);
  w.str(fingerprint);
  w.u32(static_cast<std::uint32_t>(documents_.size()));
  for (const DocumentInfo& d : documents_) {
    w.str(d.id);
    w.str(d.title);
    w.str(d.release_date);
  }
  w.u32(static_cast<std::uint32_t>(kbs_.size()));
  for (const KbInfo& k : kbs_) {
    w.u32(k.kb);
    w.u32(k.release_document);
    w.str(k.url);
  }
  w.u32(static_cast<std::uint32_t>(cves_.size()));
  for (const CveInfo& c : cves_) {
    w.str(c.id);
    w.str(c.title);
    w.str(c.severity);
    w.u8(c.cvss_base.has_value());
    w.f64(c.cvss_base.value_or(0));
    w.str(c.cvss_vector);
    w.str(c.published);
    w.str(c.updated);
    for (const std::optional<bool>& flag : {c.exploited, c.publicly_disclosed}) {
      w.u8(flag ? (*flag ? 2 : 1) : 0);
    }
  }
  w.u32(static_cast<std::uint32_t>(products_.size()));
  for (const ProductInfo& p : products_) {
    w.str(p.id);
    w.str(p.name);
    w.str(p.snake_name);
    w.u8(static_cast<std::uint8_t>(p.role));
    w.i32(p.line);
    w.i32(p.delivered_by_host ? static_cast<std::int32_t>(p.delivered_by_host->value()) : -1);
    w.u32s(p.components);
    w.u32(static_cast<std::uint32_t>(p.fixes.size()));
    for (const ProductFix& f : p.fixes) {
      w.u32(f.kb.value());
      w.u8(static_cast<std::uint8_t>(f.kind));
      w.u8(f.cumulative);
      w.i32(f.line_position);
      w.u8(f.foreign);
      w.u32s(f.cves);
      w.u32(static_cast<std::uint32_t>(f.fixed_builds.size()));
      for (const Build& b : f.fixed_builds) {
        for (int v : {b.major, b.minor, b.build, b.revision}) w.i32(v);
      }
    }
  }
  for (const auto& s : supersedes_) w.u32s(s);
  w.u32(static_cast<std::uint32_t>(lines_.size()));
  for (const ServicingLine& l : lines_) {
    w.str(l.key);
    w.u8(static_cast<std::uint8_t>(l.model));
    w.u32s(l.chain);
    w.u32s(l.products);
    w.u32s(l.hosted);
    w.u8(l.release.has_value());
    const Build release = l.release.value_or(Build{});
    for (int v : {release.major, release.minor, release.build}) w.i32(v);
  }
  // The carried places, in a stable order (the chain's places follow from the chains).
  std::vector<std::pair<std::uint64_t, LinePlace>> carried;
  for (const auto& [key, place] : line_places_) {
    if (place.carried) carried.emplace_back(key, place);
  }
  std::sort(carried.begin(), carried.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  w.u32(static_cast<std::uint32_t>(carried.size()));
  for (const auto& [key, place] : carried) {
    w.u32(static_cast<std::uint32_t>(key >> 32));
    w.u32(static_cast<std::uint32_t>(key));
    w.i32(place.position);
  }
  w.u32(static_cast<std::uint32_t>(distrusted_fixed_builds_));
  return w.take();
}

std::optional<CatalogIndex> CatalogIndex::from_snapshot(std::string_view bytes,
                                                        std::string_view fingerprint,
                                                        bool* damaged) {
  if (damaged) *damaged = false;
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    if (damaged) *damaged = !bytes.empty();
    return std::nullopt;
  }
  {
    Reader header(bytes.substr(sizeof kMagic));
    if (header.u32() != kVersion || header.str() != KBGAP_ENGINE_DIGEST ||
        header.str() != fingerprint || !header.ok()) {
      return std::nullopt;  // another catalog, format or engine: not damage, just not this one
    }
  }
  // Of this catalog: every byte must be as written, or a changed product name (say) would give
  // wrong answers without any error.
  if (bytes.size() < sizeof kMagic + kChecksumSize ||
      sha256_hex(bytes.substr(0, bytes.size() - kChecksumSize)) !=
          bytes.substr(bytes.size() - kChecksumSize)) {
    if (damaged) *damaged = true;
    return std::nullopt;
  }
  auto index = read_snapshot_body(bytes.substr(0, bytes.size() - kChecksumSize));
  if (!index && damaged) *damaged = true;
  return index;
}

std::optional<CatalogIndex> CatalogIndex::read_snapshot_body(std::string_view bytes) {
  Reader r(bytes.substr(sizeof kMagic));
  r.u32();
  r.str();
  r.str();
  CatalogIndex x;
  x.documents_.resize(r.count(12));
  for (DocumentInfo& d : x.documents_) {
    d = {r.str(), r.str(), r.str(), 0};
    d.day = day_number(d.release_date);
  }
  x.kbs_.resize(r.count(12));
  x.kb_index_.reserve(x.kbs_.size());
  for (KbIndex i : x.kb_indices()) {
    KbInfo& k = x.kbs_[i];
    k.kb = r.u32();
    k.release_document = r.u32();
    k.url = r.str();
    if (k.release_document >= x.documents_.size()) return std::nullopt;
    x.kb_index_.emplace(k.kb, i);
  }
  x.cves_.resize(r.count(21));
  for (CveInfo& c : x.cves_) {
    c.id = r.str();
    c.title = r.str();
    c.severity = r.str();
    const bool has = r.u8() != 0;
    const double v = r.f64();
    if (has) c.cvss_base = v;
    c.cvss_vector = r.str();
    c.published = r.str();
    c.updated = r.str();
    for (std::optional<bool>* flag : {&c.exploited, &c.publicly_disclosed}) {
      const std::uint8_t f = r.u8();
      if (f > 2) return std::nullopt;
      if (f != 0) *flag = f == 2;
    }
  }
  if (!std::is_sorted(x.cves_.begin(), x.cves_.end(),
                      [](const CveInfo& a, const CveInfo& b) { return a.id < b.id; })) {
    return std::nullopt;
  }
  x.products_.resize(r.count(29));
  x.product_by_name_.reserve(x.products_.size());
  for (ProductIndex i : x.product_indices()) {
    ProductInfo& p = x.products_[i];
    p.id = r.str();
    p.name = r.str();
    p.snake_name = r.str();
    p.role = static_cast<ProductRole>(r.u8());
    p.line = r.i32();
    const std::int32_t host = r.i32();
    if (host < -1 || host >= static_cast<std::int64_t>(x.products_.size())) return std::nullopt;
    if (host >= 0) p.delivered_by_host = ProductIndex{static_cast<std::uint32_t>(host)};
    p.components = r.indices<ProductIndex>(x.products_.size());
    p.fixes.resize(r.count(19));
    for (ProductFix& f : p.fixes) {
      f.kb = r.index<KbIndex>(x.kbs_.size());
      f.kind = static_cast<FixKind>(r.u8());
      f.cumulative = r.u8() != 0;
      f.line_position = r.i32();
      f.foreign = r.u8() != 0;
      f.cves = r.indices<CveIndex>(x.cves_.size());
      f.fixed_builds.resize(r.count(16));
      for (Build& b : f.fixed_builds) b = {r.i32(), r.i32(), r.i32(), r.i32()};
      if (!r.ok()) return std::nullopt;
    }
    x.product_by_name_[normalize_product_name(p.name)].push_back(i);
  }
  x.supersedes_.resize(x.kbs_.size());
  x.superseded_by_.resize(x.kbs_.size());
  for (KbIndex kb : x.kb_indices()) {
    x.supersedes_[kb] = r.indices<KbIndex>(x.kbs_.size());
    for (KbIndex older : x.supersedes_[kb]) x.superseded_by_[older].push_back(kb);
  }
  x.lines_.resize(r.count(30));
  for (std::size_t l = 0; l < x.lines_.size(); ++l) {
    ServicingLine& line = x.lines_[l];
    line.key = r.str();
    line.model = static_cast<LineModel>(r.u8());
    line.chain = r.indices<KbIndex>(x.kbs_.size());
    line.products = r.indices<ProductIndex>(x.products_.size());
    line.hosted = r.indices<ProductIndex>(x.products_.size());
    const bool has_release = r.u8() != 0;
    Build release{r.i32(), r.i32(), r.i32(), 0};
    if (has_release) line.release = release;
    if (line.model != LineModel::kCumulative && line.model != LineModel::kRollup) {
      return std::nullopt;
    }
    if (!r.ok()) return std::nullopt;
  }
  const std::uint32_t carried = r.count(12);
  std::size_t places = carried;
  for (const ServicingLine& line : x.lines_) places += line.chain.size();
  x.line_places_.reserve(places);
  for (std::size_t l = 0; l < x.lines_.size(); ++l) {
    const auto& chain = x.lines_[l].chain;
    for (std::size_t i = 0; i < chain.size(); ++i) {
      x.line_places_.emplace(place_key(l, chain[i]), LinePlace{static_cast<int>(i), false});
    }
  }
  for (std::uint32_t n = carried; n > 0; --n) {
    const std::uint32_t line = r.u32();
    const KbIndex kb = r.index<KbIndex>(x.kbs_.size());
    const int position = r.i32();
    if (!r.ok() || line >= x.lines_.size() || position < 0 ||
        static_cast<std::size_t>(position) >= x.lines_[line].chain.size()) {
      return std::nullopt;
    }
    x.line_places_.emplace(place_key(line, kb), LinePlace{position, true});
  }
  x.distrusted_fixed_builds_ = r.u32();
  for (const ProductInfo& p : x.products_) {
    if (p.line < -1 || p.line >= static_cast<int>(x.lines_.size())) {
      return std::nullopt;
    }
    // What the engine relies on: a cumulative update is its product's line's update at its place.
    for (const ProductFix& f : p.fixes) {
      if (!f.cumulative) continue;
      if (p.line < 0 || f.line_position < 0) return std::nullopt;
      const auto& chain = x.lines_[static_cast<std::size_t>(p.line)].chain;
      if (static_cast<std::size_t>(f.line_position) >= chain.size() ||
          chain[static_cast<std::size_t>(f.line_position)] != f.kb) {
        return std::nullopt;
      }
    }
  }
  if (!r.ok() || !r.done()) return std::nullopt;
  x.index_kb_builds();
  return x;
}

}  // namespace kbgap::engine
