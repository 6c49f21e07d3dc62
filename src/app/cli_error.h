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

}  // namespace kbgap::app
