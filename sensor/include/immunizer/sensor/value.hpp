// Typed argument values for the sensor: writes immunizer.v1.Value straight into protobuf
// wire format (no message objects, no per-value allocation). Not thread-safe: a writer
// belongs to one CallScope on one thread. User types plug in through ONE customisation
// point, found by argument-dependent lookup:
//
//   void immunizer_sensor_value(immunizer::sensor::ValueWriter& w, const Money& m) {
//     auto map = w.map();
//     map.field("currency", m.currency).field("cents", m.cents);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ranges>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

namespace immunizer::sensor {

// An explicit null argument (`arg("x", Null{})`); std::nullopt and nullptr mean the same.
struct Null {};

// Binary data (encoded as Value.bytes_value rather than a string).
struct Bytes {
  const void* data = nullptr;
  size_t size = 0;
  Bytes() = default;
  Bytes(const void* d, size_t n) : data(d), size(n) {}
  template <class T>
  requires std::is_trivially_copyable_v<T>
  explicit Bytes(std::span<T> s) : data(s.data()), size(s.size_bytes()) {}
};

namespace detail {

// Growable byte buffer owned by a thread (reused across calls: no allocation once warm).
// It also carries the size caps of the record being encoded and what they cut.
struct Buf {
  char* data = nullptr;
  size_t size = 0;
  size_t cap = 0;
  // Strings longer than max_string keep their first and last max_string / 2 bytes; once the
  // record is past max_record, further list items, map entries and arguments are left out.
  size_t max_string = SIZE_MAX;
  size_t max_record = SIZE_MAX;
  uint64_t cut_bytes = 0;      // bytes of this record left out so far (strings and dropped parts)
  uint32_t dropped_parts = 0;  // list items, map entries, arguments or result left out
  bool truncated = false;      // something of this record was cut
  bool check_utf8 = false;     // string values are checked for UTF-8 (flag checks of the sensor)
  bool bad_utf8 = false;       // a checked string value was not valid UTF-8
  uint8_t classes = 0;         // char_classes of the checked string values of the current argument
  void reset_caps(size_t string_cap, size_t record_cap) {
    max_string = string_cap;
    max_record = record_cap;
    cut_bytes = 0;
    dropped_parts = 0;
    truncated = false;
    check_utf8 = false;
    bad_utf8 = false;
    classes = 0;
  }
  // Counts one part (list item, map entry, argument, result) as left out.
  void drop_part() noexcept {
    ++dropped_parts;
    truncated = true;
  }
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf();
  void grow(size_t extra);  // out of line, cold
  char* reserve(size_t n) {
    if (size + n > cap) [[unlikely]]
      grow(n);
    return data + size;
  }
};

// The character classes a sampled-out call's string values are checked for (one bit each):
// characters that injections need and plain values rarely hold.
inline constexpr size_t kCharClasses = 8;
struct CharClassTable {
  uint8_t bits[256] = {};
  constexpr CharClassTable() {
    constexpr const char* kClasses[kCharClasses] = {"'\"`", "<>",       ";|&", "()[]{}",
                                                    "\\%",  "=*#$!^~+", "",    " /,:"};
    for (size_t c = 0; c < kCharClasses; ++c)
      for (const char* p = kClasses[c]; *p; ++p) bits[static_cast<unsigned char>(*p)] |= 1u << c;
    for (unsigned b = 0; b < 0x20; ++b) bits[b] |= 1u << 6;  // control bytes
    bits[0x7f] |= 1u << 6;
  }
};
inline constexpr CharClassTable kCharClassTable{};
// The classes of kCharClassTable that `s` holds, as a bit set.
inline uint8_t char_classes(std::string_view s) noexcept {
  uint8_t m = 0;
  for (const char ch : s) m |= kCharClassTable.bits[static_cast<unsigned char>(ch)];
  return m;
}

// True if `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
inline bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= n; ++i)
      if ((p[i] & 0xC0) != 0x80) return false;
    p += n + 1;
  }
  return true;
}

inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline char* put_varint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

constexpr uint8_t kVarint = 0, kFixed64 = 1, kLen = 2;
constexpr char tag(uint32_t field, uint8_t wire) { return static_cast<char>((field << 3) | wire); }

// Appends: tag(field, LEN) len bytes.
inline void put_string_field(Buf& b, uint32_t field, std::string_view s) {
  char* p = b.reserve(1 + 10 + s.size());
  *p++ = tag(field, kLen);
  p = put_varint(p, s.size());
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  b.size = static_cast<size_t>(p + s.size() - b.data);
}

