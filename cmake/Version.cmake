# One version for everything: the top-level project(VERSION) becomes immunizer/version.hpp
# (IMMUNIZER_VERSION, IMMUNIZER_GIT_COMMIT), linked through the immunizer_version interface
# target and installed with the agents' headers. IMMUNIZER_GIT_COMMIT (cache) pins the
# commit, e.g. for builds from a source tarball.
set(IMMUNIZER_GIT_COMMIT "" CACHE STRING "commit recorded in the version (empty: ask git at build time)")
set(IMMUNIZER_GENERATED_INCLUDE "${CMAKE_BINARY_DIR}/gen/include")
set(IMMUNIZER_VERSION_HPP "${IMMUNIZER_GENERATED_INCLUDE}/immunizer/version.hpp")
set(_version_args -DIN=${CMAKE_CURRENT_LIST_DIR}/version.hpp.in -DOUT=${IMMUNIZER_VERSION_HPP}
    -DVERSION=${PROJECT_VERSION} -DSOURCE_DIR=${CMAKE_SOURCE_DIR} -DCOMMIT=${IMMUNIZER_GIT_COMMIT})
# Once now, so the header exists before anything is built.
execute_process(COMMAND ${CMAKE_COMMAND} ${_version_args} -P ${CMAKE_CURRENT_LIST_DIR}/GenerateVersion.cmake)
add_custom_target(immunizer_version_gen
  COMMAND ${CMAKE_COMMAND} ${_version_args} -P ${CMAKE_CURRENT_LIST_DIR}/GenerateVersion.cmake
  BYPRODUCTS ${IMMUNIZER_VERSION_HPP}
  VERBATIM)
add_library(immunizer_version INTERFACE)
target_include_directories(immunizer_version INTERFACE
  $<BUILD_INTERFACE:${IMMUNIZER_GENERATED_INCLUDE}> $<INSTALL_INTERFACE:include>)
add_dependencies(immunizer_version immunizer_version_gen)
