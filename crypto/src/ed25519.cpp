#include "immunizer/crypto/ed25519.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace immunizer::crypto {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string to_hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 0xf]);
  }
  return out;
}

Bio memory_bio(std::string_view s) {
  Bio b(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
  if (!b) throw std::runtime_error("ed25519: out of memory");
  return b;
}

std::string bio_string(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string key_id_of(EVP_PKEY* k) {
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != sizeof raw)
    throw std::invalid_argument("ed25519: cannot read the raw public key");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(raw, len, digest);
  return to_hex(digest, 8);
}

std::string public_pem_of(EVP_PKEY* k) {
  Bio out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PUBKEY(out.get(), k) != 1)
    throw std::runtime_error("ed25519: cannot write public key");
  return bio_string(out.get());
}

// An Ed25519 key read from PEM with `read` (PEM_read_bio_PrivateKey or PEM_read_bio_PUBKEY);
// std::invalid_argument naming `what` for anything else.
using PemReader = EVP_PKEY* (*)(BIO*, EVP_PKEY**, pem_password_cb*, void*);
Pkey read_pem(std::string_view pem, PemReader read, const char* what) {
  auto b = memory_bio(pem);
  Pkey k(read(b.get(), nullptr, nullptr, nullptr));
  if (!k || EVP_PKEY_id(k.get()) != EVP_PKEY_ED25519)
    throw std::invalid_argument(std::string("ed25519: not an Ed25519 ") + what + " in PEM form");
  return k;
}
Pkey read_private(std::string_view pem) {
  return read_pem(pem, PEM_read_bio_PrivateKey, "private key");
}
Pkey read_public(std::string_view pem) { return read_pem(pem, PEM_read_bio_PUBKEY, "public key"); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Key::from_pem of the file at `path`; any failure as std::runtime_error naming the path.
template <class Key>
Key load_key(const std::string& path, const char* what) {
  try {
    return Key::from_pem(read_file(path));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(what) + " " + path + ": " + e.what());
  }
}

}  // namespace

KeyPair generate_ed25519() {
  EVP_PKEY* raw = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  const bool ok = ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &raw) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) throw std::runtime_error("ed25519: key generation failed");
  Pkey k(raw);
  Bio priv(BIO_new(BIO_s_mem()));
  if (!priv ||
      PEM_write_bio_PrivateKey(priv.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("ed25519: cannot write private key");
  return {bio_string(priv.get()), public_pem_of(k.get())};
}

std::string key_id_of_public_pem(std::string_view public_pem) {
  return key_id_of(read_public(public_pem).get());
}

struct Ed25519Key::Impl {
  Pkey key;
};

Ed25519Key::Ed25519Key(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), key_id_(key_id_of(impl_->key.get())) {}
Ed25519Key::Ed25519Key(Ed25519Key&&) noexcept = default;
Ed25519Key& Ed25519Key::operator=(Ed25519Key&&) noexcept = default;
Ed25519Key::~Ed25519Key() = default;

SigningKey SigningKey::from_pem(std::string_view private_pem) {
  return SigningKey(std::make_unique<Impl>(Impl{read_private(private_pem)}));
}

SigningKey SigningKey::load(const std::string& path) {
  return load_key<SigningKey>(path, "signing key");
}

std::string SigningKey::sign(std::string_view message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1)
    throw std::runtime_error("ed25519: signing failed");
  return std::string(reinterpret_cast<const char*>(sig), len);
}

std::string SigningKey::public_pem() const { return public_pem_of(impl_->key.get()); }

VerifyingKey VerifyingKey::from_pem(std::string_view public_pem) {
  return VerifyingKey(std::make_unique<Impl>(Impl{read_public(public_pem)}));
}

VerifyingKey VerifyingKey::load(const std::string& path) {
  return load_key<VerifyingKey>(path, "public key");
}

bool VerifyingKey::verify(std::string_view message, std::string_view signature) const noexcept {
  if (signature.size() != 64) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1)
    return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

void KeyRing::add(VerifyingKey k) {
  for (auto& existing : keys_)
    if (existing.key_id() == k.key_id()) {
      existing = std::move(k);
      return;
    }
  keys_.push_back(std::move(k));
}

KeyRing KeyRing::load(const std::vector<std::string>& public_pem_paths) {
  KeyRing ring;
  for (const auto& p : public_pem_paths) ring.add(VerifyingKey::load(p));
  return ring;
}

const VerifyingKey* KeyRing::find(std::string_view key_id) const noexcept {
  for (const auto& k : keys_)
    if (k.key_id() == key_id) return &k;
  return nullptr;
}

bool KeyRing::verify(std::string_view key_id, std::string_view message,
                     std::string_view signature) const noexcept {
  const VerifyingKey* k = find(key_id);
  return k != nullptr && k->verify(message, signature);
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return to_hex(digest, sizeof digest);
}

void write_secret_file(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an existing temporary file keeps its mode otherwise
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(err));
  }
}

}  // namespace immunizer::crypto
