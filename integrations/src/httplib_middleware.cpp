#include "immunizer/integrations/httplib_middleware.hpp"

#include <nlohmann/json.hpp>

#include <optional>

#include "immunizer/common/split.hpp"

namespace immunizer::integrations::http {

using json = nlohmann::json;

namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A JSON value written as a sensor Value (found by argument-dependent lookup).
struct JsonValue {
  const json* j;
};

}  // namespace

}  // namespace immunizer::integrations::http

namespace immunizer::integrations::http {
namespace {
template <typename T, auto Put>
void put_scalar(sensor::ValueWriter& w, const json& j) {
  (w.*Put)(j.get<T>());
}
using W = sensor::ValueWriter;
struct ScalarWriter {
  json::value_t type;
  void (*put)(W& w, const json& j);
};
// The bools and numbers: the C++ type each is read as and the ValueWriter kind it becomes.
constexpr ScalarWriter kScalarWriters[] = {
    {json::value_t::boolean, put_scalar<bool, &W::boolean>},
    {json::value_t::number_integer, put_scalar<int64_t, &W::integer>},
    {json::value_t::number_unsigned, put_scalar<uint64_t, &W::unsigned_integer>},
    {json::value_t::number_float, put_scalar<double, &W::real>},
};

void immunizer_sensor_value(sensor::ValueWriter& w, const JsonValue& v) {
  const json& j = *v.j;
  for (const ScalarWriter& s : kScalarWriters)
    if (s.type == j.type()) return s.put(w, j);
  switch (j.type()) {
    case json::value_t::null:
      w.null();
      break;
    case json::value_t::string:
      w.string(j.get_ref<const std::string&>());
      break;
    case json::value_t::array: {
      auto l = w.list();
      for (const auto& e : j) l.item(JsonValue{&e});
      break;
    }
    case json::value_t::object: {
      auto m = w.map();
      for (const auto& [k, e] : j.items()) m.field(k, JsonValue{&e});
      break;
    }
    case json::value_t::binary: {
      const auto& b = j.get_binary();
      w.bytes(b.data(), b.size());
      break;
    }
    default:
      w.null();
      break;
  }
}
}  // namespace

std::string url_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

void for_each_param(std::string_view encoded, const ParamSink& f) {
  common::for_each_part(encoded, '&', [&](std::string_view pair) {
    if (pair.empty()) return;
    const size_t eq = pair.find('=');
    const std::string k = url_decode(pair.substr(0, eq), true);
    const std::string v =
        eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1), true);
    f(k, v);
  });
}

namespace {
// The open records of the request this worker thread is serving (pre_routing -> log).
struct Pending {
  const void* owner = nullptr;
  const httplib::Request* req = nullptr;
  std::optional<sensor::CallScope> outer, inner;
  bool denied = false;        // answered 403 by pre_routing (body not read)
  bool inner_denied = false;  // the endpoint call was the one denied

  void close() noexcept {
    inner.reset();
    outer.reset();
    owner = nullptr;
    req = nullptr;
    denied = inner_denied = false;
  }
};

thread_local Pending tl_pending;
}  // namespace

Middleware::Middleware(std::shared_ptr<sensor::Sensor> sensor,
                       std::shared_ptr<effector::Effector> effector, MiddlewareOptions options)
    : sensor_(std::move(sensor)),
      effector_(std::move(effector)),
      opt_(std::move(options)),
      trust_(opt_.principal.proxies) {
  for (auto& h : opt_.excluded_headers) h = lower(h);
  for (const auto& r : opt_.routes)
    if (r.pattern.empty() || r.pattern.front() != '/')
      throw std::invalid_argument("route pattern '" + r.pattern + "' must start with '/'");
}

void Middleware::install(httplib::Server& server) {
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return pre_routing(req, res);
  });
  // The post-routing handler runs once the status is final and before the response is
  // written: the recorded duration is the server's work, not the client's socket.
  server.set_post_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) { log(req, res); });
}

MiddlewareStats Middleware::stats() const {
  return {requests_.load(std::memory_order_relaxed), denied_.load(std::memory_order_relaxed)};
}

sensor::Principal Middleware::principal(const httplib::Request& req) const {
  sensor::Principal p;
  std::vector<std::string_view> fwd;
  if (trust_.any()) {
    const char* name =
        trust_.header() == ForwardedHeader::kForwarded ? "Forwarded" : "X-Forwarded-For";
    const auto range = req.headers.equal_range(name);
    for (auto it = range.first; it != range.second; ++it) fwd.emplace_back(it->second);
  }
  p.ip = trust_.client_address(req.remote_addr, fwd);
  const auto& po = opt_.principal;
  if (!po.session_cookies.empty()) {
    const auto range = req.headers.equal_range("Cookie");
    for (const auto& name : po.session_cookies) {
      for (auto it = range.first; it != range.second && p.session.empty(); ++it)
        p.session = std::string(cookie_value(it->second, name));
      if (!p.session.empty()) break;
    }
  }
  for (const auto& h : po.session_headers) {
    if (!p.session.empty()) break;
    if (req.has_header(h.c_str())) p.session = req.get_header_value(h.c_str());
  }
  for (const auto& h : po.user_headers) {
    if (req.has_header(h.c_str())) {
      p.user = req.get_header_value(h.c_str());
      if (!p.user.empty()) break;
    }
  }
  return p;
}

