#include "server/fleet_view.h"

#include <algorithm>
#include <boost/json.hpp>

#include "api/defender_dto.h"
#include "common/text.h"

namespace kbgap::server {

std::shared_ptr<const FleetView> FleetView::build(
    std::shared_ptr<const engine::CatalogIndex> catalog, std::vector<inventory::Device> devices,
    std::int64_t version, unsigned threads) {
  auto view = std::make_shared<FleetView>();
  view->catalog_ = std::move(catalog);
  view->devices_ = std::move(devices);
  view->version_ = version;
  engine::Fleet fleet(*view->catalog_);
  for (std::uint32_t i = 0; i < view->devices_.size(); ++i) {
    const inventory::Device& d = view->devices_[i];
    fleet.add(d);
    view->by_id_[d.id] = i;
    auto [it, inserted] = view->by_name_.try_emplace(to_lower(d.computer_dns_name), i);
    if (!inserted && view->devices_[it->second].last_seen <= d.last_seen) it->second = i;
  }
  engine::Fleet::Options options;
  options.threads = threads;
  view->result_ = std::make_unique<engine::FleetResult>(fleet.evaluate(options));
  // The products each device runs are its profile's: named once more as productsNames names.
  for (std::uint32_t i = 0; i < view->devices_.size(); ++i) {
    std::vector<std::string> software;
    for (engine::Index p : view->result_->products(i)) {
      const std::string& name = view->catalog_->products()[p].snake_name;
      if (std::find(software.begin(), software.end(), name) == software.end()) {
        software.push_back(name);
      }
    }
    view->software_of_.push_back(std::move(software));
  }
  return view;
}

std::optional<std::uint32_t> FleetView::find(std::string_view id_or_name) const {
  if (auto it = by_id_.find(std::string(id_or_name)); it != by_id_.end()) return it->second;
  if (auto it = by_name_.find(to_lower(id_or_name)); it != by_name_.end()) return it->second;
  return std::nullopt;
}

std::shared_ptr<const engine::Evaluation> FleetView::evaluation(std::uint32_t device) const {
  {
    std::shared_lock lock(mutex_);
    if (auto it = evaluations_.find(device); it != evaluations_.end()) return it->second;
  }
  auto ev = std::make_shared<const engine::Evaluation>(result_->evaluation(device));
  std::unique_lock lock(mutex_);
  return evaluations_.try_emplace(device, std::move(ev)).first->second;
}

const FleetFacts& FleetView::facts() const {
  std::call_once(facts_once_, [&] {
    // Every CVE of an evaluation is the catalog's.
    auto cve_index = [&](const std::string& id) { return *catalog_->find_cve(id); };
    for (std::uint32_t d = 0; d < devices_.size(); ++d) {
      const auto ev = evaluation(d);
      for (const std::string& id : ev->open_cves) facts_.devices_of_cve[cve_index(id)].push_back(d);
      for (const std::string& name : software_of_[d]) facts_.software[name].devices.push_back(d);
      std::map<std::string, std::vector<engine::Index>> open_by_software;
      for (const engine::MissingKb& kb : ev->missing) {
        for (const std::string& name : kb.products_names) {
          auto& list = open_by_software[name];
          for (const std::string& id : kb.cves) list.push_back(cve_index(id));
        }
      }
      for (auto& [name, list] : open_by_software) {
        FleetFacts::Software& sw = facts_.software[name];
        ++sw.exposed;
        sw.cves.insert(sw.cves.end(), list.begin(), list.end());
      }
    }
    for (auto& [name, sw] : facts_.software) {
      std::sort(sw.cves.begin(), sw.cves.end());
      sw.cves.erase(std::unique(sw.cves.begin(), sw.cves.end()), sw.cves.end());
    }
  });
  return facts_;
}

std::shared_ptr<const std::string> FleetView::missing_kbs_value(std::uint32_t device) const {
  {
    std::shared_lock lock(mutex_);
    if (auto it = values_.find(device); it != values_.end()) return it->second;
  }
  const auto ev = evaluation(device);
  boost::json::array value;
  for (const engine::MissingKb& kb : ev->missing) value.push_back(api::product_fix_dto(kb, 1));
  auto text = std::make_shared<const std::string>(boost::json::serialize(value));
  std::unique_lock lock(mutex_);
  return values_.try_emplace(device, std::move(text)).first->second;
}

}  // namespace kbgap::server
