#include "state_codec.hpp"

#include <zlib.h>

namespace immunizer::monitor::codec {
namespace {
constexpr char kMagic[4] = {'I', 'M', 'F', 'S'};
}

std::string frame(const std::string& payload, bool compress) {
  std::string out(kMagic, 4);
  out.push_back(compress ? 1 : 0);
  const uint64_t n = payload.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  if (!compress) {
    out += payload;
    return out;
  }
  uLongf cap = compressBound(static_cast<uLong>(payload.size()));
  const size_t head = out.size();
  out.resize(head + cap);
  if (compress2(reinterpret_cast<Bytef*>(out.data() + head), &cap,
                reinterpret_cast<const Bytef*>(payload.data()), static_cast<uLong>(payload.size()),
                Z_BEST_SPEED) != Z_OK) {
    throw std::runtime_error("monitor snapshot: zlib compression failed");
  }
  out.resize(head + cap);
  return out;
}

std::string unframe(std::string_view bytes, size_t max_size) {
  if (bytes.size() < 13 || bytes.substr(0, 4) != std::string_view(kMagic, 4)) {
    throw std::runtime_error("monitor snapshot: bad magic");
  }
  const uint8_t flags = static_cast<uint8_t>(bytes[4]);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data() + 5, 8);
  if (n > max_size) throw std::runtime_error("monitor snapshot: too large");
  const std::string_view data = bytes.substr(13);
  if (flags == 0) {
    if (data.size() != n) throw std::runtime_error("monitor snapshot: size mismatch");
    return std::string(data);
  }
  if (flags != 1) throw std::runtime_error("monitor snapshot: unknown flags");
  std::string out(n, '\0');
  uLongf got = static_cast<uLongf>(n);
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &got,
                 reinterpret_cast<const Bytef*>(data.data()),
                 static_cast<uLong>(data.size())) != Z_OK ||
      got != n) {
    throw std::runtime_error("monitor snapshot: corrupt compressed data");
  }
  return out;
}

}  // namespace immunizer::monitor::codec
