// zlib compression for snapshots on the models topic. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace immunizer::common {

std::string zlib_compress(std::string_view in);
// Throws std::runtime_error on corrupt input or when the output would exceed max_out.
std::string zlib_decompress(std::string_view in, size_t max_out = size_t{1} << 30);

}  // namespace immunizer::common
