// Helpers building hand-made CallRecords for the monitor tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "immunizer/v1/records.pb.h"

namespace immunizer::monitor::testing {

inline immunizer::v1::Value str(const std::string& s) {
  immunizer::v1::Value v;
  v.set_string_value(s);
  return v;
}
inline immunizer::v1::Value num(int64_t x) {
  immunizer::v1::Value v;
  v.set_int_value(x);
  return v;
}

inline immunizer::v1::CallRecord record(
    std::vector<std::pair<std::string, immunizer::v1::Value>> args, uint64_t seq = 0,
    const std::string& call = "buy") {
  immunizer::v1::CallRecord r;
  r.mutable_id()->set_app("shop");
  r.mutable_id()->set_instance("i1");
  r.mutable_id()->set_seq(seq);
  r.set_call(call);
  for (auto& [k, v] : args) {
    auto* a = r.add_arguments();
    a->set_name(k);
    *a->mutable_value() = v;
  }
  return r;
}

inline double feature(const immunizer::v1::FeatureVector& v, const std::string& name) {
  for (int i = 0; i < v.schema().names_size(); ++i) {
    if (v.schema().names(i) == name) return v.values(i);
  }
  throw std::runtime_error("no feature " + name);
}

}  // namespace immunizer::monitor::testing
