#include "immunizer/integrations/grpc_interceptor.hpp"

#include <gtest/gtest.h>

#include <atomic>

#include "immunizer/test/shop_service.grpc.pb.h"
#include "test_support.hpp"

using namespace immunizer;
using namespace std::chrono_literals;
using integrations::testing::arg;
using integrations::testing::Bed;
using integrations::testing::field;
using integrations::testing::find_call;
using integrations::testing::label;
namespace ig = immunizer::integrations::grpc;

namespace {

class ShopImpl final : public immunizer::test::Shop::Service {
 public:
  std::atomic<int> calls{0}, saw_payload{0}, saw_denied{0};
  ::grpc::Status Order(::grpc::ServerContext* ctx, const immunizer::test::OrderRequest* req,
                       immunizer::test::OrderReply* rep) override {
    ++calls;
    if (!req->product().empty()) ++saw_payload;
    if (ig::denied(*ctx)) ++saw_denied;
    if (req->product() == "fail") return ::grpc::Status(::grpc::NOT_FOUND, "no such product");
    rep->set_order_id("o-1");
    rep->set_total_cents(req->quantity() * 100);
    return ::grpc::Status::OK;
  }
};

struct Server {
  ShopImpl impl;
  std::unique_ptr<::grpc::Server> server;
  std::shared_ptr<const ig::InterceptorStats> stats;
  int port = 0;
  Server(Bed& bed, ig::InterceptorOptions o = {}) {
    ::grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&impl);
    stats = ig::install(b, bed.sensor, bed.effector, std::move(o));  // the one line
    server = b.BuildAndStart();
  }
  ~Server() { server->Shutdown(); }
  std::unique_ptr<immunizer::test::Shop::Stub> stub() {
    return immunizer::test::Shop::NewStub(::grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), ::grpc::InsecureChannelCredentials()));
  }
};

immunizer::test::OrderRequest order() {
  immunizer::test::OrderRequest r;
  r.set_product("Vino Rioja");
  r.set_quantity(3);
  r.set_price(9.5);
  r.set_gift(true);
  r.set_speed(immunizer::test::EXPRESS);
  r.mutable_ship_to()->set_street("Calle Mayor 1");
  r.mutable_ship_to()->set_city("Madrid");
  r.add_coupons("X1");
  r.add_coupons("Y2");
  (*r.mutable_extras())["wrap"] = 2;
  r.set_note(std::string("\x00\xff", 2));
  r.set_big(18446744073709551615ull);
  return r;
}

}  // namespace

TEST(GrpcInterceptor, RecordsEveryRpcWithTypedNestedArguments) {
  Bed bed;
  ig::InterceptorOptions o;
  o.principal.session_headers = {"x-session"};
  o.principal.user_headers = {"x-user"};
  Server s(bed, o);
  auto stub = s.stub();
  ::grpc::ClientContext ctx;
  ctx.AddMetadata("x-session", "S-7");
  ctx.AddMetadata("x-user", "alice");
  immunizer::test::OrderReply rep;
  ASSERT_TRUE(stub->Order(&ctx, order(), &rep).ok());
  EXPECT_EQ(rep.total_cents(), 300);
  ::grpc::ClientContext ctx2;
  auto bad = order();
  bad.set_product("fail");
  EXPECT_EQ(stub->Order(&ctx2, bad, &rep).error_code(), ::grpc::NOT_FOUND);

  const auto recs = bed.records(2);
  ASSERT_EQ(recs.size(), 2u);
  const v1::CallRecord* ok = nullptr;
  const v1::CallRecord* failed = nullptr;
  for (const auto& r : recs) (r.has_error() ? failed : ok) = &r;
  ASSERT_TRUE(ok && failed);
  EXPECT_EQ(ok->call(), "/immunizer.test.Shop/Order");
  EXPECT_EQ(ok->principal().ip(), "127.0.0.1");
  EXPECT_EQ(ok->principal().session(), "S-7");
  EXPECT_EQ(ok->principal().user(), "alice");
  EXPECT_EQ(ok->result().int_value(), 0);
  EXPECT_EQ(arg(*ok, "product")->string_value(), "Vino Rioja");
  EXPECT_EQ(arg(*ok, "quantity")->int_value(), 3);
  EXPECT_DOUBLE_EQ(arg(*ok, "price")->double_value(), 9.5);
  EXPECT_TRUE(arg(*ok, "gift")->bool_value());
  EXPECT_EQ(arg(*ok, "speed")->string_value(), "EXPRESS");
  EXPECT_EQ(field(arg(*ok, "ship_to")->map_value(), "city").string_value(), "Madrid");
  ASSERT_EQ(arg(*ok, "coupons")->list_value().items_size(), 2);
  EXPECT_EQ(arg(*ok, "coupons")->list_value().items(1).string_value(), "Y2");
  EXPECT_EQ(field(arg(*ok, "extras")->map_value(), "wrap").int_value(), 2);
  EXPECT_EQ(arg(*ok, "note")->bytes_value(), std::string("\x00\xff", 2));
  EXPECT_DOUBLE_EQ(arg(*ok, "big")->double_value(), 18446744073709551615.0);
  EXPECT_EQ(failed->error().type(), "NOT_FOUND");
  EXPECT_EQ(failed->error().message(), "no such product");
  EXPECT_EQ(s.stats->calls.load(), 2u);
}

