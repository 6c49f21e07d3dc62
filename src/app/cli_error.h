// How a command reports failure: a one-line message and the exit status of docs/api.md §9.
#pragma once

#include <string>

#include "common/result.h"

namespace kbgap::app {

inline constexpr int kExitOk = 0;
inline constexpr int kExitBadInput = 1;  // bad input, or the run failed (I/O, storage)
inline constexpr int kExitUsage = 2;     // bad command-line usage

// Prints "kbgap: <message>" on stderr and returns the exit status for it.
int report(const Error& error);

// Whether a --tenant option's value is a tenant name; if not, says so on stderr.
bool check_tenant_option(const std::string& tenant);

}  // namespace kbgap::app
