// Shared by the effector's fuzz targets: ask an effector about the principal an action
// names, in each principal field, for the action's call and a common one (the lookups a
// host app makes after a directive was applied or refused).
#pragma once

#include <string>

#include "immunizer/effector/effector.hpp"

namespace immunizer::fuzz {

template <class Action>
void probe_allows(effector::Effector& eff, const Action& a) {
  const std::string v = a.target_value();
  for (const auto& call : {a.call(), std::string("http.request")}) {
    (void)eff.allows(effector::PrincipalView{v, "", ""}, call);
    (void)eff.allows(effector::PrincipalView{"", v, ""}, call);
    (void)eff.allows(effector::PrincipalView{"", "", v}, call);
  }
}

}  // namespace immunizer::fuzz
