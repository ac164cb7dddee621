// The in-app agents' loggers (sensor, effector): one named spdlog logger per agent on stderr,
// created on first use at the agent's default level, or the app's own logger of that name
// when it registered one first (so an app decides where and how verbosely the agents log).
// Header-only; spdlog is the agents' only logging dependency. Thread-safe.
#pragma once

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace immunizer::agent {

// `name`: "immunizer.sensor", "immunizer.effector". Never throws: falls back to spdlog's
// default logger when the named one cannot be made.
inline std::shared_ptr<spdlog::logger> make_logger(const char* name,
                                                   spdlog::level::level_enum level) noexcept {
  try {
    if (auto l = spdlog::get(name)) return l;
    auto l = spdlog::stderr_color_mt(name);
    l->set_level(level);
    return l;
  } catch (...) {
    // Another thread registered it meanwhile, or no sink could be made.
    if (auto l = spdlog::get(name)) return l;
    return spdlog::default_logger();
  }
}

}  // namespace immunizer::agent
