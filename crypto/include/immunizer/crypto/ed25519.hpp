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

// What both kinds of key hold: the OpenSSL key and the id of its public half. Move-only.
class Ed25519Key {
 public:
  const std::string& key_id() const noexcept { return key_id_; }

 protected:
  struct Impl;
  explicit Ed25519Key(std::unique_ptr<Impl> impl);
  Ed25519Key(Ed25519Key&&) noexcept;
  Ed25519Key& operator=(Ed25519Key&&) noexcept;
  ~Ed25519Key();
  std::unique_ptr<Impl> impl_;

 private:
  std::string key_id_;
};

class SigningKey : public Ed25519Key {
 public:
  // Throws std::invalid_argument when the PEM is not an Ed25519 private key.
  static SigningKey from_pem(std::string_view private_pem);
  // Reads a PEM file; throws std::runtime_error naming the path on any failure.
  static SigningKey load(const std::string& path);

  // The 64-byte Ed25519 signature of `message`. Throws std::runtime_error if OpenSSL fails.
  std::string sign(std::string_view message) const;
  std::string public_pem() const;

 private:
  using Ed25519Key::Ed25519Key;
};

class VerifyingKey : public Ed25519Key {
 public:
  // Throws std::invalid_argument when the PEM is not an Ed25519 public key.
  static VerifyingKey from_pem(std::string_view public_pem);
  static VerifyingKey load(const std::string& path);

  // False for a wrong-size or wrong signature; never throws.
  bool verify(std::string_view message, std::string_view signature) const noexcept;

 private:
  using Ed25519Key::Ed25519Key;
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
