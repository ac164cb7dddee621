// Little-endian binary writer/reader for monitor snapshots, plus zlib framing.
// Not thread-safe; plain values. Reader throws std::runtime_error on truncated/corrupt input.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace immunizer::monitor::codec {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void f64(double v) { raw(&v, 8); }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s.data(), s.size());
  }
  void u32s(const std::vector<uint32_t>& v) {
    u64(v.size());
    raw(v.data(), v.size() * 4);
  }
  std::string& bytes() { return out_; }

 private:
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint32_t u32() { return pod<uint32_t>(); }
  uint64_t u64() { return pod<uint64_t>(); }
  int64_t i64() { return pod<int64_t>(); }
  double f64() { return pod<double>(); }
  std::string str(size_t max_len = 1 << 20) {
    const uint64_t n = u64();
    if (n > max_len) throw std::runtime_error("monitor snapshot: string too long");
    return std::string(take(n));
  }
  void u32s(std::vector<uint32_t>* v, size_t expected) {
    const uint64_t n = u64();
    if (n != expected) throw std::runtime_error("monitor snapshot: array size mismatch");
    const std::string_view b = take(n * 4);
    v->resize(n);
    if (n) std::memcpy(v->data(), b.data(), n * 4);
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  template <typename T>
  T pod() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::string_view take(size_t n) {
    if (n > in_.size() - pos_) throw std::runtime_error("monitor snapshot: truncated");
    std::string_view r = in_.substr(pos_, n);
    pos_ += n;
    return r;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Frames a payload: magic "IMFS", 1 byte flags (1 = zlib), u64 raw size, data.
std::string frame(const std::string& payload, bool compress);
// Inverse of frame(); throws std::runtime_error on bad magic, size or zlib data.
std::string unframe(std::string_view bytes, size_t max_size);

}  // namespace immunizer::monitor::codec
