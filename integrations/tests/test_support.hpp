// Helpers for the integrations tests: a sensor on an in-process broker, reading its records
// back, and signed block directives applied to an offline effector.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "immunizer/common/kafka.hpp"
#include "immunizer/common/mock_broker.hpp"
#include "immunizer/crypto/ed25519.hpp"
#include "immunizer/effector/directive_signing.hpp"
#include "immunizer/effector/effector.hpp"
#include "immunizer/sensor/sensor.hpp"
#include "immunizer/v1/call_records.hpp"
#include "immunizer/v1/records.pb.h"

namespace immunizer::integrations::testing {

struct Bed {
  common::MockBroker broker{1, {{"immunizer.calls", 1}}};
  std::shared_ptr<sensor::Sensor> sensor;
  std::shared_ptr<effector::Effector> effector;
  std::unique_ptr<common::Consumer> consumer;
  int directive_seq = 0;
  crypto::KeyPair keys = crypto::generate_ed25519();
  crypto::SigningKey signing = crypto::SigningKey::from_pem(keys.private_pem);

  Bed() {
    sensor::SensorConfig cfg;
    cfg.app = "app";
    cfg.instance = "t";
    cfg.bootstrap = broker.bootstrap();
    cfg.cpu_budget = 0;  // record everything
    sensor = sensor::Sensor::create(cfg);
    effector::EffectorConfig e;
    e.app = "app";
    e.execute_address = "127.0.0.1:1";  // never started: directives are applied out of band
    e.directive_public_keys = {keys.public_pem};
    e.tls = "none";  // never connects
    effector = effector::Effector::create(e);
    common::KafkaSettings ks;
    ks.bootstrap = broker.bootstrap();
    consumer = common::make_kafka_consumer(ks, "t", {"immunizer.calls"}, nullptr);
  }

  // Blocks a principal field's value (optionally for one call only).
  void block(v1::PrincipalField field, const std::string& value, const std::string& call = "") {
    v1::Directive d;
    ++directive_seq;
    d.set_id("dir-" + std::to_string(directive_seq));
    d.set_issued_unix_nanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
    auto* a = d.mutable_action();
    a->set_id("act-" + std::to_string(directive_seq));
    a->set_kind(call.empty() ? v1::ACTION_BLOCK_PRINCIPAL : v1::ACTION_ABORT_CALL);
    a->set_target_field(field);
    a->set_target_value(value);
    a->set_call(call);
    a->set_ttl_millis(600000);
    effector::sign(d, signing);
    std::string why;
    ASSERT_TRUE(effector->apply(d, &why)) << why;
  }

  // Flushes the sensor and reads `n` records (fewer at the deadline).
  std::vector<v1::CallRecord> records(size_t n) {
    EXPECT_TRUE(sensor->flush(std::chrono::seconds(10)));
    std::vector<v1::CallRecord> recs;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (recs.size() < n && std::chrono::steady_clock::now() < deadline)
      for (const auto& m : consumer->poll(100, std::chrono::milliseconds(100)))
        EXPECT_TRUE(v1::parse_call_records(m.payload, &recs));
    return recs;
  }
};

inline const v1::CallRecord* find_call(const std::vector<v1::CallRecord>& recs,
                                       const std::string& call) {
  for (const auto& r : recs)
    if (r.call() == call) return &r;
  return nullptr;
}

inline const v1::Value* arg(const v1::CallRecord& r, const std::string& name) {
  for (const auto& a : r.arguments())
    if (a.name() == name) return &a.value();
  return nullptr;
}

inline std::string label(const v1::CallRecord& r, std::string_view key) {
  const std::string* p = v1::find_label(r, key);
  return p ? *p : std::string();
}

// A map entry's value (an empty Value when absent).
inline const v1::Value& field(const v1::ValueFields& m, std::string_view key) {
  static const v1::Value kNone;
  const v1::Value* p = v1::find_field(m, key);
  return p ? *p : kNone;
}

}  // namespace immunizer::integrations::testing
