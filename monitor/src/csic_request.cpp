#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>

#include "immunizer/monitor/csic.hpp"

namespace immunizer::monitor::csic {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

// A request line: an upper-case method token, a space, then an absolute URL or a path.
bool is_request_line(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] >= 'A' && line[i] <= 'Z') ++i;
  if (i < 3 || i > 10 || i >= line.size() || line[i] != ' ') return false;
  std::string_view rest = line.substr(i + 1);
  return rest.starts_with("http://") || rest.starts_with("https://") || rest.starts_with("/");
}

std::string gunzip(const std::string& data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) throw std::runtime_error("csic: inflateInit failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw std::runtime_error("csic: corrupt gzip data");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_STREAM_END && zs.avail_in > 0) {  // concatenated gzip members
      inflateReset(&zs);
      rc = Z_OK;
    }
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

void parse_request_line(std::string_view line, Request* r) {
  const size_t sp = line.find(' ');
  r->method = std::string(line.substr(0, sp));
  std::string_view rest = trim(line.substr(sp + 1));
  const size_t last = rest.rfind(' ');
  if (last != std::string_view::npos && rest.substr(last + 1).starts_with("HTTP/")) {
    r->version = std::string(rest.substr(last + 1));
    rest = trim(rest.substr(0, last));
  }
  r->url = std::string(rest);
  std::string_view target = rest;
  if (const size_t scheme = target.find("://"); scheme != std::string_view::npos && scheme < 8) {
    const size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const size_t q = target.find('?');
  r->path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r->query = std::string(target.substr(q + 1));
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

immunizer::v1::Value string_value(std::string_view s) {
  immunizer::v1::Value v;
  v.set_string_value(latin1_to_utf8(s));
  return v;
}

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

std::string Request::session() const {
  std::string_view c = header("cookie");
  const size_t p = c.find("JSESSIONID=");
  if (p == std::string_view::npos) return {};
  c = c.substr(p + 11);
  return std::string(c.substr(0, c.find_first_of("; \t")));
}

std::vector<Request> parse(std::string_view text) {
  // Split into lines; a request starts at a request line that follows a blank line (or the
  // start). Headers run to the first blank line; the body is what follows, up to the blank
  // line(s) before the next request.
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    while (!l.empty() && l.back() == '\r')
      l.remove_suffix(1);  // CRLF, or CRLF saved again as CRCRLF
    lines.push_back(l);
    pos = nl + 1;
  }
  std::vector<Request> out;
  size_t i = 0;
  bool prev_blank = true;
  while (i < lines.size()) {
    if (!(prev_blank && is_request_line(lines[i]))) {
      prev_blank = lines[i].empty();
      ++i;
      continue;
    }
    Request r;
    r.index = out.size();
    parse_request_line(lines[i], &r);
    ++i;
    for (; i < lines.size() && !lines[i].empty(); ++i) {
      const std::string_view l = lines[i];
      const size_t colon = l.find(':');
      if (colon == std::string_view::npos) continue;
      r.headers.emplace_back(std::string(trim(l.substr(0, colon))),
                             std::string(trim(l.substr(colon + 1))));
    }
    // Body: lines until the next request line preceded by a blank line.
    size_t j = i;
    std::string body;
    bool blank = true;
    for (; j < lines.size(); ++j) {
      if (blank && j > i && is_request_line(lines[j])) break;
      blank = lines[j].empty();
      if (j > i) {
        if (!body.empty() || !lines[j].empty()) {
          if (!body.empty()) body.push_back('\n');
          body.append(lines[j]);
        }
      }
    }
    while (!body.empty() && (body.back() == '\n')) body.pop_back();
    r.body = std::move(body);
    out.push_back(std::move(r));
    i = j;
    prev_blank = true;
  }
  return out;
}

std::vector<Request> read_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("csic: cannot open " + file);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("csic: cannot read " + file);
  if (data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1f &&
      static_cast<unsigned char>(data[1]) == 0x8b) {
    data = gunzip(data);
  }
  return parse(data);
}

