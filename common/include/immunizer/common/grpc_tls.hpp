// Mutual TLS for the control plane's gRPC channels (execute's EffectorControl and Operations,
// effector -> execute, dashboard and ops CLI -> execute) and the service identity a peer's
// certificate proves: a SAN URI spiffe://immunizer/<role>/<name>. Free functions, thread-safe.
// Depends on gRPC only (library immunizer_grpc_tls), so the in-app effector may link it.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace grpc {
class AuthContext;
}

namespace immunizer::common {

// Where one side of a channel finds its TLS material. Plaintext only when `enabled` is false,
// which every component maps from an explicit "tls: none" setting and warns about at start.
struct TlsFiles {
  bool enabled = true;
  std::string ca_file;    // PEM trust bundle (several CAs during a CA rotation)
  std::string cert_file;  // PEM certificate (chain) presented to the peer
  std::string key_file;   // PEM private key of cert_file
  std::string
      server_name;  // clients: name checked in the server's certificate (empty: the target's host)
};

// "mtls" -> enabled, "none" -> plaintext; anything else throws std::invalid_argument naming `what`.
bool parse_tls_mode(std::string_view mode, const std::string& what);

// Client credentials presenting cert_file/key_file and trusting ca_file; plaintext when
// !enabled. Throws std::runtime_error naming `what` (the setting) and the path when a file is
// missing, unreadable or empty.
std::shared_ptr<grpc::ChannelCredentials> client_credentials(const TlsFiles& tls,
                                                             const std::string& what);
// Adds the server-name override (if any) to a channel's arguments.
void apply_channel_args(const TlsFiles& tls, grpc::ChannelArguments& args);

// Server credentials with cert_file/key_file; clients that present a certificate must chain to
// ca_file (the handshake fails otherwise). A client without a certificate still reaches the
// handler, which refuses it with UNAUTHENTICATED (and counts it): see peer_identity().
std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls,
                                                            const std::string& what);

enum class Role { kNone, kEffector, kOperator, kExecute, kPlan };
std::string_view to_string(Role r) noexcept;
// "effector", "operator", "execute", "plan"; nullopt for anything else.
std::optional<Role> parse_role(std::string_view s) noexcept;

inline constexpr std::string_view kSpiffePrefix = "spiffe://immunizer/";

// What a verified client certificate says. Effector names are "<app>" (any instance of the
// app) or "<app>/<instance>"; operator names identify a person or tool ("dashboard", "cli").
struct PeerIdentity {
  Role role = Role::kNone;
  std::string name;
  std::string uri;  // the SAN URI it came from; empty when none
};

// "spiffe://immunizer/<role>/<name>" (name may contain '/').
std::string spiffe_uri(Role role, std::string_view name);
// Parses one SAN URI; nullopt unless it is kSpiffePrefix + a known role + '/' + a non-empty
// name of [A-Za-z0-9._-] segments joined by '/'.
std::optional<PeerIdentity> parse_spiffe_uri(std::string_view uri);

// The identity of an authenticated peer: the first SAN of its certificate that parses as an
// Immunizer URI (property x509_subject_alternative_name). role kNone when the peer presented no
// certificate or one without such a SAN.
PeerIdentity peer_identity(const grpc::AuthContext& ctx);

// May an effector whose certificate names `cert_name` say hello as app/instance? "<app>"
// covers every instance of that app; "<app>/<instance>" exactly one.
bool effector_name_matches(std::string_view cert_name, std::string_view app,
                           std::string_view instance) noexcept;

}  // namespace immunizer::common
