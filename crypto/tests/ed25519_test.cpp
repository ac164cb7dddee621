// Ed25519 keys: signatures verify only with the matching public key, tampering and foreign
// keys fail, key ids are stable, PEMs round-trip, key rings accept every trusted key.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "immunizer/crypto/ed25519.hpp"

namespace c = immunizer::crypto;

TEST(Ed25519, SignVerifyAndTamper) {
  const auto kp = c::generate_ed25519();
  const auto sk = c::SigningKey::from_pem(kp.private_pem);
  const auto vk = c::VerifyingKey::from_pem(kp.public_pem);
  const std::string sig = sk.sign("block 10.0.0.1");
  EXPECT_EQ(sig.size(), 64u);
  EXPECT_TRUE(vk.verify("block 10.0.0.1", sig));
  EXPECT_FALSE(vk.verify("block 10.0.0.2", sig));
  std::string bad = sig;
  bad[10] ^= 1;
  EXPECT_FALSE(vk.verify("block 10.0.0.1", bad));
  EXPECT_FALSE(vk.verify("block 10.0.0.1", sig.substr(0, 63)));
  EXPECT_FALSE(vk.verify("block 10.0.0.1", ""));
}

TEST(Ed25519, ForeignKeyFails) {
  const auto a = c::SigningKey::from_pem(c::generate_ed25519().private_pem);
  const auto b = c::VerifyingKey::from_pem(c::generate_ed25519().public_pem);
  EXPECT_FALSE(b.verify("m", a.sign("m")));
  EXPECT_NE(a.key_id(), b.key_id());
}

TEST(Ed25519, KeyIdsMatchBetweenHalvesAndPemsRoundTrip) {
  const auto kp = c::generate_ed25519();
  const auto sk = c::SigningKey::from_pem(kp.private_pem);
  EXPECT_EQ(sk.key_id().size(), 16u);
  EXPECT_EQ(sk.key_id(), c::VerifyingKey::from_pem(kp.public_pem).key_id());
  EXPECT_EQ(sk.key_id(), c::key_id_of_public_pem(sk.public_pem()));
  EXPECT_EQ(sk.public_pem(), kp.public_pem);
}

TEST(Ed25519, RejectsWhatIsNotAnEd25519Key) {
  EXPECT_THROW(c::SigningKey::from_pem("not a pem"), std::invalid_argument);
  EXPECT_THROW(c::VerifyingKey::from_pem(""), std::invalid_argument);
  // A private key where a public one is expected and the other way round.
  const auto kp = c::generate_ed25519();
  EXPECT_THROW(c::VerifyingKey::from_pem(kp.private_pem), std::invalid_argument);
  EXPECT_THROW(c::SigningKey::from_pem(kp.public_pem), std::invalid_argument);
  EXPECT_THROW(c::VerifyingKey::load("/nonexistent/key.pub"), std::runtime_error);
}

TEST(Ed25519, KeyRingTrustsEveryKeyDuringRotation) {
  const auto old_kp = c::generate_ed25519();
  const auto new_kp = c::generate_ed25519();
  const auto old_sk = c::SigningKey::from_pem(old_kp.private_pem);
  const auto new_sk = c::SigningKey::from_pem(new_kp.private_pem);
  c::KeyRing ring;
  ring.add(c::VerifyingKey::from_pem(old_kp.public_pem));
  ring.add(c::VerifyingKey::from_pem(new_kp.public_pem));
  ring.add(c::VerifyingKey::from_pem(new_kp.public_pem));  // same id: replaced, not doubled
  EXPECT_EQ(ring.size(), 2u);
  EXPECT_TRUE(ring.verify(old_sk.key_id(), "m", old_sk.sign("m")));
  EXPECT_TRUE(ring.verify(new_sk.key_id(), "m", new_sk.sign("m")));
  // A signature presented under the other key's id fails, as does an unknown id.
  EXPECT_FALSE(ring.verify(new_sk.key_id(), "m", old_sk.sign("m")));
  EXPECT_FALSE(ring.verify("0000000000000000", "m", old_sk.sign("m")));
  EXPECT_EQ(ring.find("nope"), nullptr);
}

TEST(Ed25519, SecretFilesAreOwnerOnlyAndLoad) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ed25519_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto kp = c::generate_ed25519();
  const std::string priv = (dir / "k.key").string();
  const std::string pub = (dir / "k.pub").string();
  c::write_secret_file(priv, kp.private_pem);
  { std::ofstream(pub) << kp.public_pem; }
  struct stat st {};
  ASSERT_EQ(::stat(priv.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto sk = c::SigningKey::load(priv);
  const auto ring = c::KeyRing::load({pub});
  EXPECT_TRUE(ring.verify(sk.key_id(), "x", sk.sign("x")));
  EXPECT_THROW(c::KeyRing::load({pub, (dir / "missing.pub").string()}), std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST(Ed25519, Sha256Hex) {
  EXPECT_EQ(c::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
