// What every binary says about its build: the `--version` line and the
// immunizer_build_info{version,commit} gauge (always 1) on every /metrics endpoint.
// Thread-safe (no state of its own).
#pragma once

#include <string>
#include <string_view>

#include "immunizer/common/metrics.hpp"

namespace immunizer::common {

// "<program> <version> (commit <commit>)", or without the commit when unknown.
std::string version_line(std::string_view program);

// The commit the binary was built from ("unknown" when not built from a git checkout).
std::string_view build_commit();

// Adds immunizer_build_info{version,commit} = 1 to `registry` (idempotent).
void register_build_info(prometheus::Registry& registry);

}  // namespace immunizer::common
