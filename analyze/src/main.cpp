// immunizer-analyze: `run` (the default) is the analyze stage; `score` scores a file offline
// with the same detectors (analyze/processor.hpp).
#include "immunizer/analyze/processor.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_stage(argc, argv, immunizer::analyze::kStage);
}
