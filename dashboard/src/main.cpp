// immunizer-dashboard: ops web UI, JSON API and live events. Wiring only; see dashboard/api.hpp.
#include "immunizer/common/service.hpp"
#include "immunizer/dashboard/service.hpp"

int main(int argc, char** argv) {
  return immunizer::common::run_service(argc, argv, "dashboard", 8080, immunizer::dashboard::setup_service);
}
