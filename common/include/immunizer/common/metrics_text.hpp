// Reading figures back from a Prometheus text page (what /metrics serves): the replayer's round
// report, the dashboard's pipeline loss figure, tests. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "immunizer/common/split.hpp"

namespace immunizer::common {

// The sum of every sample of the metric family `name` on the page (labels ignored;
// `name_bucket` and the like are other families). `label` (e.g. `reason="x"`) keeps only
// samples carrying it, `exclude` drops samples carrying that one.
inline double metric_sum(std::string_view page, std::string_view name, std::string_view label = {},
                         std::string_view exclude = {}) {
  double sum = 0;
  for_each_part(page, '\n', [&](std::string_view line) {
    if (line.size() <= name.size() || line.substr(0, name.size()) != name) return;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') return;  // another family with this prefix
    size_t value_at = name.size() + 1;
    if (next == '{') {
      const size_t close = line.find("} ", name.size());
      if (close == std::string_view::npos) return;
      const std::string_view labels = line.substr(name.size(), close - name.size() + 1);
      if (!label.empty() && labels.find(label) == std::string_view::npos) return;
      if (!exclude.empty() && labels.find(exclude) != std::string_view::npos) return;
      value_at = close + 2;
    } else if (!label.empty()) {
      return;
    }
    try {
      sum += std::stod(std::string(line.substr(value_at)));
    } catch (const std::exception&) {
      // not a sample value
    }
  });
  return sum;
}

}  // namespace immunizer::common
