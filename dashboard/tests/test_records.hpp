// Canned Alarm / ActionEvent / Score protos shared by the dashboard tests and the testbed.
#pragma once

#include <string>

#include "immunizer/v1/records.pb.h"

namespace immunizer::dashboard::testing {

// "a" + std::to_string(i) trips GCC 12's -Wrestrict false positive; this does not.
inline std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

inline v1::Alarm make_alarm(const std::string& id, int64_t at_nanos,
                            v1::Severity sev = v1::SEVERITY_HIGH) {
  v1::Alarm a;
  a.set_id(id);
  a.mutable_record_id()->set_app("shop");
  a.mutable_record_id()->set_instance("shop-1");
  a.mutable_record_id()->set_seq(42);
  a.set_model_key("shop|http GET /tienda1/publico/anadir.jsp|");
  a.mutable_principal()->set_session("sess-" + id);
  a.mutable_principal()->set_ip("10.0.0.66");
  a.set_call("http GET /tienda1/publico/anadir.jsp");
  auto* s = a.add_scores();
  s->set_detector("iforest");
  s->set_raw(0.71);
  s->set_tail_probability(0.0004);
  a.set_combined_score(3.4);
  a.set_threshold(2.0);
  a.set_severity(sev);
  auto* f = a.add_top_features();
  f->set_feature("arg.cantidad.rare_ngram");
  f->set_contribution(2.1);
  f->set_value(7.5);
  f = a.add_top_features();
  f->set_feature("arg.cantidad.len_dev");
  f->set_contribution(0.9);
  f->set_value(4.25);
  a.set_timestamp_unix_nanos(at_nanos - 30'000'000);
  a.set_raised_unix_nanos(at_nanos);
  return a;
}

inline v1::ActionEvent make_action_event(const std::string& action_id, const std::string& alarm_id,
                                         v1::ActionEventType type, int64_t at_nanos,
                                         int64_t call_nanos, int64_t ttl_ms = 600'000) {
  v1::ActionEvent e;
  e.set_action_id(action_id);
  e.set_plan_id("plan-" + action_id);
  e.set_alarm_id(alarm_id);
  e.set_type(type);
  auto* act = e.mutable_action();
  act->set_id(action_id);
  act->set_kind(v1::ACTION_BLOCK_PRINCIPAL);
  act->set_target_field(v1::PRINCIPAL_FIELD_SESSION);
  act->set_target_value("sess-" + alarm_id);
  act->set_ttl_millis(ttl_ms);
  if (type == v1::ACTION_EVENT_APPLIED) e.set_effector("shop/shop-1");
  e.set_at_unix_nanos(at_nanos);
  e.set_call_timestamp_unix_nanos(call_nanos);
  return e;
}

inline v1::Score make_score(const std::string& model_key, double score, double threshold,
                            const std::string& state) {
  v1::Score s;
  s.set_model_key(model_key);
  s.set_combined_score(score);
  s.set_threshold(threshold);
  s.set_alarmed(threshold > 0 && score > threshold);
  s.set_model_state(state);
  return s;
}

}  // namespace immunizer::dashboard::testing
