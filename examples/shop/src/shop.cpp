#include "immunizer/shop/shop.hpp"

#include "immunizer/monitor/csic.hpp"

namespace immunizer::shop {

namespace csic = immunizer::monitor::csic;

std::string session_from_cookie(const std::string& cookie) {
  return std::string(integrations::cookie_value(cookie, "JSESSIONID"));
}

integrations::http::MiddlewareOptions middleware_options(const ShopOptions& opt) {
  integrations::http::MiddlewareOptions o;
  o.principal = opt.principal;
  // CSIC 2010 requests are Latin-1: parameters decoded and converted as the monitor's CSIC
  // reader does, so live and offline records agree.
  o.params = [](std::string_view encoded, const integrations::http::ParamSink& f) { csic::for_each_param(encoded, f); };
  o.text = [](std::string_view s, std::string& scratch) { return csic::latin1_to_utf8_view(s, scratch); };
  o.endpoint = [](const httplib::Request& req) { return csic::is_shop_endpoint(req.path) ? req.path : std::string(); };
  o.json_body = false;  // the shop's forms are url-encoded; other bodies are not recorded
  o.raw_body = false;
  o.excluded_headers = {"cookie", "content-length", "x-forwarded-for"};
  return o;
}

Shop::Shop(std::shared_ptr<sensor::Sensor> sensor, std::shared_ptr<effector::Effector> effector, ShopOptions opt) {
  if (sensor || effector)
    middleware_ = std::make_unique<integrations::http::Middleware>(std::move(sensor), std::move(effector), middleware_options(opt));
}

void Shop::install(httplib::Server& server) {
  if (middleware_) middleware_->install(server);
  auto h = [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); };
  server.Get(".*", h);
  server.Post(".*", h);
  server.Put(".*", h);
}

void Shop::handle(const httplib::Request& req, httplib::Response& res) {
  if (!middleware_) return serve(req, res);
  if (middleware_->pre_routing(req, res) == httplib::Server::HandlerResponse::Unhandled) serve(req, res);
  middleware_->log(req, res);
}

void Shop::serve(const httplib::Request& req, httplib::Response& res) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  const bool endpoint = csic::is_shop_endpoint(req.path);
  // The shop's static assets (images, style sheet) exist too; anything else is a 404.
  const bool asset = !endpoint && req.path.rfind("/tienda1/", 0) == 0 &&
                     (req.path.ends_with(".gif") || req.path.ends_with(".jpg") || req.path.ends_with(".css"));
  if (!endpoint && !asset) {
    counters_.not_found.fetch_add(1, std::memory_order_relaxed);
    res.status = 404;
    res.set_content("not found\n", "text/plain");
    return;
  }
  counters_.ok.fetch_add(1, std::memory_order_relaxed);
  res.status = 200;
  res.set_content("<!doctype html><html><head><title>Tienda</title></head><body><h1>Tienda</h1><p>" + req.method + " " +
                      req.path + ": ok</p></body></html>",
                  "text/html; charset=utf-8");
}

}  // namespace immunizer::shop
