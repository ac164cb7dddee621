// The byte encoding of every snapshot (monitor feature state, analyze models): integers and
// floats in little-endian order whatever the host's (bit-exact doubles), strings and arrays
// prefixed by a u64 count, bounds-checked reads. The framing and compression around it are in
// compress.hpp. ByteWriter and ByteReader are plain single-owner objects, not thread-safe; a
// ByteReader views caller-owned bytes that must outlive it and throws std::runtime_error
// ("<context>: truncated input", ...) on overrun or an implausible size.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace immunizer::common {

// What the codec writes directly: integers, floating point numbers, bools and enums.
template <typename T>
concept CodecScalar = (std::is_arithmetic_v<T> ||
                       std::is_enum_v<T>)&&(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 ||
                                            sizeof(T) == 8);

namespace codec_detail {
// The unsigned integer of N bytes.
template <size_t N>
using Bits = std::conditional_t<
    N == 1, uint8_t,
    std::conditional_t<N == 2, uint16_t, std::conditional_t<N == 4, uint32_t, uint64_t>>>;
constexpr bool kLittleHost = std::endian::native == std::endian::little;

template <CodecScalar T>
void store(char* out, T v) {
  using U = Bits<sizeof(T)>;
  U u;
  std::memcpy(&u, &v, sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<char>(u >> (8 * i));
}
template <CodecScalar T>
T load(const char* in) {
  using U = Bits<sizeof(T)>;
  U u = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    u |= static_cast<U>(static_cast<U>(static_cast<unsigned char>(in[i])) << (8 * i));
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
}  // namespace codec_detail

class ByteWriter {
 public:
  template <CodecScalar T>
  void put(T v) {
    char b[sizeof(T)];
    codec_detail::store(b, v);
    out_.append(b, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.append(s.data(), s.size());
  }
  // The header ByteReader::get_header checks: a u32 magic, then a u32 format version.
  void put_header(uint32_t magic, uint32_t version) {
    put(magic);
    put(version);
  }
  // u64 count, then the elements (a plain copy on little-endian hosts).
  template <CodecScalar T>
  void put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    put_array(v.data(), v.size());
  }
  // The elements only (the reader knows the count).
  template <CodecScalar T>
  void put_array(const T* p, size_t n) {
    if constexpr (codec_detail::kLittleHost) {
      if (n > 0) out_.append(reinterpret_cast<const char*>(p), n * sizeof(T));
    } else {
      for (size_t i = 0; i < n; ++i) put(p[i]);
    }
  }
  const std::string& bytes() const { return out_; }
  std::string& mutable_bytes() { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  // `context` prefixes error messages ("monitor snapshot", "model snapshot", ...).
  explicit ByteReader(std::string_view in, const char* context = "snapshot")
      : in_(in), context_(context) {}

  template <CodecScalar T>
  T get() {
    need(sizeof(T));
    const T v = codec_detail::load<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  // A u64 length, then that many bytes; a length over max_len is refused.
  std::string get_string(size_t max_len = SIZE_MAX) {
    const auto n = get<uint64_t>();
    if (n > max_len) fail("string too long");
    need(n);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // A u32 that must be `magic` ("bad magic"), then a u32 version in [oldest, newest]
  // ("unknown version"), returned.
  uint32_t get_header(uint32_t magic, uint32_t newest, uint32_t oldest) {
    if (get<uint32_t>() != magic) fail("bad magic");
    const auto version = get<uint32_t>();
    if (version < oldest || version > newest) fail("unknown version");
    return version;
  }
  uint32_t get_header(uint32_t magic, uint32_t version) {
    return get_header(magic, version, version);
  }
  template <CodecScalar T>
  std::vector<T> get_vector() {
    const auto n = get<uint64_t>();
    if (n > (in_.size() - pos_) / sizeof(T)) fail("truncated vector");
    std::vector<T> v(n);
    get_array(v.data(), n);
    return v;
  }
  // A u64 count that must equal `expected`, then the elements into `out` (resized).
  template <CodecScalar T>
  void get_vector_of_size(std::vector<T>* out, size_t expected) {
    if (get<uint64_t>() != expected) fail("array size mismatch");
    if (expected > (in_.size() - pos_) / sizeof(T)) fail("truncated input");
    out->resize(expected);
    get_array(out->data(), expected);
  }
  // `n` elements without a count.
  template <CodecScalar T>
  void get_array(T* out, size_t n) {
    if (n > (in_.size() - pos_) / sizeof(T)) fail("truncated input");
    if constexpr (codec_detail::kLittleHost) {
      if (n > 0) std::memcpy(out, in_.data() + pos_, n * sizeof(T));
      pos_ += n * sizeof(T);
    } else {
      for (size_t i = 0; i < n; ++i) out[i] = get<T>();
    }
  }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }
  [[noreturn]] void fail(const char* what) const {
    throw std::runtime_error(std::string(context_) + ": " + what);
  }

 private:
  void need(uint64_t n) const {
    if (n > in_.size() - pos_) fail("truncated input");
  }
  std::string_view in_;
  const char* context_;
  size_t pos_ = 0;
};

}  // namespace immunizer::common
