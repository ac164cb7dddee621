// Little-endian byte encoding used by model snapshots (bit-exact doubles, bounds-checked reads).
// Writer and Reader are plain single-owner objects; not thread-safe.
// Reader views caller-owned bytes, which must outlive it; it throws std::runtime_error on overrun.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace immunizer::analyze {

class ByteWriter {
 public:
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    out_.append(p, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.append(s.data(), s.size());
  }
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  void put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    if (!v.empty()) out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  template <typename T>
  requires std::is_trivially_copyable_v<T> T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string() {
    const auto n = get<uint64_t>();
    need(n);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  template <typename T>
  requires std::is_trivially_copyable_v<T> std::vector<T> get_vector() {
    const auto n = get<uint64_t>();
    if (n > (in_.size() - pos_) / sizeof(T)) throw std::runtime_error("snapshot: truncated vector");
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), in_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  void need(uint64_t n) const {
    if (n > in_.size() - pos_) throw std::runtime_error("snapshot: truncated input");
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace immunizer::analyze
