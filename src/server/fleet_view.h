// What the server answers from: an immutable snapshot of the fleet (every stored device and its
// evaluation) at one fleet version. A write or a change seen in the store makes a new snapshot;
// requests in flight keep the one they started with.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/catalog_index.h"
#include "engine/fleet.h"
#include "inventory/device.h"

namespace kbgap::server {

// What the fleet-wide endpoints count, gathered once per snapshot when first asked.
struct FleetFacts {
  std::unordered_map<engine::Index, std::vector<std::uint32_t>> devices_of_cve;  // open CVEs
  struct Software {
    std::vector<std::uint32_t> devices;  // running it
    std::size_t exposed = 0;             // of those, missing a KB for it
    std::vector<engine::Index> cves;     // open on some device, sorted
  };
  std::map<std::string, Software> software;  // by productsNames name: "windows_10", "edge"
};

class FleetView {
 public:
  static std::shared_ptr<const FleetView> build(std::shared_ptr<const engine::CatalogIndex> catalog,
                                                std::vector<inventory::Device> devices,
                                                std::int64_t version, unsigned threads);

  std::int64_t version() const { return version_; }
  const engine::CatalogIndex& catalog() const { return *catalog_; }
  const std::vector<inventory::Device>& devices() const { return devices_; }
  // A device by its id or its computer DNS name (any case; the last seen of several).
  std::optional<std::uint32_t> find(std::string_view id_or_name) const;
  const engine::FleetResult& result() const { return *result_; }

  // The device's getmissingkbs "value" array, serialized once per snapshot.
  std::shared_ptr<const std::string> missing_kbs_value(std::uint32_t device) const;
  // The device's evaluation (rendered once per snapshot).
  std::shared_ptr<const engine::Evaluation> evaluation(std::uint32_t device) const;
  // The snake names of the catalog products the device runs ("windows_10", "edge", ...).
  const std::vector<std::string>& software_of(std::uint32_t device) const {
    return software_of_[device];
  }
  const FleetFacts& facts() const;

 private:
  std::shared_ptr<const engine::CatalogIndex> catalog_;
  std::vector<inventory::Device> devices_;
  std::int64_t version_ = 0;
  std::unordered_map<std::string, std::uint32_t> by_id_, by_name_;
  std::unique_ptr<engine::FleetResult> result_;
  std::vector<std::vector<std::string>> software_of_;
  mutable std::once_flag facts_once_;
  mutable FleetFacts facts_;
  mutable std::shared_mutex mutex_;
  mutable std::unordered_map<std::uint32_t, std::shared_ptr<const std::string>> values_;
  mutable std::unordered_map<std::uint32_t, std::shared_ptr<const engine::Evaluation>> evaluations_;
};

}  // namespace kbgap::server
