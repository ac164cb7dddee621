// Registering a service's metrics: one call per family or series instead of prometheus-cpp's
// builder chain (Name, Help, Register, Add) in every constructor; and forward declarations of
// the prometheus-cpp types, so public headers name Registry, Counter, Gauge, Histogram and
// Family without including prometheus-cpp (a source that uses a metric includes
// <prometheus/counter.h> and the like itself). Thread-safe, as prometheus-cpp's registry is;
// a name registered twice with another type or help throws std::invalid_argument.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace immunizer::common {

using MetricLabels = std::map<std::string, std::string>;

// A family, its series added by label values (Family::Add).
prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r,
                                                        const std::string& name,
                                                        const std::string& help);
prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& r,
                                                    const std::string& name,
                                                    const std::string& help);

// One series of a new family (no labels unless given).
prometheus::Counter& register_counter(prometheus::Registry& r, const std::string& name,
                                      const std::string& help, const MetricLabels& labels = {});
prometheus::Gauge& register_gauge(prometheus::Registry& r, const std::string& name,
                                  const std::string& help, const MetricLabels& labels = {});
prometheus::Histogram& register_histogram(prometheus::Registry& r, const std::string& name,
                                          const std::string& help,
                                          const std::vector<double>& buckets,
                                          const MetricLabels& labels = {});

}  // namespace immunizer::common
