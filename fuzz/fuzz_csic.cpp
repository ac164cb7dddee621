// The CSIC 2010 request parser (monitor/csic.hpp): whole-file text in, requests out, then
// the records the shop would emit for each; and the decoding helpers against their
// definitions (the views agree with the allocating versions; UTF-8 output is valid).
#include <cstdlib>

#include "immunizer/monitor/csic.hpp"

using namespace immunizer::monitor;

namespace {
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += n;
  }
  return true;
}
void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant failed: %s\n", what);
    abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string scratch;
  check(csic::url_decode_view(text, scratch) == csic::url_decode(text),
        "url_decode_view == url_decode");
  check(csic::url_decode_view(text, scratch, false) == csic::url_decode(text, false),
        "url_decode_view (no plus)");
  const std::string utf8 = csic::latin1_to_utf8(text);
  check(valid_utf8(utf8), "latin1_to_utf8 is valid UTF-8");
  check(csic::latin1_to_utf8_view(text, scratch) == utf8, "latin1_to_utf8_view == latin1_to_utf8");
  const auto params = csic::parse_params(text);
  size_t i = 0;
  csic::for_each_decoded_param(text, [&](std::string_view k, std::string_view v) {
    check(i < params.size() && params[i].first == k && params[i].second == v,
          "for_each_decoded_param == parse_params");
    ++i;
  });
  check(i == params.size(), "for_each_decoded_param visits every parameter");

  uint64_t seq = 0;
  for (const auto& req : csic::parse(text)) {
    (void)req.session();
    (void)req.header("Content-Type");
    csic::ShopRecordOptions o;
    o.seq = seq;
    seq += 2;
    for (const auto& r : csic::to_call_records(req, o)) {
      // Records must serialise (protobuf string fields: valid UTF-8 only).
      std::string wire;
      check(r.SerializeToString(&wire), "the shop's records serialise");
      (void)csic::is_shop_endpoint(r.call());
    }
  }
  return 0;
}
