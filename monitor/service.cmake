# The monitor service around the features library (owned by the service author).
immunizer_library(NAME immunizer_monitor
  SOURCES src/service/monitor_processor.cpp
  DEPS immunizer_features immunizer_common immunizer_proto)
immunizer_executable(NAME immunizer-monitor SOURCES src/service/main.cpp DEPS immunizer_monitor)
immunizer_test(NAME monitor_service_test SOURCES tests/service/monitor_processor_test.cpp
  DEPS immunizer_monitor)
