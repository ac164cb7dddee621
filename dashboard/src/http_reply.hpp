// Private to the dashboard's HTTP routes (api.cpp, api_incidents.cpp): JSON answers (never
// cached), JSON error answers, and the JSON object body of a request. Stateless; safe on any
// HTTP worker thread.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "immunizer/dashboard/json.hpp"

namespace immunizer::dashboard {

inline void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(dump(j), "application/json");
}

inline void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

// Parses a JSON object body; on failure answers 400 and returns nullopt.
inline std::optional<nlohmann::json> json_body(const httplib::Request& req,
                                               httplib::Response& res) {
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    send_error(res, 400, "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

// A string member of a JSON object; "" when absent or not a string.
inline std::string string_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace immunizer::dashboard
