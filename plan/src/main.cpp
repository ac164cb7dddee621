// immunizer-plan: alarms -> signed plans under a policy (plan/processor.hpp, plan/policy.hpp).
#include "immunizer/plan/processor.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_stage(argc, argv, immunizer::plan::kStage);
}
