#include "immunizer/tools/pki.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "immunizer/crypto/ed25519.hpp"

namespace fs = std::filesystem;

namespace immunizer::tools::pki {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { F(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

[[noreturn]] void ossl_fail(const std::string& what) {
  char buf[256] = {0};
  const unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  throw std::runtime_error("pki: " + what + (e ? std::string(": ") + buf : std::string()));
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

Pkey new_ec_key() {
  Pkey k(EVP_EC_gen("P-256"));
  if (!k) ossl_fail("cannot generate an EC P-256 key");
  return k;
}

std::string key_pem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    ossl_fail("cannot write a private key");
  return bio_string(b.get());
}

std::string cert_pem(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), x) != 1) ossl_fail("cannot write a certificate");
  return bio_string(b.get());
}

Pkey read_key(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey k(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!k) ossl_fail("cannot read a private key");
  return k;
}

X509Ptr read_cert(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr x(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!x) ossl_fail("cannot read a certificate");
  return x;
}

std::vector<X509Ptr> read_certs(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!b) ossl_fail("out of memory");
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the data reads as an error
  return out;
}

void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(x, ext.get(), -1) != 1) ossl_fail("cannot add extension " + value);
}

X509Ptr new_cert(EVP_PKEY* subject_key, const std::string& cn, int days) {
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), 2) != 1) ossl_fail("cannot make a certificate");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) ossl_fail("no randomness");
  serial[0] &= 0x7f;  // positive
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get())))
    ossl_fail("cannot set the serial");
  // Valid from an hour ago: clocks of the machines that check it may lag a little.
  if (!X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days) * 86400))
    ossl_fail("cannot set the validity");
  if (X509_set_pubkey(x.get(), subject_key) != 1) ossl_fail("cannot set the public key");
  X509_NAME* name = X509_get_subject_name(x.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("Immunizer"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1)
    ossl_fail("cannot set the subject");
  return x;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("pki: cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_public(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) throw std::runtime_error("pki: cannot write '" + tmp + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw std::runtime_error("pki: cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

void make_dir(const std::string& d) {
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw std::runtime_error("pki: cannot create '" + d + "': " + ec.message());
  ::chmod(d.c_str(), 0700);
}

bool is_ip(const std::string& s) {
  ASN1_OCTET_STRING* o = a2i_IPADDRESS(s.c_str());
  if (!o) {
    ERR_clear_error();
    return false;
  }
  ASN1_OCTET_STRING_free(o);
  return true;
}

bool dns_ok(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-' || c == '*'))
      return false;
  return true;
}

std::string file_stem(common::Role role, std::string_view name) {
  std::string n(name);
  for (char& c : n)
    if (c == '/') c = '+';
  return std::string(common::to_string(role)) + "-" + n;
}

// Role, name, DNS and IP SANs of a leaf certificate this module issued.
bool describe(X509* x, LeafSpec* out) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_URI) {
      const std::string uri(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier)),
          static_cast<size_t>(ASN1_STRING_length(g->d.uniformResourceIdentifier)));
      if (auto id = common::parse_spiffe_uri(uri); id && !found) {
        out->role = id->role;
        out->name = id->name;
        found = true;
      }
    } else if (g->type == GEN_DNS) {
      out->dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                            static_cast<size_t>(ASN1_STRING_length(g->d.dNSName)));
    } else if (g->type == GEN_IPADD) {
      const int len = ASN1_STRING_length(g->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {0};
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), text,
                    sizeof text))
        out->ips.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(names);
  return found;
}

void write_pem(const Pem& p, const std::string& cert_path, const std::string& key_path) {
  crypto::write_secret_file(key_path, p.key);
  write_public(cert_path, p.cert);
}

// The current CA: the first certificate of the bundle whose key is ca.key.
Pem current_ca(const Layout& l) {
  Pem ca{read_text(l.ca_cert()), read_text(l.ca_key())};
  const Pkey key = read_key(ca.key);
  for (auto& x : read_certs(ca.cert))
    if (X509_check_private_key(x.get(), key.get()) == 1) return {cert_pem(x.get()), ca.key};
  ERR_clear_error();
  throw std::runtime_error("pki: no certificate in '" + l.ca_cert() + "' matches '" + l.ca_key() +
                           "'");
}

std::string ca_name() {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return "Immunizer CA " + std::to_string(now);
}

void write_keypair(const Layout& l, const std::string& who) {
  const auto kp = crypto::generate_ed25519();
  crypto::write_secret_file(l.signing_key(who), kp.private_pem);
  write_public(l.public_key(who), kp.public_pem);
}

}  // namespace

