// The hand-written wire encoder must produce bytes that protobuf parses into the intended
// immunizer.v1 messages (Value, CallRecord).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "immunizer/sensor/value.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/records.pb.h"

namespace demo {
struct Money {
  std::string currency;
  int64_t cents;
};
void immunizer_sensor_value(immunizer::sensor::ValueWriter& w, const Money& m) {
  auto map = w.map();
  map.field("currency", m.currency).field("cents", m.cents);
}
}  // namespace demo

namespace {

using immunizer::sensor::ValueWriter;
using immunizer::sensor::detail::Buf;

// Encodes `v` as field 1 of a ValueList, so the bytes parse as a ValueList of one item.
template <class T>
immunizer::v1::Value encode(const T& v) {
  Buf b;
  ValueWriter(b, 1).value(v);
  immunizer::v1::ValueList list;
  EXPECT_TRUE(list.ParseFromArray(b.data, static_cast<int>(b.size)));
  EXPECT_EQ(list.items_size(), 1);
  return list.items_size() ? list.items(0) : immunizer::v1::Value();
}

// The entry of a map value with this key (an empty Value when missing, failing the test).
const immunizer::v1::Value& field(const immunizer::v1::Value& v, std::string_view key) {
  static const immunizer::v1::Value kNone;
  const auto* f = immunizer::v1::find_field(v.map_value(), key);
  EXPECT_NE(f, nullptr) << key;
  return f ? *f : kNone;
}

TEST(Encoding, Scalars) {
  EXPECT_EQ(encode(int64_t{-5}).int_value(), -5);
  EXPECT_EQ(encode(42).int_value(), 42);
  EXPECT_EQ(encode(uint8_t{200}).int_value(), 200);
  EXPECT_TRUE(encode(true).bool_value());
  EXPECT_EQ(encode(false).kind_case(), immunizer::v1::Value::kBoolValue);
  EXPECT_DOUBLE_EQ(encode(3.25).double_value(), 3.25);
  EXPECT_EQ(encode("abc").string_value(), "abc");
  EXPECT_EQ(encode(std::string(300, 'x')).string_value(), std::string(300, 'x'));
  EXPECT_TRUE(encode(immunizer::sensor::Null{}).null_value());
  EXPECT_TRUE(encode(std::optional<int>()).null_value());
  EXPECT_EQ(encode(std::optional<int>(7)).int_value(), 7);
  const char raw[] = {0, 1, 2};
  EXPECT_EQ(encode(immunizer::sensor::Bytes(raw, 3)).bytes_value(), std::string(raw, 3));
}

TEST(Encoding, NestedListsMapsAndUserTypes) {
  const std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  const auto v = encode(m);
  ASSERT_TRUE(v.has_map_value());
  ASSERT_EQ(field(v, "a").list_value().items_size(), 2);
  EXPECT_EQ(field(v, "a").list_value().items(1).int_value(), 2);
  EXPECT_EQ(field(v, "b").list_value().items_size(), 0);

  const auto u = encode(demo::Money{"EUR", 1999});
  EXPECT_EQ(field(u, "currency").string_value(), "EUR");
  EXPECT_EQ(field(u, "cents").int_value(), 1999);

  // Large nested bodies force multi-byte lengths at several levels.
  std::vector<std::string> big(50, std::string(100, 'y'));
  const auto l = encode(std::vector<std::vector<std::string>>{big, big});
  ASSERT_EQ(l.list_value().items_size(), 2);
  EXPECT_EQ(l.list_value().items(1).list_value().items(49).string_value(), std::string(100, 'y'));
}

}  // namespace
