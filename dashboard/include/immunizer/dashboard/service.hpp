// The dashboard service as common::run_service runs it: reads dashboard.* keys, adds the
// UI/API routes to the service's HTTP server and returns the consume loop. main() only
// passes this to run_service.
#pragma once

#include <functional>

#include "immunizer/common/service.hpp"

namespace immunizer::dashboard {

std::function<void()> setup_service(common::ServiceContext& ctx);

}  // namespace immunizer::dashboard
