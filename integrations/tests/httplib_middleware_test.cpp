#include "immunizer/integrations/httplib_middleware.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_support.hpp"

using namespace immunizer;
using namespace immunizer::integrations;
using namespace std::chrono_literals;
using testing_bed = integrations::testing::Bed;
using integrations::testing::arg;
using integrations::testing::field;
using integrations::testing::find_call;
using integrations::testing::label;

namespace {

// A real httplib server on 127.0.0.1 with the middleware installed.
struct Server {
  httplib::Server svr;
  std::thread th;
  int port = 0;
  std::atomic<int> handled{0};
  http::Middleware mw;

  Server(testing_bed& bed, http::MiddlewareOptions o) : mw(bed.sensor, bed.effector, std::move(o)) {
    mw.install(svr);
    auto h = [this](const httplib::Request& req, httplib::Response& res) {
      ++handled;
      // The handler's own call nests under the middleware's.
      sensor::CallScope own(*mw_sensor, "load_order");
      res.set_content("ok " + req.path, "text/plain");
    };
    svr.Get(".*", h);
    svr.Post(".*", h);
    port = svr.bind_to_any_port("127.0.0.1");
    th = std::thread([this] { svr.listen_after_bind(); });
  }
  ~Server() {
    svr.stop();
    th.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    return c;
  }
  static inline sensor::Sensor* mw_sensor = nullptr;
};

http::MiddlewareOptions options() {
  http::MiddlewareOptions o;
  o.routes = {{"POST", "/orders/:id/items/:item"}, {"", "/files/*"}};
  o.principal.session_cookies = {"sid"};
  o.principal.user_headers = {"X-User"};
  return o;
}

}  // namespace

TEST(HttplibMiddleware, RecordsRequestAndRouteCallWithTypedArguments) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  Server s(bed, options());
  auto c = s.client();
  httplib::Headers h{{"Cookie", "a=1; sid=S-42"},
                     {"X-User", "alice"},
                     {"Authorization", "Bearer secret"},
                     {"User-Agent", "t/1"},
                     {"X-Immunizer-Trace", "tr:1"}};
  auto res = c.Post(
      "/orders/17/items/a%20b?coupon=X1&n=2", h,
      R"({"qty": 3, "price": 9.5, "gift": true, "note": null, "to": {"name": "Bo", "tags": ["a", 1]}})",
      "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->has_header("X-Immunizer-Record"));
  const auto recs = bed.records(3);
  ASSERT_EQ(recs.size(), 3u);
  const auto* outer = find_call(recs, "http.request");
  const auto* inner = find_call(recs, "/orders/:id/items/:item");
  const auto* own = find_call(recs, "load_order");
  ASSERT_TRUE(outer && inner && own);
  EXPECT_EQ(inner->context(), "http.request");
  EXPECT_EQ(own->context(), "http.request>/orders/:id/items/:item");
  EXPECT_EQ(outer->principal().ip(), "127.0.0.1");
  EXPECT_EQ(outer->principal().session(), "S-42");
  EXPECT_EQ(outer->principal().user(), "alice");
  EXPECT_EQ(inner->principal().session(), "S-42");
  EXPECT_EQ(outer->result().int_value(), 200);
  EXPECT_EQ(inner->result().int_value(), 200);
  EXPECT_EQ(label(*outer, "trace"), "tr:1");
  EXPECT_EQ(arg(*outer, "method")->string_value(), "POST");
  EXPECT_EQ(arg(*outer, "path")->string_value(),
            "/orders/17/items/a b");  // httplib decodes the path
  EXPECT_EQ(arg(*outer, "query")->string_value(), "coupon=X1&n=2");
  EXPECT_GT(arg(*outer, "body_length")->int_value(), 50);
  const auto& headers = arg(*outer, "headers")->map_value();
  EXPECT_EQ(field(headers, "user-agent").string_value(), "t/1");
  for (const char* hidden :
       {"cookie", "authorization", "content-length", "x-immunizer-trace", "remote_addr"})
    EXPECT_FALSE(v1::find_field(headers, hidden) != nullptr) << hidden;
  // Path parameters, query, JSON body: typed.
  EXPECT_EQ(arg(*inner, "id")->string_value(), "17");
  EXPECT_EQ(arg(*inner, "item")->string_value(), "a b");
  EXPECT_EQ(arg(*inner, "coupon")->string_value(), "X1");
  EXPECT_EQ(arg(*inner, "qty")->int_value(), 3);
  EXPECT_DOUBLE_EQ(arg(*inner, "price")->double_value(), 9.5);
  EXPECT_TRUE(arg(*inner, "gift")->bool_value());
  EXPECT_TRUE(arg(*inner, "note")->null_value());
  const auto& to = arg(*inner, "to")->map_value();
  EXPECT_EQ(field(to, "name").string_value(), "Bo");
  ASSERT_EQ(field(to, "tags").list_value().items_size(), 2);
  EXPECT_EQ(field(to, "tags").list_value().items(1).int_value(), 1);
}

