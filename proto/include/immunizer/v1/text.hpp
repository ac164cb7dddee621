// Hostile bytes at the edge of `string` fields: UTF-8 validation and a reversible escape for
// copying untrusted bytes (carried as `bytes`) into a proto3 `string` or into JSON.
// Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace immunizer::v1 {

// Number of maximal invalid UTF-8 sequences in `s` (overlongs, surrogates, code points past
// U+10FFFF, truncated and stray bytes each count once per byte); 0 means valid UTF-8.
size_t invalid_utf8_count(std::string_view s) noexcept;
inline bool is_valid_utf8(std::string_view s) noexcept { return invalid_utf8_count(s) == 0; }

// `s` unchanged when it is valid UTF-8; otherwise a valid UTF-8 string in which every byte
// of an invalid sequence is written `\xNN` and every backslash `\\`, so two inputs with
// invalid bytes never escape to the same string.
std::string escape_invalid_utf8(std::string_view s);
// Appends escape_invalid_utf8(s) to `out` (no allocation when `out` has room).
void append_escaped_utf8(std::string& out, std::string_view s);

}  // namespace immunizer::v1
