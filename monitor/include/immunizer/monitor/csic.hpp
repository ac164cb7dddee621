// CSIC 2010 HTTP dataset: parses raw request files (.txt or .txt.gz, latin-1) and turns one
// request into the CallRecords the instrumented demo shop produces for it.
// Free functions, no shared state: thread-safe. Results are owned by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::monitor::csic {

// One raw request as it appears in the file. Strings hold the file's bytes (latin-1).
struct Request {
  std::string method;   // "GET", "POST", "PUT", ...
  std::string url;      // as written on the request line, e.g. "http://localhost:8080/a.jsp?x=1"
  std::string path;     // "/tienda1/publico/anadir.jsp" (scheme and authority removed)
  std::string query;    // raw (still url-encoded) query string without '?'; may be empty
  std::string version;  // "HTTP/1.1" (empty if the request line had none)
  std::vector<std::pair<std::string, std::string>> headers;  // in file order, names as written
  std::string body;  // raw body (url-encoded for forms); may be empty
  size_t index = 0;  // 0-based position in its file

  // First header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
  // JSESSIONID from the Cookie header, or empty.
  std::string session() const;
};

// Parses a whole file's text. Never throws on malformed requests: junk lines are skipped.
std::vector<Request> parse(std::string_view text);
// Reads a .txt or .txt.gz (detected by the gzip magic) file; throws std::runtime_error on
// I/O or decompression errors.
std::vector<Request> read_file(const std::string& file);

// Percent-decodes (and '+' -> ' ' when plus_as_space) into raw bytes; bad escapes kept as is.
std::string url_decode(std::string_view s, bool plus_as_space = true);
// The same without allocating when there is nothing to decode: returns `s` itself, or the
// decoded bytes held in `scratch` (valid until scratch changes).
std::string_view url_decode_view(std::string_view s, std::string& scratch,
                                 bool plus_as_space = true);
// Splits "a=1&b=2" into decoded (name, value) pairs, in order; a name without '=' gets "".
std::vector<std::pair<std::string, std::string>> parse_params(std::string_view encoded);
// Latin-1 bytes to UTF-8 (protobuf string fields must hold valid UTF-8).
std::string latin1_to_utf8(std::string_view s);
// The same returning `s` itself when it is ASCII, else the conversion held in `scratch`.
std::string_view latin1_to_utf8_view(std::string_view s, std::string& scratch);

// Calls f(name, value) for each parameter of "a=1&b=2" in order, percent-decoded (raw bytes,
// what parse_params gives) without allocating for parameters with nothing to decode. A name
// without '=' gets an empty value. The views are valid during the call only.
template <class F>
void for_each_decoded_param(std::string_view encoded, F&& f) {
  std::string dk, dv;  // scratch, used only by parameters that need decoding
  size_t pos = 0;
  while (pos <= encoded.size()) {
    size_t amp = encoded.find('&', pos);
    if (amp == std::string_view::npos) amp = encoded.size();
    const std::string_view part = encoded.substr(pos, amp - pos);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      const std::string_view k = eq == std::string_view::npos ? part : part.substr(0, eq);
      const std::string_view v =
          eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
      f(url_decode_view(k, dk), url_decode_view(v, dv));
    }
    pos = amp + 1;
  }
}

// The same converted from Latin-1 to UTF-8 (what parse_params + latin1_to_utf8 give).
template <class F>
void for_each_param(std::string_view encoded, F&& f) {
  std::string uk, uv;
  for_each_decoded_param(encoded, [&](std::string_view k, std::string_view v) {
    f(latin1_to_utf8_view(k, uk), latin1_to_utf8_view(v, uv));
  });
}

// Whether `path` is a shop endpoint: an application page of the CSIC 2010 shop ("tienda1"),
// which the shop instruments with an inner call named by the path.
bool is_shop_endpoint(std::string_view path);

struct ShopRecordOptions {
  std::string app = "shop";
  std::string instance = "csic";
  uint64_t seq = 0;              // outer record gets seq, inner seq + 1
  std::string ip = "127.0.0.1";  // principal.ip
  int64_t timestamp_unix_nanos = 0;
  int64_t duration_nanos = 0;
  int status = -1;    // HTTP status result; -1: 200 for endpoints/known static, 404 otherwise
  std::string trace;  // labels["trace"] on both records when not empty
};

// The records the shop emits for one request, as it would instrument it:
//  [0] call "http.request", context "": arguments method, path, query (raw), headers (map of
//      lower-cased header name -> value, without cookie and content-length), body_length (int);
//      result = HTTP status (int).
//  [1] only for shop endpoints: call = path, context "http.request", arguments = the decoded
//      query then url-encoded body parameters, as strings (latin-1 converted to UTF-8).
// Principal: session = JSESSIONID, ip = options.ip.
std::vector<immunizer::v1::CallRecord> to_call_records(const Request& req,
                                                       const ShopRecordOptions& options);

}  // namespace immunizer::monitor::csic
