// immunizer-dashboard: ops web UI, JSON API and live events (dashboard/processor.hpp,
// dashboard/api.hpp).
#include "immunizer/dashboard/processor.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_stage(argc, argv, immunizer::dashboard::kStage);
}
