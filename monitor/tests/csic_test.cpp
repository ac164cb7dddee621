#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "immunizer/monitor/csic.hpp"
#include "immunizer/monitor/features.hpp"
#include "immunizer/v1/call_records.hpp"

namespace immunizer::monitor::csic {
namespace {

constexpr const char* kSample =
    "GET "
    "http://localhost:8080/tienda1/publico/"
    "anadir.jsp?id=2&nombre=Jam%F3n+Ib%E9rico&cantidad=%27%3B HTTP/1.1\n"
    "User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)\n"
    "Accept-Language: en\n"
    "Host: localhost:8080\n"
    "Cookie: JSESSIONID=B92A8B48B9008CD29F622A994E0F650D\n"
    "Connection: close\n"
    "\n"
    "\n"
    "POST http://localhost:8080/tienda1/publico/autenticar.jsp HTTP/1.1\n"
    "User-Agent: Mozilla/5.0\n"
    "Cookie: JSESSIONID=D6037A58019A61C4E5745B952029D61F\n"
    "Content-Type: application/x-www-form-urlencoded\n"
    "Connection: close\n"
    "Content-Length: 40\n"
    "\n"
    "modo=entrar&login=bob%40x&pwd=a+b&B1=Entrar\n"
    "\n"
    "\n"
    "GET http://localhost:8080/asf-logo-wide.gif~ HTTP/1.1\n"
    "Cookie: JSESSIONID=51A7470173188BBB993947F2283059E4\n"
    "\n"
    "\n";

TEST(CsicParse, SplitsRequestsLineHeadersAndBody) {
  auto reqs = parse(kSample);
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].path, "/tienda1/publico/anadir.jsp");
  EXPECT_EQ(reqs[0].query, "id=2&nombre=Jam%F3n+Ib%E9rico&cantidad=%27%3B");
  EXPECT_EQ(reqs[0].version, "HTTP/1.1");
  EXPECT_EQ(reqs[0].header("accept-language"), "en");
  EXPECT_EQ(reqs[0].session(), "B92A8B48B9008CD29F622A994E0F650D");
  EXPECT_TRUE(reqs[0].body.empty());
  EXPECT_EQ(reqs[1].method, "POST");
  EXPECT_EQ(reqs[1].body, "modo=entrar&login=bob%40x&pwd=a+b&B1=Entrar");
  EXPECT_EQ(reqs[2].path, "/asf-logo-wide.gif~");
  EXPECT_EQ(reqs[2].index, 2u);
}

// The dataset's training file ends lines with CRLF, its test files with LF; a file saved
// again by a tool that adds a CR to each line has CRCRLF. All parse the same.
TEST(CsicParse, LineEndingsDoNotMatter) {
  const auto lf = parse(kSample);
  for (const char* ending : {"\r\n", "\r\r\n"}) {
    std::string text;
    for (const char* p = kSample; *p; ++p) {
      if (*p == '\n')
        text += ending;
      else
        text += *p;
    }
    const auto reqs = parse(text);
    ASSERT_EQ(reqs.size(), lf.size()) << "line ending " << (ending[1] == '\n' ? "CRLF" : "CRCRLF");
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(reqs[i].url, lf[i].url);
      EXPECT_EQ(reqs[i].version, lf[i].version);
      EXPECT_EQ(reqs[i].body, lf[i].body);
      EXPECT_EQ(reqs[i].headers, lf[i].headers);
    }
  }
}

TEST(CsicParse, DecodesParameters) {
  EXPECT_EQ(url_decode("a%20b+c%2"), "a b c%2");
  EXPECT_EQ(url_decode("a+b", false), "a+b");
  auto p = parse_params("id=2&nombre=Jam%F3n+Ib%E9rico&flag&=x");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[1].second, "Jam\xF3n Ib\xE9rico");
  EXPECT_EQ(p[2].first, "flag");
  EXPECT_EQ(latin1_to_utf8("Jam\xF3n"), "Jam\xC3\xB3n");
}

// Byte-at-a-time definitions of the two conversions, to check the fast ones against.
std::string reference_url_decode(std::string_view s, bool plus_as_space) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += plus_as_space && s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}
std::string reference_latin1_to_utf8(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80)
      out += static_cast<char>(c);
    else
      out += {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
  }
  return out;
}

TEST(CsicParse, ConversionsMatchTheirDefinitions) {
  std::mt19937 rng(5);
  const std::string alphabet = "ab%+2F4e1zZ\xE9\xF1\xFF ;'";
  std::string scratch = "left over from an earlier, longer value";
  for (int trial = 0; trial < 5000; ++trial) {
    std::string s(rng() % 70, 'x');
    for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    ASSERT_EQ(url_decode_view(s, scratch), reference_url_decode(s, true)) << s;
    ASSERT_EQ(url_decode_view(s, scratch, false), reference_url_decode(s, false)) << s;
    ASSERT_EQ(latin1_to_utf8_view(s, scratch), reference_latin1_to_utf8(s)) << s;
  }
}

