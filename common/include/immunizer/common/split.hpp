// The parts of a text between separators, without copying: for_each_part("a&&b", '&', f)
// calls f("a"), f(""), f("b"), in order; no part after a trailing separator, none for an empty
// text. Header-only and dependency-free (target immunizer_pure_headers), for the agents'
// integrations and the services alike. Pure, thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace immunizer::common {

template <typename F>
void for_each_part(std::string_view text, char separator, F&& f) {
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find(separator, at);
    if (end == std::string_view::npos) end = text.size();
    f(text.substr(at, end - at));
    at = end + 1;
  }
}

}  // namespace immunizer::common
