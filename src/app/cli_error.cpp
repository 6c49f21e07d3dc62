// One-line error reporting for the command line.
#include "app/cli_error.h"

#include <cstdio>

#include "inventory/device.h"

namespace kbgap::app {

int report(const Error& error) {
  std::fprintf(stderr, "kbgap: %s\n", error.message.c_str());
  return kExitBadInput;
}

bool check_tenant_option(const std::string& tenant) {
  if (inventory::valid_tenant(tenant)) return true;
  std::fprintf(stderr, "kbgap: --tenant must be %.*s, not '%s'\n",
               static_cast<int>(inventory::kTenantRule.size()), inventory::kTenantRule.data(),
               tenant.c_str());
  return false;
}

}  // namespace kbgap::app
