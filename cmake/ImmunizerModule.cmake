# One helper per kind of target, so every component is declared the same way.
#   immunizer_library(NAME <target> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...])
#     public headers in <component>/include, private code in <component>/src.
#   immunizer_executable(NAME <target> SOURCES ... [DEPS ...])
#   immunizer_test(NAME <target> SOURCES ... [DEPS ...] [LABELS ...] [TIMEOUT s])
#   immunizer_bench(NAME <target> SOURCES ... [DEPS ...])
#     tests and benchmarks link immunizer_testing (common/testing: fakes and fixtures), which
#     no production target links.

if(IMMUNIZER_SANITIZE)
  add_compile_options(-fsanitize=${IMMUNIZER_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${IMMUNIZER_SANITIZE})
  # A UBSan finding aborts (and so fails its test) instead of printing and going on (the
  # fuzz build below says the same).
  if(IMMUNIZER_SANITIZE MATCHES "undefined" AND NOT IMMUNIZER_FUZZ)
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()
# A test that passes on its output (PASS_REGULAR_EXPRESSION, which ignores the exit status)
# would pass with a sanitizer report after that output; in a sanitized build such a report
# fails it: immunizer_fail_on_sanitizer_report(<test>...), called where the test is added.
function(immunizer_fail_on_sanitizer_report)
  if(IMMUNIZER_SANITIZE)
    set_tests_properties(${ARGN} PROPERTIES FAIL_REGULAR_EXPRESSION
      "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: |WARNING: ThreadSanitizer")
  endif()
endfunction()
# The `fuzz` preset (clang): coverage instrumentation for libFuzzer in every library, and
# UBSan findings abort (a fuzzer only notices a crash). fuzz/ links the targets.
option(IMMUNIZER_FUZZ "build the libFuzzer targets under fuzz/ (clang)" OFF)
if(IMMUNIZER_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined)
endif()
# clang before 15 miscompiles the cleanup of temporaries in a full-expression holding a
# consteval call (fmt's checked format strings): `log()->warn("{}", x)` in a switch case
# destroys the logger temporary after its scope, which ASan reports (GCC is fine). fmt then
# checks format strings at run time instead.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
  add_compile_definitions(FMT_CONSTEVAL=)
endif()

function(immunizer_library)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${A_NAME} STATIC ${A_SOURCES})
  if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/include")
    # Relocatable, so the agents' libraries can be exported (cmake/Install.cmake).
    target_include_directories(${A_NAME} PUBLIC
      "$<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>" "$<INSTALL_INTERFACE:include>")
  endif()
  target_include_directories(${A_NAME} PRIVATE "$<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/src>")
  target_link_libraries(${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  set_target_properties(${A_NAME} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

function(immunizer_executable)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bin")
endfunction()

function(immunizer_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} immunizer_testing GTest::gtest GTest::gmock
                                             GTest::gtest_main)
  target_compile_definitions(${A_NAME} PRIVATE
    IMMUNIZER_DATASETS="${IMMUNIZER_DATASETS}"
    IMMUNIZER_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    IMMUNIZER_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/tests")
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT})
  if("unit" IN_LIST A_LABELS)
    set_property(GLOBAL APPEND PROPERTY IMMUNIZER_UNIT_TESTS ${A_NAME})  # the unit_tests target
  endif()
endfunction()

function(immunizer_bench)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} immunizer_testing)
  target_compile_definitions(${A_NAME} PRIVATE
    IMMUNIZER_DATASETS="${IMMUNIZER_DATASETS}" IMMUNIZER_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bench")
endfunction()
