// immunizer-plan: alarms -> plans under a policy. Wiring only; see plan/policy.hpp.
#include "immunizer/common/config.hpp"
#include "immunizer/common/stream_service.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/plan/service.hpp"

using namespace immunizer;

int main(int argc, char** argv) {
  return common::run_service(argc, argv, "plan", 9103, [](common::ServiceContext& ctx) {
    // Read every key first, so bad configuration fails before any connection is made.
    auto cfg = plan::PolicyConfig::from_config(ctx.config);
    const std::string group = ctx.config.get_string("plan.group", "immunizer-plan");
    // Every plan is signed; execute trusts only the public keys it is given.
    const std::string key_file = ctx.config.get_string("plan.signing_key_file", "");
    if (key_file.empty())
      throw common::ConfigError(
          "config key 'plan.signing_key_file' is empty: plan signs every plan with an Ed25519 key "
          "and execute "
          "refuses unsigned plans; set plan.signing_key_file (IMMUNIZER_PLAN_SIGNING_KEY_FILE) to "
          "a PKCS#8 PEM "
          "private key ('immunizer up' generates one in its state folder)");
    std::shared_ptr<const crypto::SigningKey> key;
    try {
      key = std::make_shared<const crypto::SigningKey>(crypto::SigningKey::load(key_file));
    } catch (const std::exception& e) {
      throw common::ConfigError(std::string("config key 'plan.signing_key_file': ") + e.what());
    }
    ctx.log->info("signing plans with key {} ({})", key->key_id(), key_file);
    const auto tuning = common::StreamTuning::from_config(ctx.config, "plan");
    return [&ctx, cfg, group, key, tuning] {
      common::KafkaMetrics metrics(*ctx.registry, "plan");
      common::SystemClock clock;
      plan::PlanProcessor proc(cfg, ctx.topics, clock, *ctx.registry, key);
      common::run_stream_service(ctx, proc, metrics, group,
                                 {ctx.topics.alarms, ctx.topics.feedback}, nullptr, tuning);
    };
  });
}