TEST(GrpcInterceptor, DeniedCallGetsPermissionDeniedAndTheHandlerNeverSeesThePayload) {
  Bed bed;
  Server s(bed);
  bed.block(v1::PRINCIPAL_FIELD_IP, "127.0.0.1", "/immunizer.test.Shop/Order");
  auto stub = s.stub();
  ::grpc::ClientContext ctx;
  ctx.AddMetadata("immunizer-denied", "0");  // a client cannot set or clear the flag itself
  immunizer::test::OrderReply rep;
  const auto st = stub->Order(&ctx, order(), &rep);
  EXPECT_EQ(st.error_code(), ::grpc::PERMISSION_DENIED);
  EXPECT_EQ(rep.order_id(), "");
  EXPECT_EQ(s.impl.saw_payload.load(), 0);
  EXPECT_EQ(s.impl.saw_denied.load(), s.impl.calls.load());
  EXPECT_EQ(s.stats->denied.load(), 1u);
  const auto recs = bed.records(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(label(recs[0], "immunizer.denied"), "effector");
  EXPECT_EQ(recs[0].error().type(), "PERMISSION_DENIED");
  EXPECT_EQ(arg(recs[0], "product")->string_value(), "Vino Rioja");  // recorded for the audit trail
}

TEST(GrpcInterceptor, ClientMetadataCannotSetTheDeniedFlag) {
  Bed bed;
  Server s(bed);
  auto stub = s.stub();
  ::grpc::ClientContext ctx;
  ctx.AddMetadata("immunizer-denied", "1");
  immunizer::test::OrderReply rep;
  EXPECT_TRUE(stub->Order(&ctx, order(), &rep).ok());
  EXPECT_EQ(s.impl.saw_denied.load(), 0);
  EXPECT_EQ(s.impl.saw_payload.load(), 1);
}

TEST(GrpcInterceptor, SpoofedForwardedForIsIgnoredUnlessThePeerIsATrustedProxy) {
  Bed bed;
  bed.block(v1::PRINCIPAL_FIELD_IP, "192.0.2.66");
  {
    Server s(bed);
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("x-forwarded-for", "192.0.2.66");
    immunizer::test::OrderReply rep;
    EXPECT_TRUE(s.stub()->Order(&ctx, order(), &rep).ok());
    const auto recs = bed.records(1);
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].principal().ip(), "127.0.0.1");
  }
  {
    ig::InterceptorOptions o;
    o.principal.proxies.trusted_proxies = {"127.0.0.0/8"};
    Server s(bed, o);
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("x-forwarded-for", "192.0.2.66");
    immunizer::test::OrderReply rep;
    EXPECT_EQ(s.stub()->Order(&ctx, order(), &rep).error_code(), ::grpc::PERMISSION_DENIED);
  }
}

TEST(GrpcInterceptor, DeepAndWideMessagesAreBounded) {
  Bed bed;
  ig::InterceptorOptions o;
  o.max_depth = 3;
  o.max_elements = 20;
  Server s(bed, o);
  auto r = order();
  auto* a = r.mutable_ship_to();
  for (int i = 0; i < 50; ++i) a = a->mutable_forward_to();  // protobuf parses at most 100 levels
  a->set_city("deep");
  for (int i = 0; i < 1000; ++i) r.add_coupons("c" + std::to_string(i));
  ::grpc::ClientContext ctx;
  immunizer::test::OrderReply rep;
  EXPECT_TRUE(s.stub()->Order(&ctx, r, &rep).ok());
  const auto recs = bed.records(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(label(recs[0], "grpc.truncated"), "true");
  EXPECT_LT(recs[0].ByteSizeLong(), 4000u);
  EXPECT_EQ(s.stats->truncated.load(), 1u);
}
