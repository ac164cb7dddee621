# Packaging: the agents as shared libraries (next to the static ones every in-tree target
# links), `cmake --install` rules, find_package(Immunizer CONFIG) files, pkg-config files
# and CPack .deb packages. Included last from the top-level CMakeLists.txt.
#
# Exported targets (namespace Immunizer::):
#   sensor, effector                 shared libraries libimmunizer-{sensor,effector}.so
#                                    (C++ and C APIs), SOVERSION below
#   sensor_static, effector_static   the same as static libraries (libimmunizer-*.a)
#   sensor_c, effector_c             the C API (immunizer/sensor.h, immunizer/effector.h):
#                                    the shared libraries, for C programs and FFIs
#   version                          immunizer/version.hpp
# Install components: agents (runtime .so), dev (headers, .a, .so links, CMake and
# pkg-config files), services (the services, the CLI and the demo programs in bin/).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# During 0.x every minor release may break the ABI (docs/compatibility.md): the SONAME
# carries major.minor; from 1.0 it carries the major version only.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(IMMUNIZER_SOVERSION "${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}")
  set(IMMUNIZER_VERSION_COMPATIBILITY SameMinorVersion)
else()
  set(IMMUNIZER_SOVERSION "${PROJECT_VERSION_MAJOR}")
  set(IMMUNIZER_VERSION_COMPATIBILITY SameMajorVersion)
endif()