TEST(HttplibMiddleware, FormFieldsAndUnroutedRequests) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  Server s(bed, options());
  auto c = s.client();
  auto res = c.Post("/files/a/b.txt?x=1", "name=Vino+Rioja&cantidad=55",
                    "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  auto res2 = c.Get("/elsewhere?q=1");  // no route: only the request-level record
  ASSERT_TRUE(res2);
  EXPECT_EQ(res2->status, 200);
  const auto recs = bed.records(5);
  ASSERT_EQ(recs.size(), 5u);  // 2 outer, 1 route, 2 handler calls
  const auto* files = find_call(recs, "/files/*");
  ASSERT_TRUE(files);
  ASSERT_EQ(files->arguments_size(), 4);
  EXPECT_EQ(files->arguments(0).name(), "*");
  EXPECT_EQ(files->arguments(0).value().string_value(), "a/b.txt");
  EXPECT_EQ(files->arguments(1).name(), "x");
  EXPECT_EQ(files->arguments(2).value().string_value(), "Vino Rioja");
  EXPECT_EQ(files->arguments(3).name(), "cantidad");
  size_t outer = 0;
  for (const auto& r : recs) outer += r.call() == "http.request";
  EXPECT_EQ(outer, 2u);
}

TEST(HttplibMiddleware, HostileJsonIsBoundedAndInvalidJsonKeptAsText) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  auto o = options();
  o.max_json_depth = 4;
  o.max_json_elements = 50;
  Server s(bed, o);
  auto c = s.client();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  ASSERT_TRUE(c.Post("/orders/1/items/2", "{\"a\": " + deep + ", \"b\": 1}", "application/json"));
  std::string many = "{\"k\": [";
  for (int i = 0; i < 1000; ++i) many += std::to_string(i) + ",";
  many += "0]}";
  ASSERT_TRUE(c.Post("/orders/1/items/3", many, "application/json"));
  ASSERT_TRUE(c.Post("/orders/1/items/4", "{\"a\": ", "application/json"));
  const auto recs = bed.records(9);
  std::vector<const v1::CallRecord*> inner(
      3, nullptr);  // by the item path parameter (records may come in any order)
  for (const auto& r : recs)
    if (r.call() == "/orders/:id/items/:item")
      inner.at(std::stoi(arg(r, "item")->string_value()) - 2) = &r;
  ASSERT_TRUE(inner[0] && inner[1] && inner[2]);
  ASSERT_TRUE(arg(*inner[0], "b") && arg(*inner[1], "k") && arg(*inner[2], "body"));
  EXPECT_EQ(label(*inner[0], "json.truncated"), "true");
  EXPECT_EQ(arg(*inner[0], "b")->int_value(), 1);
  EXPECT_EQ(label(*inner[1], "json.truncated"), "true");
  EXPECT_LE(arg(*inner[1], "k")->list_value().items_size(), 50);
  EXPECT_EQ(label(*inner[2], "json.invalid"), "true");
  EXPECT_EQ(arg(*inner[2], "body")->string_value(), "{\"a\": ");
}