// Like put_string_field, but a string over the buffer's max_string keeps only its first and
// last bytes (half the cap each) and the cut is noted on the buffer.
inline void put_capped_string_field(Buf& b, uint32_t field, std::string_view s) {
  if (s.size() <= b.max_string) [[likely]] {
    put_string_field(b, field, s);
    return;
  }
  const size_t head = b.max_string / 2, tail = b.max_string - head;
  char* p = b.reserve(1 + 10 + b.max_string);
  *p++ = tag(field, kLen);
  p = put_varint(p, b.max_string);
  std::memcpy(p, s.data(), head);
  std::memcpy(p + head, s.data() + s.size() - tail, tail);
  b.size = static_cast<size_t>(p + b.max_string - b.data);
  b.cut_bytes += s.size() - b.max_string;
  b.truncated = true;
}

inline void put_varint_field(Buf& b, uint32_t field, uint64_t v) {
  char* p = b.reserve(11);
  *p++ = tag(field, kVarint);
  p = put_varint(p, v);
  b.size = static_cast<size_t>(p - b.data);
}

// Opens a length-delimited field whose length is not known yet; returns the position of the
// one-byte length placeholder. close_len() fixes it up (moving the body if it needs more).
inline size_t open_len(Buf& b, uint32_t field) {
  char* p = b.reserve(2);
  p[0] = tag(field, kLen);
  p[1] = 0;
  b.size += 2;
  return b.size - 1;
}
void close_len_slow(Buf& b, size_t pos, size_t len);
inline void close_len(Buf& b, size_t pos) {
  const size_t len = b.size - pos - 1;
  if (len < 0x80) [[likely]]
    b.data[pos] = static_cast<char>(len);
  else
    close_len_slow(b, pos, len);
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
inline constexpr bool dependent_false = false;

}  // namespace detail

class ValueWriter;
class ListWriter;
class MapWriter;

// ADL customisation point for user types (see the header comment).
template <class T>
concept SensorValueCustomised = requires(ValueWriter& w, const T& v) {
  immunizer_sensor_value(w, v);
};

// Writes exactly one Value as field `field` of the enclosing message.
class ValueWriter {
 public:
  ValueWriter(detail::Buf& buf, uint32_t field) : b_(buf), field_(field) {}

  void null() { small(detail::tag(1, detail::kVarint), 1); }
  void boolean(bool v) { small(detail::tag(2, detail::kVarint), v ? 1 : 0); }
  void integer(int64_t v) {
    const auto u = static_cast<uint64_t>(v);
    char* p = b_.reserve(2 + 1 + 10);
    *p++ = detail::tag(field_, detail::kLen);
    *p++ = static_cast<char>(1 + detail::varint_size(u));
    *p++ = detail::tag(3, detail::kVarint);
    p = detail::put_varint(p, u);
    b_.size = static_cast<size_t>(p - b_.data);
  }
  // An unsigned number: an integer when it fits int64, else (above INT64_MAX) a real.
  void unsigned_integer(uint64_t u) {
    if (u <= static_cast<uint64_t>(INT64_MAX))
      integer(static_cast<int64_t>(u));
    else
      real(static_cast<double>(u));
  }
  void real(double v) {
    char* p = b_.reserve(2 + 1 + 8);
    *p++ = detail::tag(field_, detail::kLen);
    *p++ = 9;
    *p++ = detail::tag(4, detail::kFixed64);
    std::memcpy(p, &v, 8);  // little-endian hosts only (x86-64, aarch64)
    b_.size += 11;
  }
  void string(std::string_view s) {
    if (b_.check_utf8 && !b_.bad_utf8) [[unlikely]] {
      b_.bad_utf8 = !detail::valid_utf8(s);
      b_.classes |= detail::char_classes(s);
    }
    len_value(5, s.data(), s.size());
  }
  void bytes(const void* data, size_t n) { len_value(6, data, n); }

  ListWriter list();
  MapWriter map();

  // Dispatches on T: bool, integers and enums, floating point, string-likes, Bytes, Null /
  // nullopt / nullptr, std::optional, user types (immunizer_sensor_value), maps with
  // string-like keys, and any other range (a list).
  template <class T>
  void value(const T& v);

 private:
  void small(char inner_tag, char v) {
    char* p = b_.reserve(4);
    p[0] = detail::tag(field_, detail::kLen);
    p[1] = 2;
    p[2] = inner_tag;
    p[3] = v;
    b_.size += 4;
  }
  void len_value(uint32_t inner_field, const void* data, size_t n) {
    if (n > b_.max_string) [[unlikely]] {
      cut_value(inner_field, static_cast<const char*>(data), n);
      return;
    }
    const size_t inner = 1 + detail::varint_size(n) + n;
    char* p = b_.reserve(1 + 10 + inner);
    *p++ = detail::tag(field_, detail::kLen);
    p = detail::put_varint(p, inner);
    *p++ = detail::tag(inner_field, detail::kLen);
    p = detail::put_varint(p, n);
    if (n) std::memcpy(p, data, n);
    b_.size = static_cast<size_t>(p + n - b_.data);
  }

