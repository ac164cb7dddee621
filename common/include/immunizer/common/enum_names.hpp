// The names of an enum's values from one list, in the order of the values (0, 1, 2, ...),
// instead of a switch per direction:
//   constexpr std::string_view kRoleNames[] = {"none", "effector", "operator", ...};
//   enum_name(kRoleNames, r, "none")        -> the name, or the fallback for a value past it
//   enum_value<Role>(kRoleNames, "plan")    -> the value, or nullopt for a name not listed
// For enums whose values run from 0 without gaps (enum class defaults, proto enums with
// their UNSPECIFIED = 0 first); the owner of the list keeps it in the enum's order. A proto
// enum's unknown values (open enums) get the fallback. Header-only and dependency-free
// (target immunizer_pure_headers), so the agents, the proto helpers and the services share it.
// Pure, thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace immunizer::common {

template <typename E, std::size_t N>
constexpr std::string_view enum_name(const std::string_view (&names)[N], E value,
                                     std::string_view fallback) noexcept {
  const auto i = static_cast<std::size_t>(value);
  return i < N ? names[i] : fallback;
}

template <typename E, std::size_t N>
constexpr std::optional<E> enum_value(const std::string_view (&names)[N],
                                      std::string_view name) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return static_cast<E>(i);
  return std::nullopt;
}

}  // namespace immunizer::common