TEST(HttplibMiddleware, DeniesBeforeTheHandlerAndRecordsTheDenial) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  Server s(bed, options());
  bed.block(v1::PRINCIPAL_FIELD_SESSION, "BAD");
  auto c = s.client();
  auto res = c.Post("/orders/1/items/2?z=1", {{"Cookie", "sid=BAD"}}, "a=1",
                    "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_EQ(res->get_header_value("Connection"),
            "close");  // the unread body cannot be parsed as a request
  EXPECT_EQ(s.handled.load(), 0);
  // Another session on a new connection is served.
  auto c2 = s.client();
  auto ok = c2.Get("/orders/x", {{"Cookie", "sid=GOOD"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(s.handled.load(), 1);
  EXPECT_EQ(s.mw.stats().denied, 1u);
  const auto recs = bed.records(3);
  const v1::CallRecord* denied = nullptr;
  for (const auto& r : recs)
    if (r.call() == "http.request" && r.principal().session() == "BAD") denied = &r;
  ASSERT_TRUE(denied);
  EXPECT_EQ(label(*denied, "immunizer.denied"), "effector");
  EXPECT_EQ(denied->result().int_value(), 403);
  EXPECT_EQ(arg(*denied, "body_length")->int_value(),
            3);  // from Content-Length: the body was not read
}

TEST(HttplibMiddleware, DeniesOneRouteCallOnly) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  Server s(bed, options());
  bed.block(v1::PRINCIPAL_FIELD_IP, "127.0.0.1", "/orders/:id/items/:item");
  auto c = s.client();
  auto res = c.Post("/orders/1/items/2?z=1", "", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  auto other = c.Get("/files/x");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  const auto recs = bed.records(4);
  const auto* inner = find_call(recs, "/orders/:id/items/:item");
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->error().type(), "Denied");
  EXPECT_EQ(label(*inner, "immunizer.denied"), "effector");
  EXPECT_EQ(arg(*inner, "z")->string_value(), "1");
}

TEST(HttplibMiddleware, SpoofedForwardedForFromAnUntrustedPeerNeitherSetsNorBlocksTheAddress) {
  testing_bed bed;
  Server::mw_sensor = bed.sensor.get();
  // The victim's address is blocked; an attacker claims it in X-Forwarded-For.
  bed.block(v1::PRINCIPAL_FIELD_IP, "192.0.2.66");
  {
    Server s(bed, options());  // no trusted proxies (the default)
    auto c = s.client();
    auto res = c.Get("/x", {{"X-Forwarded-For", "192.0.2.66"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    const auto recs = bed.records(2);
    const auto* outer = find_call(recs, "http.request");
    ASSERT_TRUE(outer);
    EXPECT_EQ(outer->principal().ip(), "127.0.0.1");
  }
  {
    auto o = options();
    o.principal.proxies.trusted_proxies = {"127.0.0.0/8"};
    Server s(bed, o);  // behind a trusted proxy on loopback the header counts
    auto c = s.client();
    auto res = c.Get("/x", {{"X-Forwarded-For", "192.0.2.66"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403);
    // The Forwarded header is not the configured one: ignored.
    auto res2 = c.Get("/x", {{"Forwarded", "for=192.0.2.66"}});
    ASSERT_TRUE(res2);
    EXPECT_EQ(res2->status, 200);
  }
}

TEST(HttplibMiddleware, UrlDecoding) {
  EXPECT_EQ(http::url_decode("a%20b+c%zz%4", true), "a b c%zz%4");
  EXPECT_EQ(http::url_decode("a+b%2B", false), "a+b+");
  std::vector<std::pair<std::string, std::string>> got;
  http::for_each_param("a=1&&b&c=%41=",
                       [&](std::string_view k, std::string_view v) { got.emplace_back(k, v); });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"b", ""}));
  EXPECT_EQ(got[2], (std::pair<std::string, std::string>{"c", "A="}));
}