std::string Middleware::endpoint_of(const httplib::Request& req, const ParamSink* on_param) const {
  const std::string_view path = req.path;
  for (const auto& r : opt_.routes) {
    if (!r.method.empty() && r.method != req.method) continue;
    std::string_view pat = r.pattern, rest = path;
    bool ok = true;
    std::vector<std::pair<std::string_view, std::string_view>> caught;
    while (ok && !pat.empty()) {
      if (pat == "/*" || pat == "*") {
        caught.emplace_back("*", rest.empty() ? rest : rest.substr(rest.front() == '/' ? 1 : 0));
        rest = {};
        pat = {};
        break;
      }
      // one segment each
      if (pat.front() != '/' || rest.empty() || rest.front() != '/') {
        ok = false;
        break;
      }
      pat.remove_prefix(1);
      rest.remove_prefix(1);
      const size_t pe = std::min(pat.find('/'), pat.size()),
                   re = std::min(rest.find('/'), rest.size());
      const std::string_view ps = pat.substr(0, pe), rs = rest.substr(0, re);
      if (!ps.empty() && ps.front() == ':') {
        if (rs.empty())
          ok = false;
        else
          caught.emplace_back(ps.substr(1), rs);
      } else if (ps != rs) {
        ok = false;
      }
      pat.remove_prefix(pe);
      rest.remove_prefix(re);
    }
    if (!ok || !rest.empty()) continue;
    if (on_param)
      for (const auto& [k, v] : caught) (*on_param)(k, url_decode(v, false));
    return r.pattern;
  }
  return opt_.endpoint ? opt_.endpoint(req) : std::string();
}

void Middleware::record_inner_args(sensor::CallScope& inner, const httplib::Request& req,
                                   bool body_read) const {
  const ParamSink sink = [&](std::string_view k, std::string_view v) { inner.arg(k, v); };
  if (!body_read) return;
  if (req.body.empty() && req.files.empty()) return;
  const std::string ctype = lower(req.get_header_value("Content-Type"));
  if (!req.files.empty()) {  // multipart/form-data, parsed by httplib
    for (const auto& file : req.files) {
      // Not a structured binding: clang before 16 cannot capture one in the lambda below.
      const std::string& name = file.first;
      const auto& part = file.second;
      if (part.filename.empty()) {
        inner.arg(name, part.content);
      } else {
        inner.arg_with(name, [&](sensor::ValueWriter& w) {
          auto m = w.map();
          m.field("filename", part.filename).field("content_type", part.content_type);
          m.field("size", static_cast<int64_t>(part.content.size()));
        });
      }
    }
    return;
  }
  if (ctype.empty() || ctype.find("x-www-form-urlencoded") != std::string::npos) {
    if (opt_.params)
      opt_.params(req.body, sink);
    else
      for_each_param(req.body, sink);
    return;
  }
  if (opt_.json_body && ctype.find("json") != std::string::npos) {
    size_t elements = 0;
    bool truncated = false;
    const int max_depth = opt_.max_json_depth;
    const size_t max_elements = opt_.max_json_elements;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json&) {
      if (depth > max_depth ||
          ((ev == json::parse_event_t::value || ev == json::parse_event_t::object_start ||
            ev == json::parse_event_t::array_start) &&
           ++elements > max_elements)) {
        truncated = true;
        return false;
      }
      return true;
    };
    const json j = json::parse(req.body, cb, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      inner.label("json.invalid", "true");
      inner.arg("body", std::string_view(req.body));
      return;
    }
    if (truncated) inner.label("json.truncated", "true");
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) inner.arg(k, JsonValue{&v});
    } else {
      inner.arg("body", JsonValue{&j});
    }
    return;
  }
  // Anything else: the body as bytes (the sensor's caps apply).
  if (opt_.raw_body) inner.arg("body", sensor::Bytes(req.body.data(), req.body.size()));
}

