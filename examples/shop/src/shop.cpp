#include "immunizer/shop/shop.hpp"


#include "immunizer/monitor/csic.hpp"

namespace immunizer::shop {

namespace csic = immunizer::monitor::csic;

std::string session_from_cookie(const std::string& cookie) {
  const std::string name = "JSESSIONID=";
  size_t at = 0;
  while ((at = cookie.find(name, at)) != std::string::npos) {
    if (at == 0 || cookie[at - 1] == ' ' || cookie[at - 1] == ';') {
      const size_t begin = at + name.size();
      const size_t end = cookie.find(';', begin);
      return cookie.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    }
    at += name.size();
  }
  return {};
}

Shop::Shop(std::shared_ptr<sensor::Sensor> sensor, std::shared_ptr<effector::Effector> effector, ShopOptions opt)
    : sensor_(std::move(sensor)), effector_(std::move(effector)), opt_(opt) {}

void Shop::install(httplib::Server& server) {
  auto h = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
  server.Get(".*", h);
  server.Post(".*", h);
  server.Put(".*", h);
}

void Shop::serve_page(const std::string& path, const std::string& method, httplib::Response& res) {
  res.status = 200;
  res.set_content("<!doctype html><html><head><title>Tienda</title></head><body><h1>Tienda</h1><p>" +
                      method + " " + path + ": ok</p></body></html>",
                  "text/html; charset=utf-8");
}

void Shop::handle(const httplib::Request& req, httplib::Response& res) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  std::string ip = req.remote_addr;
  if (opt_.trust_forwarded_for && req.has_header("X-Forwarded-For")) {
    ip = req.get_header_value("X-Forwarded-For");
    ip = ip.substr(0, ip.find(','));
  }
  const std::string session = session_from_cookie(req.get_header_value("Cookie"));
  const std::string trace = req.get_header_value("X-Immunizer-Trace");
  // The raw query as the client sent it (httplib keeps the target; params are decoded).
  const size_t q = req.target.find('?');
  const std::string raw_query = q == std::string::npos ? "" : req.target.substr(q + 1);
  const bool endpoint = csic::is_shop_endpoint(req.path);
  // The shop's static assets (images, style sheet) exist too; anything else is a 404.
  const bool asset = !endpoint && req.path.rfind("/tienda1/", 0) == 0 &&
                     (req.path.ends_with(".gif") || req.path.ends_with(".jpg") || req.path.ends_with(".css"));
  const sensor::Principal principal{"", session, ip};

  if (!sensor_) {  // uninstrumented baseline
    if (endpoint || asset) {
      counters_.ok.fetch_add(1, std::memory_order_relaxed);
      serve_page(req.path, req.method, res);
    } else {
      counters_.not_found.fetch_add(1, std::memory_order_relaxed);
      res.status = 404;
    }
    return;
  }

  sensor::CallScope outer(*sensor_, "http.request");
  // Arguments are built only for calls the sensor records (sampling may skip this one), and
  // straight into the record: no intermediate containers, no copies of plain ASCII text.
  if (outer.recording()) {
    std::string s1, s2;  // scratch for the rare non-ASCII value
    outer.principal(principal)
        .arg("method", std::string_view(req.method))
        .arg("path", csic::latin1_to_utf8_view(req.path, s1))
        .arg("query", csic::latin1_to_utf8_view(raw_query, s2))
        .arg_with("headers", [&](sensor::ValueWriter& w) {
          auto m = w.map();
          std::string lk, uv;
          for (const auto& [k, v] : req.headers) {
            lk.assign(k);
            for (auto& c : lk) {
              if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            }
            if (lk == "cookie" || lk == "content-length" || lk.starts_with("x-immunizer-") || lk == "x-forwarded-for" ||
                lk == "remote_addr" || lk == "remote_port" || lk == "local_addr" || lk == "local_port")
              continue;
            m.field(lk, csic::latin1_to_utf8_view(v, uv));
          }
        })
        .arg("body_length", static_cast<int64_t>(req.body.size()));
    if (!trace.empty()) {
      // A client tracing its requests gets the record id back (httplib's header handling
      // is costly enough per request that untraced traffic does not pay for it).
      outer.label("trace", trace);
      const auto rid = outer.id();
      std::string record_ref;
      record_ref.reserve(rid.app.size() + rid.instance.size() + 24);
      record_ref.append(rid.app).push_back('/');
      record_ref.append(rid.instance).push_back('/');
      record_ref.append(std::to_string(rid.seq));
      res.set_header("X-Immunizer-Record", record_ref);
    }
  }

  if (effector_ && !effector_->allows(principal, "http.request")) {
    counters_.blocked.fetch_add(1, std::memory_order_relaxed);
    // Recorded for the audit trail, marked so the monitor does not score our own denial.
    outer.label("immunizer.denied", "effector");
    outer.result(int64_t{403});
    res.status = 403;
    res.set_content("blocked by Immunizer\n", "text/plain");
    return;
  }
  if (asset) {
    outer.result(int64_t{200});
    counters_.ok.fetch_add(1, std::memory_order_relaxed);
    serve_page(req.path, req.method, res);
    return;
  }
  if (!endpoint) {
    counters_.not_found.fetch_add(1, std::memory_order_relaxed);
    outer.result(int64_t{404});
    res.status = 404;
    res.set_content("not found\n", "text/plain");
    return;
  }
  {
    sensor::CallScope inner(*sensor_, req.path);
    if (inner.recording()) {
      inner.principal(principal);
      if (!trace.empty()) inner.label("trace", trace);
      auto param = [&](std::string_view k, std::string_view v) { inner.arg(k, v); };
      csic::for_each_param(raw_query, param);
      if (!req.body.empty()) {
        const std::string ctype = req.get_header_value("Content-Type");
        if (ctype.empty() || ctype.find("x-www-form-urlencoded") != std::string::npos) csic::for_each_param(req.body, param);
      }
    }
    if (effector_ && !effector_->allows(principal, req.path)) {
      counters_.blocked.fetch_add(1, std::memory_order_relaxed);
      inner.label("immunizer.denied", "effector");
      inner.error("Denied", "call denied by Immunizer");
      outer.label("immunizer.denied", "effector");
      outer.result(int64_t{403});
      res.status = 403;
      res.set_content("blocked by Immunizer\n", "text/plain");
      return;
    }
    inner.result(int64_t{200});
  }
  outer.result(int64_t{200});
  counters_.ok.fetch_add(1, std::memory_order_relaxed);
  serve_page(req.path, req.method, res);
}

}  // namespace immunizer::shop
