// Helpers of the engine tests: the real bundled catalog and the real inventories.
#pragma once

#include <string>
#include <vector>

#include "engine/evaluate.h"
#include "inventory/device.h"

namespace kbgap::test {

// The whole bundled catalog, imported once per test process.
const engine::CatalogIndex& full_catalog();
// Every real inventory of data/inventories that names an OS (41 devices), read once.
const std::vector<inventory::Device>& real_devices();
// The real device read from <folder>/<stem>_systeminfo.txt (with <stem>_qfe.txt when there is
// one); `folder` is relative to the source tree.
inventory::Device real_device(const std::string& stem,
                              const std::string& folder = "data/inventories");

const engine::MissingKb* find(const engine::Evaluation& ev, engine::KbNumber kb);
// Does `kb` fix one of the device's products as a fix of this kind?
bool has_kind(const engine::CatalogIndex& c, const inventory::Device& d, engine::KbNumber kb,
              engine::FixKind kind);
// "2019-03-12" -> "2019-03-11".
std::string day_before(const std::string& date);

}  // namespace kbgap::test
