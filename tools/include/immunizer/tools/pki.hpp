// The local PKI of `immunizer pki` and `immunizer up`: a CA, one certificate per service
// identity (SAN URI spiffe://immunizer/<role>/<name>), the Ed25519 signing keys of execute
// (directives) and plan (plans), and the dashboard's generated credentials, kept in a state
// folder. Everything is made with OpenSSL (X509/EVP: ECDSA P-256 certificates, Ed25519 keys).
// Private keys are written 0600 through a temporary file and a rename. Not thread-safe: one
// process changes a state folder at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "immunizer/common/grpc_tls.hpp"

namespace immunizer::tools::pki {

struct Pem {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (PKCS#8)
};

// A self-signed CA (basicConstraints CA:TRUE, pathlen 0) valid for `days`.
Pem make_ca(std::string_view common_name, int days);

struct LeafSpec {
  common::Role role = common::Role::kNone;
  std::string name;              // e.g. "execute", "dashboard", "shop", "shop/pod-1"
  std::vector<std::string> dns;  // extra DNS SANs
  std::vector<std::string> ips;  // extra IP SANs
  int days = 397;
};
// A certificate for spec.role/spec.name signed by `ca` (serverAuth + clientAuth; execute
// certificates also carry DNS localhost and IP 127.0.0.1). Throws std::invalid_argument for a
// bad name or address, std::runtime_error when OpenSSL fails.
Pem issue_cert(const Pem& ca, const LeafSpec& spec);

// The files of a state folder. The trust bundle tls/ca.crt may hold the previous CA too
// during a CA rotation; keys/*.prev.pub are the previous signing keys, still trusted.
struct Layout {
  std::string dir;
  std::string ca_cert() const { return dir + "/tls/ca.crt"; }
  std::string ca_key() const { return dir + "/tls/ca.key"; }
  std::string cert(common::Role role, std::string_view name) const;
  std::string key(common::Role role, std::string_view name) const;
  std::string signing_key(std::string_view who) const {
    return dir + "/keys/" + std::string(who) + ".key";
  }
  std::string public_key(std::string_view who) const {
    return dir + "/keys/" + std::string(who) + ".pub";
  }
  std::string previous_public_key(std::string_view who) const {
    return dir + "/keys/" + std::string(who) + ".prev.pub";
  }
  // The public keys verifiers trust for `who` ("execute" or "plan"): the current one, then
  // the previous one while it exists.
  std::vector<std::string> trusted_keys(std::string_view who) const;
  std::string dashboard_credentials() const { return dir + "/dashboard.credentials"; }
  // TLS files of one identity, with the folder's trust bundle.
  common::TlsFiles tls(common::Role role, std::string_view name) const;
};

struct InitOptions {
  std::vector<std::string> effectors = {"shop"};              // effector certificates to make
  std::vector<std::string> operators = {"dashboard", "cli"};  // operator certificates
  std::vector<std::string> execute_dns;                       // extra SANs of execute's certificate
  std::vector<std::string> execute_ips;
};

// Creates whatever of the layout is missing and keeps everything that exists; returns the
// paths it created. Throws std::runtime_error naming the path on any failure.
std::vector<std::string> init(const Layout& l, const InitOptions& o = {});

// Issues (or re-issues) the certificate of role/name from the folder's CA.
void issue(const Layout& l, const LeafSpec& spec);

struct RotateOptions {
  bool ca = false;      // also a new CA (the bundle keeps the old one until finish)
  bool finish = false;  // end the overlap: forget the previous keys and CA
};
// Without `finish`: new execute and plan signing keys (the old public keys stay trusted as
// *.prev.pub), new certificates for every identity in tls/ (from a new CA with `ca`).
// With `finish`: removes keys/*.prev.pub and every CA but the current one from the bundle.
// Returns what it changed, one line each.
std::vector<std::string> rotate(const Layout& l, const RotateOptions& o);

// "admin:<24 random characters>" (letters and digits).
std::string make_credentials(std::string_view user);

// `immunizer pki init|issue ROLE NAME|rotate`: prints what it made or changed; 0 on success,
// 1 on failure (the message says which file or argument).
struct PkiOptions {
  std::string action;  // init, issue, rotate
  std::string state_dir = ".immunizer";
  std::string role, name;             // issue
  std::vector<std::string> dns, ips;  // issue (and init: extra SANs of execute's certificate)
  std::vector<std::string> effectors = {"shop"};  // init
  bool ca = false;                                // rotate: a new CA too
  bool finish = false;                            // rotate: end the overlap
};
int pki_command(const PkiOptions& o);

}  // namespace immunizer::tools::pki