void Middleware::record_outer(sensor::CallScope& outer, const httplib::Request& req,
                              httplib::Response& res, const sensor::Principal& who,
                              const std::string& trace) const {
  const size_t q = req.target.find('?');
  const std::string_view raw_query =
      q == std::string::npos ? std::string_view() : std::string_view(req.target).substr(q + 1);
  std::string s1, s2;
  auto text = [&](std::string_view v, std::string& scratch) {
    return opt_.text ? opt_.text(v, scratch) : v;
  };
  outer.principal(who)
      .arg("method", std::string_view(req.method))
      .arg("path", text(req.path, s1))
      .arg("query", text(raw_query, s2));
  if (opt_.record_headers) {
    outer.arg_with("headers", [&](sensor::ValueWriter& w) {
      auto m = w.map();
      std::string lk, uv;
      for (const auto& [k, v] : req.headers) {
        lk.assign(k);
        for (auto& c : lk)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (lk.starts_with("x-immunizer-") || lk == "remote_addr" || lk == "remote_port" ||
            lk == "local_addr" || lk == "local_port")
          continue;
        bool excluded = false;
        for (const auto& e : opt_.excluded_headers) excluded = excluded || e == lk;
        if (!excluded) m.field(lk, text(v, uv));
      }
    });
  }
  if (!trace.empty()) {
    outer.label("trace", trace);
    const auto rid = outer.id();
    std::string ref;
    ref.reserve(rid.app.size() + rid.instance.size() + 24);
    ref.append(rid.app).push_back('/');
    ref.append(rid.instance).push_back('/');
    ref.append(std::to_string(rid.seq));
    res.set_header("X-Immunizer-Record", ref);
  }
}

void Middleware::record_inner_start(
    sensor::CallScope& inner, const httplib::Request& req, const sensor::Principal& who,
    const std::string& trace,
    const std::vector<std::pair<std::string, std::string>>& path_params) const {
  inner.principal(who);
  if (!trace.empty()) inner.label("trace", trace);
  for (const auto& [k, v] : path_params) inner.arg(k, std::string_view(v));
  const size_t q = req.target.find('?');
  if (q != std::string::npos) {
    const std::string_view raw_query = std::string_view(req.target).substr(q + 1);
    const ParamSink sink = [&](std::string_view k, std::string_view v) { inner.arg(k, v); };
    if (opt_.params)
      opt_.params(raw_query, sink);
    else
      for_each_param(raw_query, sink);
  }
}

httplib::Server::HandlerResponse Middleware::deny(const httplib::Request& req,
                                                  httplib::Response& res) {
  Pending& p = tl_pending;
  denied_.fetch_add(1, std::memory_order_relaxed);
  p.denied = true;
  if (p.outer) p.outer->label("immunizer.denied", "effector");
  res.status = 403;
  res.set_content(opt_.denied_body, "text/plain");
  if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding"))
    res.set_header("Connection", "close");
  return httplib::Server::HandlerResponse::Handled;
}

httplib::Server::HandlerResponse Middleware::pre_routing(const httplib::Request& req,
                                                         httplib::Response& res) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  Pending& p = tl_pending;
  if (p.owner) p.close();  // a previous request whose logger never ran
  p.owner = this;
  p.req = &req;
  const sensor::Principal who = principal(req);
  const std::string trace =
      opt_.trace_header.empty() ? std::string() : req.get_header_value(opt_.trace_header.c_str());
  if (sensor_ && !opt_.request_call.empty()) {
    p.outer.emplace(*sensor_, opt_.request_call);
    if (p.outer->recording()) record_outer(*p.outer, req, res, who, trace);
  }
  if (effector_ && !opt_.request_call.empty() && !effector_->allows(who, opt_.request_call))
    return deny(req, res);

  std::vector<std::pair<std::string, std::string>> path_params;
  const ParamSink collect = [&](std::string_view k, std::string_view v) {
    path_params.emplace_back(k, v);
  };
  const std::string endpoint = endpoint_of(req, &collect);
  if (endpoint.empty()) return httplib::Server::HandlerResponse::Unhandled;
  if (sensor_) {
    p.inner.emplace(*sensor_, endpoint);
    if (p.inner->recording()) record_inner_start(*p.inner, req, who, trace, path_params);
  }
  if (effector_ && !effector_->allows(who, endpoint)) {
    p.inner_denied = true;
    if (p.inner) {
      p.inner->label("immunizer.denied", "effector");
      p.inner->error("Denied", "call denied by Immunizer");
    }
    return deny(req, res);
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

void Middleware::log(const httplib::Request& req, const httplib::Response& res) {
  Pending& p = tl_pending;
  if (p.owner != this || p.req != &req)
    return;  // not opened by pre_routing (e.g. a 400 for garbage)
  const auto status = static_cast<int64_t>(res.status);
  if (p.inner) {
    if (p.inner->recording()) record_inner_args(*p.inner, req, !p.denied);
    if (!p.inner_denied) p.inner->result(status);
  }
  if (p.outer && p.outer->recording()) {
    int64_t body_length = static_cast<int64_t>(req.body.size());
    if (p.denied && req.has_header("Content-Length")) {
      const std::string cl = req.get_header_value("Content-Length");
      body_length = 0;
      for (char c : cl) {
        if (c < '0' || c > '9' || body_length > (INT64_MAX - 9) / 10) break;
        body_length = body_length * 10 + (c - '0');
      }
    }
    p.outer->arg("body_length", body_length);
    p.outer->result(status);
  }
  p.close();
}

}  // namespace immunizer::integrations::http
