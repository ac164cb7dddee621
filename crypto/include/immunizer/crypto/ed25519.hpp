// Ed25519 keys, signatures and key rings for the control plane (OpenSSL EVP; no crypto of
// our own). Execute signs directives and plan signs plans with a SigningKey; effectors and
// execute hold only public keys in a KeyRing, several at once during a rotation.
// Thread-safety: every const member is safe to call from many threads at once.
// Depends on OpenSSL only, so the in-app effector may link it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace immunizer::crypto {

// A fresh key pair: PKCS#8 private key PEM and SubjectPublicKeyInfo public key PEM.
struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};
KeyPair generate_ed25519();

// 16 lowercase hex characters of SHA-256 over the raw 32-byte public key: the key id that
// travels with every signature. Throws std::invalid_argument for a PEM that is not Ed25519.
std::string key_id_of_public_pem(std::string_view public_pem);

class SigningKey {
 public:
  // Throws std::invalid_argument when the PEM is not an Ed25519 private key.
  static SigningKey from_pem(std::string_view private_pem);
  // Reads a PEM file; throws std::runtime_error naming the path on any failure.
  static SigningKey load(const std::string& path);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // The 64-byte Ed25519 signature of `message`. Throws std::runtime_error if OpenSSL fails.
  std::string sign(std::string_view message) const;
  const std::string& key_id() const noexcept { return key_id_; }
  std::string public_pem() const;

 private:
  struct Impl;
  explicit SigningKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string key_id_;
};

class VerifyingKey {
 public:
  // Throws std::invalid_argument when the PEM is not an Ed25519 public key.
  static VerifyingKey from_pem(std::string_view public_pem);
  static VerifyingKey load(const std::string& path);

  VerifyingKey(VerifyingKey&&) noexcept;
  VerifyingKey& operator=(VerifyingKey&&) noexcept;
  ~VerifyingKey();

  // False for a wrong-size or wrong signature; never throws.
  bool verify(std::string_view message, std::string_view signature) const noexcept;
  const std::string& key_id() const noexcept { return key_id_; }

 private:
  struct Impl;
  explicit VerifyingKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string key_id_;
};

// The public keys a verifier trusts, by key id. Rotation: add the new key, let signers move
// to it, then drop the old one; both verify during the overlap.
class KeyRing {
 public:
  // Adding a key whose id is already present replaces it.
  void add(VerifyingKey k);
  // Loads every PEM path; throws std::runtime_error naming the first path that fails.
  static KeyRing load(const std::vector<std::string>& public_pem_paths);

  const VerifyingKey* find(std::string_view key_id) const noexcept;
  // True only when a key with `key_id` is trusted and the signature verifies with it.
  bool verify(std::string_view key_id, std::string_view message,
              std::string_view signature) const noexcept;
  size_t size() const noexcept { return keys_.size(); }

 private:
  std::vector<VerifyingKey> keys_;
};

// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// Writes `content` to `path` with mode 0600 through a temporary file and rename, so a reader
// never sees a half-written secret. Throws std::runtime_error naming the path.
void write_secret_file(const std::string& path, std::string_view content);

}  // namespace immunizer::crypto
