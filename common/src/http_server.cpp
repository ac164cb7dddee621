#include "immunizer/common/http_server.hpp"

#include <prometheus/text_serializer.h>

#include <stdexcept>

#include "immunizer/common/build_info.hpp"

namespace immunizer::common {

HttpServer::HttpServer(std::string listen, int port, std::shared_ptr<prometheus::Registry> registry)
    : listen_(std::move(listen)), port_(port), registry_(std::move(registry)) {
  if (registry_) register_build_info(*registry_);
  server_.set_tcp_nodelay(true);  // small responses: no Nagle/delayed-ACK stalls on keep-alive
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    prometheus::TextSerializer ser;
    res.set_content(ser.Serialize(registry_->Collect()), "text/plain; version=0.0.4");
  });
  server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(status_mu_);
    res.status = ready_ ? 200 : 503;
    res.set_content(status_ + "\n", "text/plain");
  });
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::set_status(std::string s) {
  std::lock_guard<std::mutex> lock(status_mu_);
  status_ = std::move(s);
}

void HttpServer::start() {
  if (port_ == 0) {
    bound_port_ = server_.bind_to_any_port(listen_.c_str());
  } else {
    bound_port_ = server_.bind_to_port(listen_.c_str(), port_) ? port_ : -1;
  }
  if (bound_port_ <= 0)
    throw std::runtime_error("cannot listen on http " + listen_ + ":" + std::to_string(port_) +
                             " (in use? set http.port)");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
}

void HttpServer::stop() {
  if (thread_.joinable()) {
    server_.stop();
    thread_.join();
  }
}

}  // namespace immunizer::common
