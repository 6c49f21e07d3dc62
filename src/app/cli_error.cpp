// One-line error reporting for the command line.
#include "app/cli_error.h"

#include <cstdio>

namespace kbgap::app {

int report(const Error& error) {
  std::fprintf(stderr, "kbgap: %s\n", error.message.c_str());
  return kExitBadInput;
}

}  // namespace kbgap::app
