#include "immunizer/common/byte_codec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "immunizer/common/compress.hpp"

namespace immunizer::common {
namespace {

TEST(ByteCodec, WritesLittleEndianWhateverTheHost) {
  ByteWriter w;
  w.put<uint32_t>(0x11223344u);
  w.put<uint16_t>(0xA1B2u);
  w.put<int64_t>(-2);
  w.put<double>(1.0);  // 0x3FF0000000000000
  const std::string expect(
      "\x44\x33\x22\x11"
      "\xB2\xA1"
      "\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF"
      "\x00\x00\x00\x00\x00\x00\xF0\x3F",
      22);
  EXPECT_EQ(w.bytes(), expect);
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get<uint32_t>(), 0x11223344u);
  EXPECT_EQ(r.get<uint16_t>(), 0xA1B2u);
  EXPECT_EQ(r.get<int64_t>(), -2);
  EXPECT_EQ(r.get<double>(), 1.0);
  EXPECT_TRUE(r.done());
}

TEST(ByteCodec, StringsAndVectorsRoundTripBitExact) {
  ByteWriter w;
  const std::vector<double> d = {0.1, -0.0, std::nan(""), 1e300};
  const std::vector<uint32_t> u = {1, 0xFFFFFFFFu};
  w.put_string("abc");
  w.put_vector(d);
  w.put_vector(u);
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get_string(), "abc");
  const auto d2 = r.get_vector<double>();
  ASSERT_EQ(d2.size(), d.size());
  EXPECT_EQ(std::memcmp(d2.data(), d.data(), d.size() * sizeof(double)), 0);
  std::vector<uint32_t> u2;
  r.get_vector_of_size(&u2, 2);
  EXPECT_EQ(u2, u);
  EXPECT_TRUE(r.done());
}

TEST(ByteCodec, ReaderRefusesTruncatedOrImplausibleInput) {
  ByteWriter w;
  w.put_string("hello");
  const std::string b = w.bytes();
  EXPECT_THROW(ByteReader(b.substr(0, 7)).get_string(), std::runtime_error);
  EXPECT_THROW(ByteReader(b).get_string(4), std::runtime_error);  // longer than allowed
  ByteWriter huge;
  huge.put<uint64_t>(uint64_t{1} << 60);  // a count no input can hold
  EXPECT_THROW(ByteReader(huge.bytes()).get_vector<double>(), std::runtime_error);
  std::vector<uint32_t> v;
  ByteWriter two;
  two.put_vector(std::vector<uint32_t>{1, 2});
  EXPECT_THROW(ByteReader(two.bytes()).get_vector_of_size(&v, 3), std::runtime_error);
  try {
    ByteReader(std::string_view("ab"), "monitor snapshot").get<uint32_t>();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "monitor snapshot: truncated input");
  }
}

TEST(ByteCodec, HeaderChecksMagicAndVersionRange) {
  ByteWriter w;
  w.put_header(0xABCD, 2);
  EXPECT_EQ(w.bytes().size(), 8u);
  EXPECT_EQ(ByteReader(w.bytes()).get_header(0xABCD, 2), 2u);
  EXPECT_EQ(ByteReader(w.bytes()).get_header(0xABCD, 3, 2), 2u);  // an older version still read
  const auto message = [&](uint32_t magic, uint32_t newest, uint32_t oldest) {
    try {
      ByteReader(w.bytes(), "model").get_header(magic, newest, oldest);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(0xABCE, 2, 2), "model: bad magic");
  EXPECT_EQ(message(0xABCD, 3, 3), "model: unknown version");  // too old
  EXPECT_EQ(message(0xABCD, 1, 1), "model: unknown version");  // too new
  EXPECT_THROW(ByteReader(w.bytes().substr(0, 6)).get_header(0xABCD, 2), std::runtime_error);
}

TEST(SnapshotFrame, RoundTripsCompressedAndRawAndRefusesDamage) {
  const std::string payload(5000, 'x');
  for (bool compress : {true, false}) {
    const std::string f = frame_snapshot("TEST", payload, compress);
    EXPECT_EQ(f.substr(0, 4), "TEST");
    EXPECT_EQ(f[4], compress ? 1 : 0);
    EXPECT_EQ(f.substr(5, 8), std::string("\x88\x13\0\0\0\0\0\0", 8));  // 5000, little-endian
    EXPECT_EQ(unframe_snapshot("TEST", f, 1 << 20, "t"), payload);
    EXPECT_THROW(unframe_snapshot("XXXX", f, 1 << 20, "t"), std::runtime_error);
    EXPECT_THROW(unframe_snapshot("TEST", f, 100, "t"), std::runtime_error);  // over the limit
    EXPECT_THROW(unframe_snapshot("TEST", f.substr(0, f.size() - 1), 1 << 20, "t"),
                 std::runtime_error);
  }
  EXPECT_LT(frame_snapshot("TEST", payload, true).size(), 200u);
}

}  // namespace
}  // namespace immunizer::common
