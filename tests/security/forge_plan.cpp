// The Kafka-writer attack of issue 10, live: whoever can write to the plans topic writes Plans
// of their own, to disable a call for everyone or block an address. Produces three forgeries
// to <prefix>plans of a running stack, then exits:
//   - an unsigned Plan that disables the call `http.request` for everyone,
//   - a Plan blocking address TARGET_IP signed with a fresh Ed25519 key nobody trusts,
//   - a Plan signed by that key and then altered, and 64 bytes of garbage.
// control_plane_attacks.sh then checks that execute enforced none of them and counted each.
//   forge_plan --bootstrap HOST:PORT [--prefix immunizer.] [--ip 203.0.113.99]
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <string>

#include "immunizer/common/kafka.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/plan_signing.hpp"
#include "immunizer/v1/records.pb.h"

namespace {

namespace v1 = immunizer::v1;

v1::Plan plan_of(const std::string& id, v1::ActionKind kind, const std::string& ip) {
  v1::Plan p;
  p.set_id(id);
  p.set_alarm_id("forged-alarm-" + id);
  p.set_policy_rule("forged");
  p.set_created_unix_nanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  p.mutable_principal()->set_ip(ip);
  auto* a = p.add_actions();
  a->set_id("action-" + id);
  a->set_kind(kind);
  if (kind == v1::ACTION_DISABLE_CALL) {
    a->set_call("http.request");
  } else {
    a->set_target_field(v1::PRINCIPAL_FIELD_IP);
    a->set_target_value(ip);
  }
  a->set_ttl_millis(3'600'000);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"forges Plans on the plans topic (a test of execute's plan verification)"};
  immunizer::common::KafkaSettings kafka;
  std::string ip = "203.0.113.99";
  app.add_option("--bootstrap", kafka.bootstrap, "Kafka bootstrap servers")->required();
  app.add_option("--prefix", kafka.topic_prefix, "topic prefix")->capture_default_str();
  app.add_option("--ip", ip, "the address the forged blocks target")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const std::string topic = kafka.topic_prefix + "plans";
  auto producer = immunizer::common::make_kafka_producer(kafka, "forge-plan", nullptr);

  const auto stranger =
      immunizer::crypto::SigningKey::from_pem(immunizer::crypto::generate_ed25519().private_pem);
  v1::Plan unsigned_disable = plan_of("forged-unsigned", v1::ACTION_DISABLE_CALL, ip);
  v1::Plan untrusted_block = plan_of("forged-untrusted", v1::ACTION_BLOCK_PRINCIPAL, ip);
  immunizer::plan::sign(untrusted_block, stranger);
  v1::Plan altered = plan_of("forged-altered", v1::ACTION_BLOCK_PRINCIPAL, ip);
  immunizer::plan::sign(altered, stranger);
  altered.mutable_actions(0)->set_ttl_millis(7'200'000);  // after signing: does not verify

  for (const auto* p : {&unsigned_disable, &untrusted_block, &altered})
    producer->produce(topic, ip, p->SerializeAsString());
  producer->produce(topic, ip, std::string(64, '\xff'));
  const auto flushed = producer->flush(std::chrono::seconds(10));
  if (!flushed.complete || flushed.failed > 0) {
    std::cerr << "forge_plan: the forgeries were not all delivered to " << topic << "\n";
    return 1;
  }
  std::cout << "forge_plan: wrote 3 forged plans and 1 garbage message to " << topic << "\n";
  return 0;
}
