#include "immunizer/common/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace immunizer::common {

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r,
                                                        const std::string& name,
                                                        const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& r,
                                                    const std::string& name,
                                                    const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

prometheus::Counter& register_counter(prometheus::Registry& r, const std::string& name,
                                      const std::string& help, const MetricLabels& labels) {
  return counter_family(r, name, help).Add(labels);
}

prometheus::Gauge& register_gauge(prometheus::Registry& r, const std::string& name,
                                  const std::string& help, const MetricLabels& labels) {
  return gauge_family(r, name, help).Add(labels);
}

prometheus::Histogram& register_histogram(prometheus::Registry& r, const std::string& name,
                                          const std::string& help,
                                          const std::vector<double>& buckets,
                                          const MetricLabels& labels) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add(
      labels, prometheus::Histogram::BucketBoundaries(buckets));
}

}  // namespace immunizer::common