std::string_view url_decode_view(std::string_view s, std::string& scratch, bool plus_as_space) {
  // First byte that needs decoding; a value without one is returned as it is.
  size_t i = 0;
  while (i < s.size() && s[i] != '%' && !(plus_as_space && s[i] == '+')) ++i;
  if (i == s.size()) return s;
  scratch.resize(s.size());  // decoding never grows the text
  char* out = scratch.data();
  std::memcpy(out, s.data(), i);
  char* o = out + i;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h >= 0 && l >= 0) {
        *o++ = static_cast<char>(h * 16 + l);
        i += 2;
        continue;
      }
    }
    *o++ = plus_as_space && c == '+' ? ' ' : c;
  }
  scratch.resize(static_cast<size_t>(o - out));
  return scratch;
}

std::string url_decode(std::string_view s, bool plus_as_space) {
  std::string scratch;
  return std::string(url_decode_view(s, scratch, plus_as_space));
}

std::vector<std::pair<std::string, std::string>> parse_params(std::string_view encoded) {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_decoded_param(encoded,
                         [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return out;
}

std::string_view latin1_to_utf8_view(std::string_view s, std::string& scratch) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {  // ASCII check a word at a time
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ull) break;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  if (i == s.size()) return s;
  scratch.resize(s.size() + (s.size() - i));  // at most two bytes per remaining byte
  char* out = scratch.data();
  std::memcpy(out, s.data(), i);
  char* o = out + i;
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      *o++ = static_cast<char>(c);
    } else {
      *o++ = static_cast<char>(0xC0 | (c >> 6));
      *o++ = static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  scratch.resize(static_cast<size_t>(o - out));
  return scratch;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string scratch;
  return std::string(latin1_to_utf8_view(s, scratch));
}

namespace {
// The paths of the CSIC 2010 shop: its application pages, then the static files they load.
struct ShopPath {
  enum Kind { kPage, kStatic };
  std::string_view path;
  Kind kind;
};
constexpr ShopPath kShopPaths[] = {
    {"/tienda1/index.jsp", ShopPath::kPage},
    {"/tienda1/global/creditos.jsp", ShopPath::kPage},
    {"/tienda1/global/menum.jsp", ShopPath::kPage},
    {"/tienda1/global/titulo.jsp", ShopPath::kPage},
    {"/tienda1/miembros/editar.jsp", ShopPath::kPage},
    {"/tienda1/miembros/fotos.jsp", ShopPath::kPage},
    {"/tienda1/miembros/index.jsp", ShopPath::kPage},
    {"/tienda1/miembros/salir.jsp", ShopPath::kPage},
    {"/tienda1/publico/anadir.jsp", ShopPath::kPage},
    {"/tienda1/publico/autenticar.jsp", ShopPath::kPage},
    {"/tienda1/publico/caracteristicas.jsp", ShopPath::kPage},
    {"/tienda1/publico/carrito.jsp", ShopPath::kPage},
    {"/tienda1/publico/entrar.jsp", ShopPath::kPage},
    {"/tienda1/publico/miembros.jsp", ShopPath::kPage},
    {"/tienda1/publico/pagar.jsp", ShopPath::kPage},
    {"/tienda1/publico/productos.jsp", ShopPath::kPage},
    {"/tienda1/publico/registro.jsp", ShopPath::kPage},
    {"/tienda1/publico/vaciar.jsp", ShopPath::kPage},
    {"/tienda1/global/estilos.css", ShopPath::kStatic},
    {"/tienda1/imagenes/1.gif", ShopPath::kStatic},
    {"/tienda1/imagenes/2.gif", ShopPath::kStatic},
    {"/tienda1/imagenes/3.gif", ShopPath::kStatic},
    {"/tienda1/imagenes/cmenbul.gif", ShopPath::kStatic},
    {"/tienda1/imagenes/logo.gif", ShopPath::kStatic},
    {"/tienda1/imagenes/nuestratierra.jpg", ShopPath::kStatic},
    {"/tienda1/miembros/imagenes/castro.jpg", ShopPath::kStatic},
    {"/tienda1/miembros/imagenes/ogono.jpg", ShopPath::kStatic},
    {"/tienda1/miembros/imagenes/zarauz.jpg", ShopPath::kStatic},
};
const ShopPath* find_shop_path(std::string_view path) {
  for (const ShopPath& p : kShopPaths)
    if (p.path == path) return &p;
  return nullptr;
}
}  // namespace

bool is_shop_endpoint(std::string_view path) {
  const ShopPath* p = find_shop_path(path);
  return p != nullptr && p->kind == ShopPath::kPage;
}

std::vector<immunizer::v1::CallRecord> to_call_records(const Request& req,
                                                       const ShopRecordOptions& o) {
  const ShopPath* known_path = find_shop_path(req.path);
  const bool endpoint = known_path != nullptr && known_path->kind == ShopPath::kPage;
  const bool known = known_path != nullptr;
  const int status = o.status >= 0 ? o.status : (known ? 200 : 404);

  std::vector<immunizer::v1::CallRecord> out(endpoint ? 2 : 1);
  auto fill_common = [&](immunizer::v1::CallRecord& r, uint64_t seq) {
    r.mutable_id()->set_app(o.app);
    r.mutable_id()->set_instance(o.instance);
    r.mutable_id()->set_seq(seq);
    r.set_timestamp_unix_nanos(o.timestamp_unix_nanos);
    r.set_duration_nanos(o.duration_nanos);
    r.mutable_principal()->set_session(latin1_to_utf8(req.session()));
    r.mutable_principal()->set_ip(o.ip);
    if (!o.trace.empty()) {
      auto* l = r.add_labels();
      l->set_key("trace");
      l->set_value(o.trace);
    }
  };
  auto add_arg = [](immunizer::v1::CallRecord& r, std::string name, immunizer::v1::Value v) {
    auto* a = r.add_arguments();
    a->set_name(std::move(name));
    *a->mutable_value() = std::move(v);
  };

  auto& outer = out[0];
  fill_common(outer, o.seq);
  outer.set_call("http.request");
  add_arg(outer, "method", string_value(req.method));
  add_arg(outer, "path", string_value(req.path));
  add_arg(outer, "query", string_value(req.query));
  immunizer::v1::Value headers;
  std::map<std::string, std::string> by_name;  // one entry per name (the last), sorted
  for (const auto& [k, v] : req.headers) {
    std::string name = lower(k);
    if (name == "cookie" || name == "content-length") continue;
    by_name[latin1_to_utf8(name)] = latin1_to_utf8(v);
  }
  auto* fields = headers.mutable_map_value()->mutable_fields();
  for (auto& [k, v] : by_name) {
    auto* f = fields->Add();
    f->set_key(k);
    f->mutable_value()->set_string_value(std::move(v));
  }
  add_arg(outer, "headers", std::move(headers));
  immunizer::v1::Value body_length;
  body_length.set_int_value(static_cast<int64_t>(req.body.size()));
  add_arg(outer, "body_length", std::move(body_length));
  outer.mutable_result()->set_int_value(status);

  if (endpoint) {
    auto& inner = out[1];
    fill_common(inner, o.seq + 1);
    inner.set_call(latin1_to_utf8(req.path));
    inner.set_context("http.request");
    for (auto& [k, v] : parse_params(req.query)) add_arg(inner, latin1_to_utf8(k), string_value(v));
    if (!req.body.empty() &&
        (req.header("content-type").empty() ||
         req.header("content-type").find("x-www-form-urlencoded") != std::string_view::npos)) {
      for (auto& [k, v] : parse_params(req.body))
        add_arg(inner, latin1_to_utf8(k), string_value(v));
    }
    inner.mutable_result()->set_int_value(status);
  }
  return out;
}

}  // namespace immunizer::monitor::csic
