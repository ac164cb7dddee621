#include "immunizer/shop/shop.hpp"
#include "immunizer/v1/call_records.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/v1/records.pb.h"

using namespace immunizer;
using namespace std::chrono_literals;

TEST(Shop, SessionFromCookie) {
  EXPECT_EQ(shop::session_from_cookie("JSESSIONID=ABC123"), "ABC123");
  EXPECT_EQ(shop::session_from_cookie("a=1; JSESSIONID=XYZ; b=2"), "XYZ");
  EXPECT_EQ(shop::session_from_cookie("MYJSESSIONID=no"), "");
  EXPECT_EQ(shop::session_from_cookie(""), "");
}

TEST(Shop, UninstrumentedServesEndpointsAnd404) {
  shop::Shop s(nullptr, nullptr, {});
  httplib::Request req;
  httplib::Response res;
  req.method = "GET";
  req.path = "/tienda1/publico/anadir.jsp";
  s.handle(req, res);
  EXPECT_EQ(res.status, 200);
  httplib::Response res2;
  req.path = "/asf-logo-wide.gif~";
  s.handle(req, res2);
  EXPECT_EQ(res2.status, 404);
}

TEST(Shop, RecordsOuterAndInnerCallsWithPrincipalAndTrace) {
  common::MockBroker broker(1, {{"immunizer.calls", 1}});
  sensor::SensorConfig cfg;
  cfg.app = "shop";
  cfg.instance = "t";
  cfg.bootstrap = broker.bootstrap();
  cfg.cpu_budget = 1.0;
  auto sensor = sensor::Sensor::create(cfg);
  shop::ShopOptions opt;
  opt.principal.proxies.trusted_proxies = {"127.0.0.1/32"};
  shop::Shop s(sensor, nullptr, opt);
  httplib::Request req;
  req.method = "POST";
  req.path = "/tienda1/publico/anadir.jsp";
  req.target = "/tienda1/publico/anadir.jsp?id=3";
  req.remote_addr = "127.0.0.1";
  req.headers.emplace("Cookie", "JSESSIONID=S1");
  req.headers.emplace("X-Forwarded-For", "192.0.2.10");
  req.headers.emplace("X-Immunizer-Trace", "n:7");
  req.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  req.headers.emplace("User-Agent", "Mozilla/5.0");
  req.body = "nombre=Vino+Rioja&cantidad=55";
  httplib::Response res;
  s.handle(req, res);
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.has_header("X-Immunizer-Record"));
  ASSERT_TRUE(sensor->flush(10s));

  common::KafkaSettings ks;
  ks.bootstrap = broker.bootstrap();
  auto c = common::make_kafka_consumer(ks, "t", {"immunizer.calls"}, nullptr);
  std::vector<v1::CallRecord> recs;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (recs.size() < 2 && std::chrono::steady_clock::now() < deadline)
    for (const auto& m : c->poll(10, 200ms)) ASSERT_TRUE(v1::parse_call_records(m.payload, &recs));
  ASSERT_EQ(recs.size(), 2u);
  // The inner call ends first, so it is produced first.
  const auto& inner = recs[0].call() == "http.request" ? recs[1] : recs[0];
  const auto& outer = recs[0].call() == "http.request" ? recs[0] : recs[1];
  EXPECT_EQ(outer.context(), "");
  EXPECT_EQ(inner.call(), "/tienda1/publico/anadir.jsp");
  EXPECT_EQ(inner.context(), "http.request");
  EXPECT_EQ(outer.principal().session(), "S1");
  EXPECT_EQ(outer.principal().ip(), "192.0.2.10");
  ASSERT_NE(v1::find_label(inner, "trace"), nullptr);
  EXPECT_EQ(*v1::find_label(inner, "trace"), "n:7");
  ASSERT_EQ(inner.arguments_size(), 3);
  EXPECT_EQ(inner.arguments(0).name(), "id");
  EXPECT_EQ(inner.arguments(1).value().string_value(), "Vino Rioja");
  EXPECT_EQ(inner.arguments(2).name(), "cantidad");
  EXPECT_EQ(outer.result().int_value(), 200);
  bool saw_headers = false;
  for (const auto& a : outer.arguments())
    if (a.name() == "headers") {
      saw_headers = true;
      ASSERT_NE(v1::find_field(a.value().map_value(), "user-agent"), nullptr);
      EXPECT_EQ(v1::find_field(a.value().map_value(), "user-agent")->string_value(), "Mozilla/5.0");
      EXPECT_EQ(v1::find_field(a.value().map_value(), "cookie"), nullptr);
    }
  EXPECT_TRUE(saw_headers);
}

TEST(Shop, ForwardedForFromAnUntrustedPeerIsNotTheAddress) {
  common::MockBroker broker(1, {{"immunizer.calls", 1}});
  sensor::SensorConfig cfg;
  cfg.app = "shop";
  cfg.instance = "t";
  cfg.bootstrap = broker.bootstrap();
  cfg.cpu_budget = 0;
  auto sensor = sensor::Sensor::create(cfg);
  shop::Shop s(sensor, nullptr, {});  // default: no trusted proxy
  httplib::Request req;
  req.method = "GET";
  req.path = "/tienda1/index.jsp";
  req.target = req.path;
  req.remote_addr = "127.0.0.1";
  req.headers.emplace("X-Forwarded-For", "192.0.2.10");
  httplib::Response res;
  s.handle(req, res);
  EXPECT_EQ(res.status, 200);
  ASSERT_TRUE(sensor->flush(10s));
  common::KafkaSettings ks;
  ks.bootstrap = broker.bootstrap();
  auto c = common::make_kafka_consumer(ks, "t", {"immunizer.calls"}, nullptr);
  std::vector<v1::CallRecord> recs;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (recs.size() < 2 && std::chrono::steady_clock::now() < deadline)
    for (const auto& m : c->poll(10, 200ms)) ASSERT_TRUE(v1::parse_call_records(m.payload, &recs));
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) EXPECT_EQ(r.principal().ip(), "127.0.0.1");
}
