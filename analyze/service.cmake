# The analyze service around the models library (owned by the service author).
immunizer_library(NAME immunizer_analyze
  SOURCES src/service/analyze_processor.cpp
  DEPS immunizer_models immunizer_common immunizer_proto)
immunizer_executable(NAME immunizer-analyze SOURCES src/service/main.cpp
  DEPS immunizer_analyze immunizer_analyze_score)
immunizer_test(NAME analyze_service_test SOURCES tests/service/analyze_processor_test.cpp
  DEPS immunizer_analyze)