# --- shared agent libraries ----------------------------------------------------------------
# <agent>: sensor | effector; its static library is immunizer_<agent>.
function(immunizer_shared_agent agent)
  set(static immunizer_${agent})
  set(shared immunizer_${agent}_shared)
  set_target_properties(${static} PROPERTIES OUTPUT_NAME immunizer-${agent} EXPORT_NAME ${agent}_static)
  add_library(${shared} SHARED ${CMAKE_SOURCE_DIR}/cmake/empty.cpp)
  target_link_libraries(${shared} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${static}>")
  target_link_libraries(${shared} PUBLIC Threads::Threads immunizer_version)
  target_include_directories(${shared} PUBLIC
    "$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/${agent}/include>" "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  get_target_property(defs ${static} INTERFACE_COMPILE_DEFINITIONS)
  if(defs)
    target_compile_definitions(${shared} PUBLIC ${defs})
  endif()
  set_target_properties(${shared} PROPERTIES
    OUTPUT_NAME immunizer-${agent} EXPORT_NAME ${agent}
    VERSION ${PROJECT_VERSION} SOVERSION ${IMMUNIZER_SOVERSION}
    LIBRARY_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/lib")
  add_library(immunizer_${agent}_c INTERFACE)
  target_link_libraries(immunizer_${agent}_c INTERFACE ${shared})
  set_target_properties(immunizer_${agent}_c PROPERTIES EXPORT_NAME ${agent}_c)
  add_library(Immunizer::${agent} ALIAS ${shared})
  add_library(Immunizer::${agent}_static ALIAS ${static})
  add_library(Immunizer::${agent}_c ALIAS immunizer_${agent}_c)
endfunction()

set(IMMUNIZER_EXPORTED immunizer_version)
foreach(agent sensor effector)
  if(TARGET immunizer_${agent})
    immunizer_shared_agent(${agent})
    list(APPEND IMMUNIZER_EXPORTED immunizer_${agent} immunizer_${agent}_shared immunizer_${agent}_c)
  endif()
endforeach()
if(TARGET immunizer_effector_shared)
  # directive_signing.hpp includes the generated control.pb.h.
  target_include_directories(immunizer_effector_shared PUBLIC "$<BUILD_INTERFACE:${CMAKE_BINARY_DIR}/proto/gen>")
  target_link_libraries(immunizer_effector_shared PUBLIC protobuf::libprotobuf)
endif()
# Static libraries the static agents link (their objects are inside the shared ones).
foreach(internal immunizer_proto immunizer_directive_signing immunizer_crypto immunizer_grpc_tls)
  if(TARGET ${internal})
    string(REPLACE "immunizer_" "" name ${internal})
    set_target_properties(${internal} PROPERTIES EXPORT_NAME ${name})
    list(APPEND IMMUNIZER_EXPORTED ${internal})
  endif()
endforeach()
# The integrations (docs/integrate.md), static libraries over the static agents:
# Immunizer::principal, Immunizer::grpc_interceptor, Immunizer::httplib_middleware.
set(IMMUNIZER_HAS_HTTPLIB_MIDDLEWARE OFF)
foreach(integration immunizer_principal immunizer_grpc_interceptor immunizer_httplib_middleware)
  if(TARGET ${integration})
    string(REPLACE "immunizer_" "" name ${integration})
    set_target_properties(${integration} PROPERTIES EXPORT_NAME ${name})
    list(APPEND IMMUNIZER_EXPORTED ${integration})
    add_library(Immunizer::${name} ALIAS ${integration})
  endif()
endforeach()
if(TARGET immunizer_httplib_middleware)
  set(IMMUNIZER_HAS_HTTPLIB_MIDDLEWARE ON)
endif()
set_target_properties(immunizer_version PROPERTIES EXPORT_NAME version)
add_library(Immunizer::version ALIAS immunizer_version)

# --- install: agents -------------------------------------------------------------------------
set(IMMUNIZER_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/Immunizer")
install(TARGETS ${IMMUNIZER_EXPORTED} EXPORT ImmunizerTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT agents NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(agent sensor effector)
  if(TARGET immunizer_${agent})
    install(DIRECTORY ${CMAKE_SOURCE_DIR}/${agent}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
  endif()
endforeach()
if(TARGET immunizer_principal)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/integrations/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
endif()
# directive_signing.hpp includes the crypto header.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/crypto/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES ${IMMUNIZER_VERSION_HPP} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/immunizer COMPONENT dev)
install(DIRECTORY ${CMAKE_BINARY_DIR}/proto/gen/immunizer/v1/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/immunizer/v1
  COMPONENT dev FILES_MATCHING PATTERN "*.pb.h")
install(EXPORT ImmunizerTargets NAMESPACE Immunizer:: DESTINATION ${IMMUNIZER_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/ImmunizerConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/ImmunizerConfig.cmake INSTALL_DESTINATION ${IMMUNIZER_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/ImmunizerConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${IMMUNIZER_VERSION_COMPATIBILITY})
install(FILES ${CMAKE_BINARY_DIR}/cmake/ImmunizerConfig.cmake ${CMAKE_BINARY_DIR}/cmake/ImmunizerConfigVersion.cmake
  DESTINATION ${IMMUNIZER_CMAKE_DIR} COMPONENT dev)

# pkg-config, relocatable: the prefix is found from the .pc file's own folder.
file(RELATIVE_PATH IMMUNIZER_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
foreach(agent sensor effector)
  if(TARGET immunizer_${agent})
    configure_file(${CMAKE_SOURCE_DIR}/cmake/immunizer-${agent}.pc.in ${CMAKE_BINARY_DIR}/pkgconfig/immunizer-${agent}.pc @ONLY)
    install(FILES ${CMAKE_BINARY_DIR}/pkgconfig/immunizer-${agent}.pc
      DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
  endif()
endforeach()

set(_components agents dev services)
set(_packages immunizer-agents immunizer-agents-dev immunizer-services)  # the .deb names below

# --- install: services, CLI and demo programs ------------------------------------------------
set(IMMUNIZER_PROGRAMS)
foreach(bin immunizer immunizer-monitor immunizer-analyze immunizer-analyze-score immunizer-plan
            immunizer-execute immunizer-dashboard immunizer-shop immunizer-replay)
  if(TARGET ${bin})
    list(APPEND IMMUNIZER_PROGRAMS ${bin})
  endif()
endforeach()
if(IMMUNIZER_PROGRAMS)
  install(TARGETS ${IMMUNIZER_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT services)
  install(FILES ${CMAKE_SOURCE_DIR}/execute/execute.example.yaml
    DESTINATION ${CMAKE_INSTALL_DATADIR}/immunizer/examples COMPONENT services)
endif()
foreach(component package IN ZIP_LISTS _components _packages)
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE ${CMAKE_SOURCE_DIR}/NOTICE ${CMAKE_SOURCE_DIR}/CHANGELOG.md
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
endforeach()

# --- CPack: .deb packages immunizer-agents, immunizer-agents-dev, immunizer-services --------
set(IMMUNIZER_PACKAGE_MAINTAINER "Immunizer maintainers <maintainers@immunizer.invalid>"
  CACHE STRING "Maintainer field of the .deb packages")
set(CPACK_PACKAGE_NAME immunizer)
set(CPACK_PACKAGE_VENDOR "The Immunizer authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Self-protecting applications: in-app agents and a Kafka MAPE-K pipeline")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL agents dev)
if(IMMUNIZER_PROGRAMS)
  list(APPEND CPACK_COMPONENTS_ALL services)
endif()
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${IMMUNIZER_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_AGENTS_PACKAGE_NAME immunizer-agents)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME immunizer-agents-dev)
set(CPACK_DEBIAN_SERVICES_PACKAGE_NAME immunizer-services)
set(CPACK_DEBIAN_AGENTS_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# What ImmunizerConfig.cmake and the .pc files look for.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "librdkafka-dev, libgrpc++-dev, protobuf-compiler-grpc, libprotobuf-dev, libssl-dev, prometheus-cpp-dev, libspdlog-dev, pkg-config")
if(IMMUNIZER_HAS_HTTPLIB_MIDDLEWARE)
  string(APPEND CPACK_DEBIAN_DEV_PACKAGE_DEPENDS ", libcpp-httplib-dev, nlohmann-json3-dev")
endif()
set(CPACK_COMPONENT_AGENTS_DESCRIPTION "Immunizer sensor and effector shared libraries")
set(CPACK_COMPONENT_DEV_DESCRIPTION "Immunizer agents and integrations (gRPC interceptor, cpp-httplib middleware): headers, static libraries, CMake and pkg-config files")
set(CPACK_COMPONENT_SERVICES_DESCRIPTION "Immunizer services (monitor, analyze, plan, execute, dashboard), CLI and demo")
set(CPACK_COMPONENT_DEV_DEPENDS agents)
include(CPack)
