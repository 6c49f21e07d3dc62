// Dense catalog numbers as distinct types. The catalog numbers its KBs, CVEs and products 0, 1,
// 2, ... (their places in CatalogIndex::kbs(), cves() and products()); a KbIndex, a CveIndex
// and a ProductIndex are each their own type, so one cannot be passed, compared, hashed into a
// set or used to look up where another is meant: the compiler refuses it.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <utility>
#include <vector>

namespace kbgap::engine {

template <typename Tag>
class DenseIndex {
 public:
  constexpr DenseIndex() = default;
  constexpr explicit DenseIndex(std::uint32_t value) : value_(value) {}
  // The number itself, for a subscript into the table it numbers or a stored image.
  constexpr std::uint32_t value() const { return value_; }
  friend constexpr auto operator<=>(DenseIndex, DenseIndex) = default;

 private:
  std::uint32_t value_ = 0;
};

struct KbTag;
struct CveTag;
struct ProductTag;
using KbIndex = DenseIndex<KbTag>;            // a KB's place in CatalogIndex::kbs()
using CveIndex = DenseIndex<CveTag>;          // a CVE's in cves(), the order of their ids
using ProductIndex = DenseIndex<ProductTag>;  // a product's in products()

// The indices 0 .. count-1 of one kind: `for (KbIndex kb : IndexRange<KbIndex>(n))`.
template <typename I>
class IndexRange {
 public:
  class iterator {
   public:
    using value_type = I;
    using difference_type = std::ptrdiff_t;
    constexpr iterator() = default;
    constexpr explicit iterator(std::uint32_t at) : at_(at) {}
    constexpr I operator*() const { return I{at_}; }
    constexpr iterator& operator++() {
      ++at_;
      return *this;
    }
    constexpr iterator operator++(int) { return iterator{at_++}; }
    constexpr bool operator==(const iterator&) const = default;

   private:
    std::uint32_t at_ = 0;
  };
  constexpr explicit IndexRange(std::size_t count) : count_(static_cast<std::uint32_t>(count)) {}
  constexpr iterator begin() const { return iterator{0}; }
  constexpr iterator end() const { return iterator{count_}; }

 private:
  std::uint32_t count_;
};

// A table subscripted by one kind of index (a value per KB, per CVE, ...).
template <typename I, typename T>
class IndexedVector {
 public:
  IndexedVector() = default;
  explicit IndexedVector(std::size_t size, const T& value = T{}) : items_(size, value) {}
  T& operator[](I i) { return items_[i.value()]; }
  const T& operator[](I i) const { return items_[i.value()]; }
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void resize(std::size_t size) { items_.resize(size); }
  void assign(std::size_t size, const T& value) { items_.assign(size, value); }
  void push_back(T value) { items_.push_back(std::move(value)); }
  auto begin() { return items_.begin(); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<T> items_;
};

}  // namespace kbgap::engine

template <typename Tag>
struct std::hash<kbgap::engine::DenseIndex<Tag>> {
  std::size_t operator()(kbgap::engine::DenseIndex<Tag> i) const noexcept {
    return std::hash<std::uint32_t>{}(i.value());
  }
};
