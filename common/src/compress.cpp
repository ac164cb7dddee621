#include "immunizer/common/compress.hpp"

#include <zlib.h>

#include <stdexcept>

#include "immunizer/common/byte_codec.hpp"

namespace immunizer::common {

std::string zlib_compress(std::string_view in) {
  uLongf n = compressBound(static_cast<uLong>(in.size()));
  std::string out(n, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()),
                static_cast<uLong>(in.size()), Z_BEST_SPEED) != Z_OK)
    throw std::runtime_error("zlib compress failed");
  out.resize(n);
  return out;
}

std::string zlib_decompress(std::string_view in, size_t max_out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw std::runtime_error("zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw std::runtime_error("corrupt compressed snapshot");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > max_out) {
      inflateEnd(&zs);
      throw std::runtime_error("snapshot larger than the limit");
    }
  } while (rc != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("truncated compressed snapshot");
  return out;
}

std::string zlib_decompress_exact(std::string_view in, size_t raw_size) {
  std::string out(raw_size, '\0');
  uLongf got = static_cast<uLongf>(raw_size);
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &got,
                 reinterpret_cast<const Bytef*>(in.data()),
                 static_cast<uLong>(in.size())) != Z_OK ||
      got != raw_size)
    throw std::runtime_error("corrupt compressed data");
  return out;
}

std::string frame_snapshot(std::string_view magic, std::string_view payload, bool compress) {
  ByteWriter w;
  w.mutable_bytes().append(magic);
  w.put<uint8_t>(compress ? 1 : 0);
  w.put<uint64_t>(payload.size());
  w.mutable_bytes().append(compress ? zlib_compress(payload) : std::string(payload));
  return w.take();
}

std::string unframe_snapshot(std::string_view magic, std::string_view bytes, size_t max_size,
                             const char* context) {
  const auto fail = [context](const char* what) {
    throw std::runtime_error(std::string(context) + ": " + what);
  };
  if (bytes.size() < magic.size() + 9 || bytes.substr(0, magic.size()) != magic) fail("bad magic");
  ByteReader r(bytes.substr(magic.size()), context);
  const auto flags = r.get<uint8_t>();
  const auto n = r.get<uint64_t>();
  if (n > max_size) fail("too large");
  const std::string_view data = bytes.substr(magic.size() + 9);
  if (flags == 0) {
    if (data.size() != n) fail("size mismatch");
    return std::string(data);
  }
  if (flags != 1) fail("unknown flags");
  try {
    return zlib_decompress_exact(data, n);
  } catch (const std::runtime_error&) {
    fail("corrupt compressed data");
  }
  return {};
}

}  // namespace immunizer::common
