// zlib compression and the compressed frame of snapshots (the bytes inside are encoded with
// byte_codec.hpp). Pure functions; thread-safe. Decoding throws std::runtime_error on
// corrupt input or when the output would exceed the given limit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace immunizer::common {

// zlib stream of `in` (level 1: about half the bytes in milliseconds).
std::string zlib_compress(std::string_view in);
std::string zlib_decompress(std::string_view in, size_t max_out = size_t{1} << 30);
// The zlib stream `in` must inflate to exactly `raw_size` bytes.
std::string zlib_decompress_exact(std::string_view in, size_t raw_size);

// Snapshot frame: a 4-byte magic, 1 byte of flags (1 = zlib), the payload's size as a
// little-endian u64, then the payload (deflated when `compress`).
std::string frame_snapshot(std::string_view magic, std::string_view payload, bool compress);
// Inverse of frame_snapshot(); `context` prefixes the error messages.
std::string unframe_snapshot(std::string_view magic, std::string_view bytes, size_t max_size,
                             const char* context);

}  // namespace immunizer::common