  // A string or bytes value over the cap: prefix + suffix, Value.truncated and
  // Value.original_length.
  void cut_value(uint32_t inner_field, const char* data, size_t n) {
    const size_t keep = b_.max_string, head = keep / 2, tail = keep - head;
    const size_t inner = 1 + detail::varint_size(keep) + keep + 2 + 1 + detail::varint_size(n);
    char* p = b_.reserve(1 + 10 + inner);
    *p++ = detail::tag(field_, detail::kLen);
    p = detail::put_varint(p, inner);
    *p++ = detail::tag(inner_field, detail::kLen);
    p = detail::put_varint(p, keep);
    std::memcpy(p, data, head);
    std::memcpy(p + head, data + n - tail, tail);
    p += keep;
    *p++ = detail::tag(9, detail::kVarint);  // truncated = true
    *p++ = 1;
    *p++ = detail::tag(10, detail::kVarint);  // original_length
    p = detail::put_varint(p, n);
    b_.size = static_cast<size_t>(p - b_.data);
    b_.cut_bytes += n - keep;
    b_.truncated = true;
  }

  friend class ListWriter;
  friend class MapWriter;
  detail::Buf& b_;
  uint32_t field_;
};

namespace detail {
// A Value's field `field` holding a nested message `kind` (7: ValueList, 8: ValueMap), open
// while this lives. room() is false, and the part counted as left out, once the record is past
// its cap.
class NestedWriter {
 public:
  NestedWriter(Buf& b, uint32_t field, uint32_t kind)
      : b_(b), outer_(open_len(b_, field)), inner_(open_len(b_, kind)) {}
  NestedWriter(const NestedWriter&) = delete;
  NestedWriter& operator=(const NestedWriter&) = delete;
  ~NestedWriter() {
    close_len(b_, inner_);
    close_len(b_, outer_);
  }

 protected:
  bool room() noexcept {
    if (b_.size > b_.max_record) [[unlikely]] {
      b_.drop_part();
      return false;
    }
    return true;
  }
  Buf& b_;

 private:
  size_t outer_, inner_;
};
}  // namespace detail

// RAII writer of a ValueList; closes the list when destroyed.
class ListWriter : private detail::NestedWriter {
 public:
  explicit ListWriter(detail::Buf& b, uint32_t field) : NestedWriter(b, field, 7) {}
  template <class T>
  ListWriter& item(const T& v) {
    if (room()) ValueWriter(b_, 1).value(v);
    return *this;
  }
  ValueWriter item() { return ValueWriter(b_, 1); }
};

// RAII writer of a ValueMap; closes the map when destroyed.
class MapWriter : private detail::NestedWriter {
 public:
  explicit MapWriter(detail::Buf& b, uint32_t field) : NestedWriter(b, field, 8) {}
  template <class T>
  MapWriter& field(std::string_view key, const T& v) {
    if (!room()) return *this;
    const size_t entry = detail::open_len(b_, 1);
    detail::put_capped_string_field(b_, 1, key);
    ValueWriter(b_, 2).value(v);
    detail::close_len(b_, entry);
    return *this;
  }
};

inline ListWriter ValueWriter::list() { return ListWriter(b_, field_); }
inline MapWriter ValueWriter::map() { return MapWriter(b_, field_); }

template <class T>
void ValueWriter::value(const T& v) {
  using U = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    boolean(v);
  } else if constexpr (std::is_integral_v<U> || (std::is_enum_v<U> && !SensorValueCustomised<U>)) {
    integer(static_cast<int64_t>(v));
  } else if constexpr (std::is_floating_point_v<U>) {
    real(static_cast<double>(v));
  } else if constexpr (std::is_same_v<U, Null> || std::is_same_v<U, std::nullopt_t> ||
                       std::is_same_v<U, std::nullptr_t>) {
    null();
  } else if constexpr (std::is_same_v<U, Bytes>) {
    bytes(v.data, v.size);
  } else if constexpr (SensorValueCustomised<U>) {
    immunizer_sensor_value(*this, v);
  } else if constexpr (std::is_convertible_v<const U&, std::string_view>) {
    string(std::string_view(v));
  } else if constexpr (detail::is_optional<U>::value) {
    if (v)
      value(*v);
    else
      null();
  } else if constexpr (std::ranges::range<const U> &&
                       requires(std::ranges::range_value_t<const U> e) {
                         { e.first } -> std::convertible_to<std::string_view>;
                         e.second;
                       }) {
    auto m = map();
    for (const auto& [k, x] : v) m.field(std::string_view(k), x);
  } else if constexpr (std::ranges::range<const U>) {
    auto l = list();
    for (const auto& x : v) l.item(x);
  } else {
    static_assert(detail::dependent_false<U>,
                  "no sensor encoding for this type: define "
                  "immunizer_sensor_value(immunizer::sensor::ValueWriter&, const T&) next to it");
  }
}

}  // namespace immunizer::sensor
