// Environment parsing shared by the in-app agents (sensor, effector): strict numbers and
// booleans, comma lists, and a component's own IMMUNIZER_<COMPONENT>_* namespace closed to
// misspellings (an unknown name there is an error with a did-you-mean; variables of other
// components are not its business). The services' configuration loader uses the same edit
// distance. Header-only and standard library only, so it pulls nothing into the apps.
// Thread-safety: reads the process environment; not to be used while another thread calls
// setenv. Errors are std::invalid_argument naming the variable (start-up errors, thrown).
#pragma once

#include <unistd.h>  // environ

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace immunizer::agent {

// Levenshtein distance (insert, delete, substitute), for did-you-mean suggestions.
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `name` within `max_distance` edits (the first of equals), or null.
template <class Range>
const std::string* closest_match(std::string_view name, const Range& candidates,
                                 size_t max_distance) {
  const std::string* best = nullptr;
  size_t best_d = max_distance + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = &c;
  }
  return best;
}

// The whole string as a base-10 integer: no '+', blanks, base prefix or trailing text.
inline bool parse_strict_int(std::string_view v, long long* out) {
  if (v.empty()) return false;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), *out, 10);
  return ec == std::errc() && p == v.data() + v.size();
}

// The whole string as a finite decimal number: no '+', blanks, hex, inf or nan.
inline bool parse_strict_double(std::string_view v, double* out) {
  if (v.empty()) return false;
  const auto [p, ec] =
      std::from_chars(v.data(), v.data() + v.size(), *out, std::chars_format::general);
  return ec == std::errc() && p == v.data() + v.size() && std::isfinite(*out);
}

// One component's view of the environment. Construction checks the namespace: every set
// variable that starts with `ns` must be in `known`.
class EnvReader {
 public:
  // `component` prefixes messages ("sensor"); `ns` is its namespace ("IMMUNIZER_SENSOR_");
  // `known` lists every variable of that namespace the component reads.
  EnvReader(std::string component, std::string ns, std::set<std::string> known)
      : component_(std::move(component)), ns_(std::move(ns)), known_(std::move(known)) {
    for (char** e = environ; e && *e; ++e) {
      const std::string_view entry(*e);
      const std::string name(entry.substr(0, entry.find('=')));
      if (name.rfind(ns_, 0) != 0 || known_.count(name)) continue;
      std::string hint;
      if (const std::string* m = closest_match(name, known_, 3))
        hint = " (did you mean " + *m + "?)";
      throw std::invalid_argument(component_ + ": unknown environment variable " + name + hint);
    }
  }

  // The value when set and not empty, else null. A name of the namespace must be known.
  const char* raw(const char* name) const {
    if (std::string_view(name).rfind(ns_, 0) == 0 && !known_.count(name))
      throw std::logic_error(component_ + ": " + name + " is read but not declared");
    const char* v = std::getenv(name);
    return (v && *v) ? v : nullptr;
  }
  // Sets `*out` when the variable is set (and not empty).
  void string(const char* name, std::string* out) const {
    if (const char* v = raw(name)) *out = v;
  }
  bool boolean(const char* name, bool def) const {
    const char* v = raw(name);
    if (!v) return def;
    const std::string_view s(v);
    if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
    if (s == "0" || s == "false" || s == "no" || s == "off") return false;
    bad(name, v, "not a boolean (true/false)");
  }
  long long integer(const char* name, long long def, long long lo, long long hi) const {
    const char* v = raw(name);
    if (!v) return def;
    long long x = 0;
    if (!parse_strict_int(v, &x)) bad(name, v, "not a decimal integer");
    if (x < lo || x > hi) bad(name, v, range(std::to_string(lo), std::to_string(hi)));
    return x;
  }
  double number(const char* name, double def, double lo, double hi) const {
    const char* v = raw(name);
    if (!v) return def;
    double x = 0;
    if (!parse_strict_double(v, &x)) bad(name, v, "not a decimal number");
    if (x < lo || x > hi) bad(name, v, range(std::to_string(lo), std::to_string(hi)));
    return x;
  }
  // A comma-separated list, items trimmed of blanks, empty items skipped; empty when unset.
  std::vector<std::string> list(const char* name) const {
    std::vector<std::string> out;
    const char* v = raw(name);
    if (!v) return out;
    const std::string_view s(v);
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(',', start);
      if (end == std::string_view::npos) end = s.size();
      std::string_view item = s.substr(start, end - start);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) out.emplace_back(item);
      start = end + 1;
    }
    return out;
  }

  [[noreturn]] void bad(const char* name, const std::string& value, const std::string& why) const {
    throw std::invalid_argument(component_ + ": " + name + "='" + value + "': " + why);
  }

 private:
  static std::string range(const std::string& lo, const std::string& hi) {
    return "out of range [" + lo + ", " + hi + "]";
  }
  std::string component_;
  std::string ns_;
  std::set<std::string> known_;
};

}  // namespace immunizer::agent
