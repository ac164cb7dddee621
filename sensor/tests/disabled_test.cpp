// With IMMUNIZER_SENSOR_DISABLED the API compiles (header only, no library) and does nothing.
#define IMMUNIZER_SENSOR_DISABLED 1
#include <gtest/gtest.h>

#include <vector>

#include "immunizer/sensor/sensor.hpp"

TEST(SensorDisabled, CompilesAwayToNoOps) {
  auto s = immunizer::sensor::Sensor::create({});
  immunizer::sensor::CallScope c(*s, "x");
  c.principal({"u", "s", "i"}).arg("a", 1).arg("b", std::vector<int>{1}).label("k", "v");
  c.result(1);
  EXPECT_FALSE(c.recording());
  EXPECT_EQ(s->stats().recorded, 0u);
  EXPECT_TRUE(s->flush(std::chrono::milliseconds(0)));
}
