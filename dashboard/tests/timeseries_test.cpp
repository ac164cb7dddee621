#include "immunizer/dashboard/timeseries.hpp"

#include <gtest/gtest.h>

namespace immunizer::dashboard {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

nlohmann::json stats(double scored, double blocks) {
  return {{"rates", {{"scored_per_second", scored}, {"alarms_last_minute", 7}}},
          {"incidents", {{"open", 2}}},
          {"blocks_active", blocks},
          {"latency_call_to_applied_ms", {{"p50", nullptr}}}};
}

TEST(TimeSeriesTest, SamplesOncePerIntervalAndKeepsTheNewestPoints) {
  TimeSeries ts(5 * kSecond, 3);
  EXPECT_TRUE(ts.maybe_sample(100 * kSecond, stats(1, 0)));
  EXPECT_FALSE(ts.maybe_sample(104 * kSecond, stats(2, 0)));  // within the interval
  for (int i = 1; i <= 4; ++i)
    EXPECT_TRUE(ts.maybe_sample((100 + 5 * i) * kSecond, stats(10 + i, i)));
  ASSERT_EQ(ts.size(), 3u);
  const auto j = ts.to_json();
  EXPECT_EQ(j["interval_ms"], 5000);
  ASSERT_EQ(j["points"].size(), 3u);
  // Oldest first: samples 2, 3 and 4 (the first two were pushed out).
  EXPECT_EQ(j["points"][0]["t"], 110'000);
  EXPECT_DOUBLE_EQ(j["points"][0]["scored_per_second"].get<double>(), 12);
  EXPECT_DOUBLE_EQ(j["points"][2]["blocks_active"].get<double>(), 4);
  EXPECT_DOUBLE_EQ(j["points"][2]["alarms_last_minute"].get<double>(), 7);
  EXPECT_DOUBLE_EQ(j["points"][2]["incidents_open"].get<double>(), 2);
}

TEST(TimeSeriesTest, MissingOrNonNumericFieldsAreZeroAndNoLatencyIsNull) {
  TimeSeries ts(kSecond, 10);
  ts.maybe_sample(kSecond, {{"rates", "garbage"}, {"blocks_active", "3"}});
  const auto p = ts.to_json()["points"][0];
  EXPECT_DOUBLE_EQ(p["scored_per_second"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(p["blocks_active"].get<double>(), 0);
  EXPECT_TRUE(p["latency_p50_ms"].is_null());
  EXPECT_DOUBLE_EQ(p["records_lost"].get<double>(), 0);
}

TEST(TimeSeriesTest, LatencyAndLossAreCarried) {
  TimeSeries ts(kSecond, 10);
  ts.maybe_sample(kSecond, {{"latency_call_to_applied_ms", {{"p50", 180.5}}},
                            {"pipeline", {{"records_lost", 12}}}});
  const auto p = ts.to_json()["points"][0];
  EXPECT_DOUBLE_EQ(p["latency_p50_ms"].get<double>(), 180.5);
  EXPECT_DOUBLE_EQ(p["records_lost"].get<double>(), 12);
}

}  // namespace
}  // namespace immunizer::dashboard
