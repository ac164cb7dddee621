#include "immunizer/common/grpc_tls.hpp"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "immunizer/common/enum_names.hpp"

namespace immunizer::common {
namespace {

std::string read_pem(const std::string& path, const std::string& what, const char* which) {
  if (path.empty())
    throw std::runtime_error(what + ": " + which +
                             " is not set (mutual TLS needs ca, cert and key files; " +
                             "'immunizer pki init' makes them)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(what + ": cannot read " + which + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.find("-----BEGIN ") == std::string::npos)
    throw std::runtime_error(what + ": " + which + " '" + path + "' holds no PEM data");
  return s;
}

bool valid_name(std::string_view n) noexcept {
  if (n.empty() || n.size() > 200) return false;
  bool seg_empty = true;
  for (char c : n) {
    if (c == '/') {
      if (seg_empty) return false;
      seg_empty = true;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
    seg_empty = false;
  }
  return !seg_empty;
}

}  // namespace

bool parse_tls_mode(std::string_view mode, const std::string& what) {
  if (mode == "mtls") return true;
  if (mode == "none") return false;
  throw std::invalid_argument(what + "='" + std::string(mode) + "': expected 'mtls' or 'none'");
}

std::shared_ptr<grpc::ChannelCredentials> client_credentials(const TlsFiles& tls,
                                                             const std::string& what) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = read_pem(tls.ca_file, what, "ca file");
  o.pem_cert_chain = read_pem(tls.cert_file, what, "certificate file");
  o.pem_private_key = read_pem(tls.key_file, what, "key file");
  return grpc::SslCredentials(o);
}

void apply_channel_args(const TlsFiles& tls, grpc::ChannelArguments& args) {
  if (tls.enabled && !tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls,
                                                            const std::string& what) {
  if (!tls.enabled) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = read_pem(tls.ca_file, what, "ca file");
  o.pem_key_cert_pairs.push_back({read_pem(tls.key_file, what, "key file"),
                                  read_pem(tls.cert_file, what, "certificate file")});
  return grpc::SslServerCredentials(o);
}

namespace {
// In the order of Role's values.
constexpr std::string_view kRoleNames[] = {"none", "effector", "operator", "execute", "plan"};
}  // namespace

std::string_view to_string(Role r) noexcept { return enum_name(kRoleNames, r, "none"); }

std::optional<Role> parse_role(std::string_view s) noexcept {
  const auto r = enum_value<Role>(kRoleNames, s);
  if (r == Role::kNone) return std::nullopt;
  return r;
}

std::string spiffe_uri(Role role, std::string_view name) {
  return std::string(kSpiffePrefix) + std::string(to_string(role)) + "/" + std::string(name);
}

std::optional<PeerIdentity> parse_spiffe_uri(std::string_view uri) {
  if (uri.substr(0, kSpiffePrefix.size()) != kSpiffePrefix) return std::nullopt;
  const std::string_view rest = uri.substr(kSpiffePrefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto role = parse_role(rest.substr(0, slash));
  const std::string_view name = rest.substr(slash + 1);
  if (!role || !valid_name(name)) return std::nullopt;
  return PeerIdentity{*role, std::string(name), std::string(uri)};
}

PeerIdentity peer_identity(const grpc::AuthContext& ctx) {
  if (!ctx.IsPeerAuthenticated()) return {};
  for (const auto& v : ctx.FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME))
    if (auto id = parse_spiffe_uri(std::string_view(v.data(), v.size()))) return *id;
  return {};
}

bool effector_name_matches(std::string_view cert_name, std::string_view app,
                           std::string_view instance) noexcept {
  const auto slash = cert_name.find('/');
  if (slash == std::string_view::npos) return !app.empty() && cert_name == app;
  return cert_name.substr(0, slash) == app && cert_name.substr(slash + 1) == instance;
}

}  // namespace immunizer::common
