// Helpers of the agents' C APIs (immunizer/sensor.h, immunizer/effector.h): C strings as
// views, the caller's error buffer, and running C++ code so that nothing throws across the C
// boundary. Header-only, no state; thread-safe.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

namespace immunizer::agent {

// A C string (NULL: empty) as a view.
inline std::string_view c_view(const char* s) {
  return s ? std::string_view(s) : std::string_view();
}
// `n` bytes at `s` (NULL: empty) as a view.
inline std::string_view c_view(const char* s, std::size_t n) {
  return s ? std::string_view(s, n) : std::string_view();
}

// Writes `what` into the caller's buffer err[0..n) (truncated, NUL-terminated), if any.
inline void write_c_error(char* err, std::size_t n, const char* what) {
  if (err && n) std::snprintf(err, n, "%s", what);
}

// f()'s result; `failed` when it throws, with the exception's text in err[0..n).
template <typename T, typename F>
T guard_c_call(char* err, std::size_t n, T failed, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    write_c_error(err, n, e.what());
  } catch (...) {
    write_c_error(err, n, "unknown error");
  }
  return failed;
}

// The C API's get_stats: *out zeroed (if out is not NULL), then, for a non-NULL handle, filled
// by fill(*out); what fill() throws is swallowed, leaving out zeroed or partly filled.
template <typename Out, typename Handle, typename F>
void fill_c_stats(const Handle* handle, Out* out, F&& fill) noexcept {
  if (!out) return;
  std::memset(out, 0, sizeof *out);
  if (!handle) return;
  try {
    fill(*out);
  } catch (...) {
  }
}

}  // namespace immunizer::agent
