// immunizer.plans (Plan) payloads through execute's processor and dispatcher as the execute
// service runs them: actions to signed directives, folding, TTLs, audit events, state.
#include "fuzz_util.hpp"
#include "immunizer/common/ids.hpp"
#include "immunizer/execute/processor.hpp"

using namespace immunizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const common::Topics topics = common::Topics::with_prefix("f.");
  common::ManualClock clock;
  prometheus::Registry registry;
  execute::ExecuteConfig cfg;
  cfg.grpc_listen = "127.0.0.1:0";
  cfg.signing_key = std::string(32, 'k');
  execute::Dispatcher dispatcher(cfg, topics, clock, registry);
  execute::ExecuteProcessor proc(dispatcher);
  fuzz::NullProducer out;
  fuzz::run_processor(proc, {topics.plans}, data, size, out);
  clock.advance(std::chrono::hours(24 * 31));  // every TTL runs out
  proc.tick(out);
  return 0;
}
