// immunizer-monitor: call records -> feature vectors (monitor/processor.hpp).
#include "immunizer/monitor/processor.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_stage(argc, argv, immunizer::monitor::kStage);
}
