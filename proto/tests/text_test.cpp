// Invalid UTF-8 counted wherever it falls relative to the 8-byte ASCII fast path.
#include "immunizer/v1/text.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace immunizer::v1;

TEST(InvalidUtf8Count, CountsEachBadByteAtEveryOffsetAndLength) {
  for (size_t len = 0; len <= 24; ++len) {
    const std::string ascii(len, 'a');
    EXPECT_EQ(invalid_utf8_count(ascii), 0u) << len;
    for (size_t at = 0; at <= len; ++at) {
      SCOPED_TRACE(testing::Message() << "length " << len << " at " << at);
      std::string bad = ascii;
      bad.insert(at, "\xff");
      EXPECT_EQ(invalid_utf8_count(bad), 1u);
      std::string two = ascii;
      two.insert(at, "\xc3\xa9");  // é: valid
      EXPECT_EQ(invalid_utf8_count(two), 0u);
      std::string cut = ascii.substr(0, at) + "\xe2\x82";  // a 3-byte sequence cut short
      EXPECT_EQ(invalid_utf8_count(cut), 2u);
      std::string overlong = ascii;
      overlong.insert(at, "\xc0\xaf");  // overlong '/': two bad bytes
      EXPECT_EQ(invalid_utf8_count(overlong), 2u);
      std::string high = ascii;
      high[at == len ? 0 : at] = '\x80';  // a lone continuation byte
      if (len > 0) EXPECT_EQ(invalid_utf8_count(high), 1u);
    }
  }
}
