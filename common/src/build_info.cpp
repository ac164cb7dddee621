#include "immunizer/common/build_info.hpp"

#include <prometheus/gauge.h>

#include "immunizer/version.hpp"

namespace immunizer::common {

std::string_view build_commit() {
  constexpr std::string_view commit = IMMUNIZER_GIT_COMMIT;
  return commit.empty() ? std::string_view("unknown") : commit;
}

std::string version_line(std::string_view program) {
  std::string line(program);
  line += " " IMMUNIZER_VERSION;
  if (std::string_view(IMMUNIZER_GIT_COMMIT).size()) line += " (commit " IMMUNIZER_GIT_COMMIT ")";
  return line;
}

void register_build_info(prometheus::Registry& registry) {
  register_gauge(registry, "immunizer_build_info", "Version and commit of this binary (always 1)",
                 {{"version", IMMUNIZER_VERSION}, {"commit", std::string(build_commit())}})
      .Set(1);
}

}  // namespace immunizer::common
