// immunizer-execute: plans -> signed directives to effectors, audit trail on <prefix>actions,
// gRPC EffectorControl + Operations (execute/processor.hpp, execute/dispatcher.hpp).
#include "immunizer/execute/processor.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_stage(argc, argv, immunizer::execute::kStage);
}
