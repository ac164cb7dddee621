// Short lowercase names of wire enums, for metric labels, logs and JSON ("high", not
// "SEVERITY_HIGH"). Stable: dashboards and alert rules match on them. Pure, thread-safe.
#pragma once

#include <string_view>

#include "immunizer/v1/records.pb.h"

namespace immunizer::v1 {

constexpr std::string_view severity_label(Severity s) noexcept {
  switch (s) {
    case SEVERITY_LOW:
      return "low";
    case SEVERITY_MEDIUM:
      return "medium";
    case SEVERITY_HIGH:
      return "high";
    case SEVERITY_CRITICAL:
      return "critical";
    default:
      return "unspecified";
  }
}

}  // namespace immunizer::v1