// The allocation-free helpers the shop uses give what parse_params + latin1_to_utf8 give.
TEST(CsicParse, ViewHelpersMatchTheAllocatingOnes) {
  std::mt19937 rng(11);
  const std::string alphabet = "ab=&%+2F41zZ\xE9\xF1 ;'";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s(rng() % 40, 'x');
    for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    std::vector<std::pair<std::string, std::string>> got;
    for_each_param(s, [&](std::string_view k, std::string_view v) { got.emplace_back(k, v); });
    std::vector<std::pair<std::string, std::string>> want;
    for (const auto& [k, v] : parse_params(s))
      want.emplace_back(latin1_to_utf8(k), latin1_to_utf8(v));
    ASSERT_EQ(got, want) << s;
    std::string scratch;
    ASSERT_EQ(url_decode_view(s, scratch), url_decode(s)) << s;
    ASSERT_EQ(url_decode_view(s, scratch, false), url_decode(s, false)) << s;
    ASSERT_EQ(latin1_to_utf8_view(s, scratch), latin1_to_utf8(s)) << s;
  }
  std::string scratch;
  const std::string ascii = "plain-ascii-text-longer-than-a-word";
  EXPECT_EQ(latin1_to_utf8_view(ascii, scratch).data(), ascii.data());  // no copy
  EXPECT_EQ(url_decode_view(ascii, scratch).data(), ascii.data());
}

TEST(CsicRecords, ShopEmitsOuterAndInnerCalls) {
  auto reqs = parse(kSample);
  ShopRecordOptions o;
  o.seq = 10;
  o.trace = "req-0";
  auto recs = to_call_records(reqs[0], o);
  ASSERT_EQ(recs.size(), 2u);
  const auto& outer = recs[0];
  EXPECT_EQ(FeatureExtractor::model_key(outer), "shop|http.request|");
  EXPECT_EQ(outer.id().seq(), 10u);
  EXPECT_EQ(outer.principal().session(), "B92A8B48B9008CD29F622A994E0F650D");
  ASSERT_NE(immunizer::v1::find_label(outer, "trace"), nullptr);
  EXPECT_EQ(*immunizer::v1::find_label(outer, "trace"), "req-0");
  ASSERT_EQ(outer.arguments_size(), 5);
  EXPECT_EQ(outer.arguments(3).name(), "headers");
  EXPECT_NE(immunizer::v1::find_field(outer.arguments(3).value().map_value(), "user-agent"),
            nullptr);
  EXPECT_EQ(immunizer::v1::find_field(outer.arguments(3).value().map_value(), "cookie"), nullptr);
  EXPECT_EQ(outer.result().int_value(), 200);
  const auto& inner = recs[1];
  EXPECT_EQ(FeatureExtractor::model_key(inner), "shop|/tienda1/publico/anadir.jsp|http.request");
  EXPECT_EQ(inner.id().seq(), 11u);
  ASSERT_EQ(inner.arguments_size(), 3);
  EXPECT_EQ(inner.arguments(1).value().string_value(), "Jam\xC3\xB3n Ib\xC3\xA9rico");
  EXPECT_EQ(inner.arguments(2).value().string_value(), "';");
  std::string wire;
  EXPECT_TRUE(inner.SerializeToString(&wire));
  immunizer::v1::CallRecord back;
  EXPECT_TRUE(back.ParseFromString(wire)) << "strings must be valid UTF-8";

  auto post = to_call_records(reqs[1], o);
  ASSERT_EQ(post.size(), 2u);
  EXPECT_EQ(post[0].arguments(4).value().int_value(), 43);
  EXPECT_EQ(post[1].arguments_size(), 4);

  auto unknown = to_call_records(reqs[2], o);
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].result().int_value(), 404);
}

TEST(CsicFiles, ReadsTheDatasetFiles) {
  const std::string dir = std::string(IMMUNIZER_DATASETS) + "/csic2010/";
  if (!std::filesystem::exists(dir + "anomalousTrafficTest.txt.gz"))
    GTEST_SKIP() << "dataset not present";
  auto anomalous = read_file(dir + "anomalousTrafficTest.txt.gz");
  EXPECT_EQ(anomalous.size(), 12533u);
  auto normal = read_file(dir + "normalTrafficTest.txt.gz");
  EXPECT_EQ(normal.size(), 18000u);
  for (const auto& r : normal) {
    ASSERT_FALSE(r.method.empty());
    ASSERT_FALSE(r.path.empty());
    if (r.method == "POST") {
      ASSERT_EQ(std::to_string(r.body.size()), std::string(r.header("content-length")));
    }
  }
}

TEST(CsicFiles, MissingFileThrows) {
  EXPECT_THROW(read_file("/nonexistent/x.txt"), std::runtime_error);
}

}  // namespace
}  // namespace immunizer::monitor::csic