Pem make_ca(std::string_view common_name, int days) {
  Pkey key = new_ec_key();
  X509Ptr x = new_cert(key.get(), std::string(common_name), days);
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(x.get())) != 1)
    ossl_fail("cannot set the issuer");
  add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(x.get(), key.get(), EVP_sha256()) <= 0) ossl_fail("cannot sign the CA certificate");
  return {cert_pem(x.get()), key_pem(key.get())};
}

Pem issue_cert(const Pem& ca, const LeafSpec& spec) {
  const std::string uri = common::spiffe_uri(spec.role, spec.name);
  if (spec.role == common::Role::kNone || !common::parse_spiffe_uri(uri))
    throw std::invalid_argument("pki: bad identity '" + std::string(common::to_string(spec.role)) +
                                "/" + spec.name +
                                "' (names are [A-Za-z0-9._-] segments joined by '/')");
  std::vector<std::string> dns = spec.dns, ips = spec.ips;
  if (spec.role == common::Role::kExecute) {
    dns.insert(dns.begin(), "localhost");
    ips.insert(ips.begin(), "127.0.0.1");
  }
  std::string san = "URI:" + uri;
  std::vector<std::string> seen;
  for (const auto& d : dns) {
    if (!dns_ok(d)) throw std::invalid_argument("pki: bad DNS name '" + d + "'");
    if (std::find(seen.begin(), seen.end(), "DNS:" + d) != seen.end()) continue;
    seen.push_back("DNS:" + d);
    san += ",DNS:" + d;
  }
  for (const auto& ip : ips) {
    if (!is_ip(ip)) throw std::invalid_argument("pki: bad IP address '" + ip + "'");
    if (std::find(seen.begin(), seen.end(), "IP:" + ip) != seen.end()) continue;
    seen.push_back("IP:" + ip);
    san += ",IP:" + ip;
  }
  const X509Ptr ca_cert = read_cert(ca.cert);
  const Pkey ca_key = read_key(ca.key);
  Pkey key = new_ec_key();
  X509Ptr x =
      new_cert(key.get(), std::string(common::to_string(spec.role)) + "/" + spec.name, spec.days);
  if (X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get())) != 1)
    ossl_fail("cannot set the issuer");
  add_ext(x.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(x.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(x.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(x.get(), ca_cert.get(), NID_subject_key_identifier, "hash");
  add_ext(x.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  add_ext(x.get(), ca_cert.get(), NID_subject_alt_name, san);
  if (X509_sign(x.get(), ca_key.get(), EVP_sha256()) <= 0) ossl_fail("cannot sign the certificate");
  return {cert_pem(x.get()), key_pem(key.get())};
}

std::string Layout::cert(common::Role role, std::string_view name) const {
  return dir + "/tls/" + file_stem(role, name) + ".crt";
}
std::string Layout::key(common::Role role, std::string_view name) const {
  return dir + "/tls/" + file_stem(role, name) + ".key";
}

std::vector<std::string> Layout::trusted_keys(std::string_view who) const {
  std::vector<std::string> out{public_key(who)};
  if (fs::exists(previous_public_key(who))) out.push_back(previous_public_key(who));
  return out;
}

common::TlsFiles Layout::tls(common::Role role, std::string_view name) const {
  common::TlsFiles t;
  t.ca_file = ca_cert();
  t.cert_file = cert(role, name);
  t.key_file = key(role, name);
  return t;
}

std::string make_credentials(std::string_view user) {
  static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  constexpr size_t n = sizeof alphabet - 1;
  std::string pw;
  while (pw.size() < 24) {
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) ossl_fail("no randomness");
    for (unsigned char c : b)
      if (c < 256 - 256 % n && pw.size() < 24) pw.push_back(alphabet[c % n]);  // no modulo bias
  }
  return std::string(user) + ":" + pw;
}

std::vector<std::string> init(const Layout& l, const InitOptions& o) {
  std::vector<std::string> created;
  make_dir(l.dir);
  make_dir(l.dir + "/tls");
  make_dir(l.dir + "/keys");
  if (!fs::exists(l.ca_cert()) || !fs::exists(l.ca_key())) {
    const Pem ca = make_ca(ca_name(), 3650);
    write_pem(ca, l.ca_cert(), l.ca_key());
    created.push_back(l.ca_cert());
  }
  const Pem ca = current_ca(l);
  auto leaf = [&](const LeafSpec& spec) {
    if (fs::exists(l.cert(spec.role, spec.name)) && fs::exists(l.key(spec.role, spec.name))) return;
    write_pem(issue_cert(ca, spec), l.cert(spec.role, spec.name), l.key(spec.role, spec.name));
    created.push_back(l.cert(spec.role, spec.name));
  };
  leaf({common::Role::kExecute, "execute", o.execute_dns, o.execute_ips});
  for (const auto& n : o.operators) leaf({common::Role::kOperator, n, {}, {}});
  for (const auto& n : o.effectors) leaf({common::Role::kEffector, n, {}, {}});
  for (const char* who : {"execute", "plan"}) {
    if (fs::exists(l.signing_key(who)) && fs::exists(l.public_key(who))) continue;
    write_keypair(l, who);
    created.push_back(l.signing_key(who));
  }
  if (!fs::exists(l.dashboard_credentials())) {
    crypto::write_secret_file(l.dashboard_credentials(), make_credentials("admin") + "\n");
    created.push_back(l.dashboard_credentials());
  }
  return created;
}

void issue(const Layout& l, const LeafSpec& spec) {
  const Pem ca = current_ca(l);
  write_pem(issue_cert(ca, spec), l.cert(spec.role, spec.name), l.key(spec.role, spec.name));
}

std::vector<std::string> rotate(const Layout& l, const RotateOptions& o) {
  std::vector<std::string> done;
  if (o.finish) {
    for (const char* who : {"execute", "plan"}) {
      if (fs::exists(l.previous_public_key(who))) {
        fs::remove(l.previous_public_key(who));
        done.push_back("removed " + l.previous_public_key(who) + " (no longer trusted)");
      }
    }
    const Pem ca = current_ca(l);
    if (read_certs(read_text(l.ca_cert())).size() > 1) {
      write_public(l.ca_cert(), ca.cert);
      done.push_back(l.ca_cert() + " now holds the current CA only");
    }
    return done;
  }
  for (const char* who : {"execute", "plan"}) {
    if (fs::exists(l.public_key(who))) {
      write_public(l.previous_public_key(who), read_text(l.public_key(who)));
      done.push_back(l.public_key(who) + " -> " + l.previous_public_key(who) + " (still trusted)");
    }
    write_keypair(l, who);
    done.push_back("new " + l.signing_key(who) + " (key id " +
                   crypto::key_id_of_public_pem(read_text(l.public_key(who))) + ")");
  }
  if (o.ca) {
    const std::string old_bundle = read_text(l.ca_cert());
    const Pem ca = make_ca(ca_name(), 3650);
    // New CA first: the current one is the bundle's certificate matching ca.key.
    write_public(l.ca_cert(), ca.cert + old_bundle);
    crypto::write_secret_file(l.ca_key(), ca.key);
    done.push_back("new CA in " + l.ca_key() + "; " + l.ca_cert() +
                   " trusts the old and the new CA");
  }
  const Pem ca = current_ca(l);
  for (const auto& entry : fs::directory_iterator(l.dir + "/tls")) {
    const auto& p = entry.path();
    if (p.extension() != ".crt" || p.filename() == "ca.crt") continue;
    LeafSpec spec;
    const X509Ptr x = read_cert(read_text(p.string()));
    if (!describe(x.get(), &spec)) continue;
    if (spec.role == common::Role::kExecute) {  // issue_cert adds these back
      std::erase(spec.dns, std::string("localhost"));
      std::erase(spec.ips, std::string("127.0.0.1"));
    }
    write_pem(issue_cert(ca, spec), l.cert(spec.role, spec.name), l.key(spec.role, spec.name));
    done.push_back("re-issued " + l.cert(spec.role, spec.name));
  }
  return done;
}

}  // namespace immunizer::tools::pki

namespace immunizer::tools::pki {

int pki_command(const PkiOptions& o) {
  const Layout l{o.state_dir};
  try {
    if (o.action == "init") {
      InitOptions io;
      io.effectors = o.effectors;
      io.execute_dns = o.dns;
      io.execute_ips = o.ips;
      const auto made = init(l, io);
      for (const auto& m : made) std::cout << "created " << m << "\n";
      if (made.empty()) std::cout << "nothing to do: " << o.state_dir << " is complete\n";
      std::cout << "dashboard credentials: " << l.dashboard_credentials() << "\n";
    } else if (o.action == "issue") {
      const auto role = common::parse_role(o.role);
      if (!role) {
        std::cerr << "immunizer pki issue: role '" << o.role
                  << "' is not one of effector, operator, execute, plan\n";
        return 1;
      }
      issue(l, {*role, o.name, o.dns, o.ips});
      std::cout << "issued " << l.cert(*role, o.name) << " (" << common::spiffe_uri(*role, o.name)
                << ") and " << l.key(*role, o.name) << "\n";
    } else if (o.action == "rotate") {
      for (const auto& line : rotate(l, {o.ca, o.finish})) std::cout << line << "\n";
      if (!o.finish)
        std::cout << "overlap: verifiers trust the previous and the new keys (and CAs) until "
                     "'immunizer pki rotate --finish' (docs/security.md)\n";
    } else {
      std::cerr << "immunizer pki: unknown action '" << o.action << "' (init, issue, rotate)\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "immunizer pki " << o.action << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace immunizer::tools::pki
