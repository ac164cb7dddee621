# ctest ops_config_check_every_error: `immunizer config check` on a file with mistakes of
# every kind (tests/every_error_execute.yaml) exits 2 and prints each one with its key, not
# only the first (issue 14): unknown keys, bad values and the checks execute and the Kafka
# settings make across keys.
execute_process(COMMAND "${IMMUNIZER}" config check "${FILE}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 25)
message(STATUS "exit ${rc}\n${out}${err}")
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "expected exit status 2, got ${rc}")
endif()
foreach(expected
    "'kafka.ssl_certificate_location' and 'kafka.ssl_key_location': set both"
    "'kafka.ssl_certificate_location': needs kafka.security_protocol ssl"
    "'http.port': 99999 is out of range"
    "'log.level': 'loud' is not one of"
    "'execute.default_ttl_ms' \\(7200000\\) exceeds 'execute.max_ttl_ms' \\(3600000\\)"
    "'execute.event_queue_limit': '0x10' is not a decimal integer"
    "'execute.grpc_listen': 'localhost' is not host:port"
    "'execute.guard.automatic_actions': 'log' is not one of"
    "'execute.tls_ca_file', 'execute.tls_cert_file' and 'execute.tls_key_file' are required"
    "'execute.frobnicate' \\(from [^)]*\\): unknown key"
    "'execute.default_ttl' \\(from [^)]*\\): unknown key \\(did you mean 'execute.default_ttl_ms'\\?\\)"
    "\n11 error\\(s\\)")
  if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "missing from the output: ${expected}")
  endif()
endforeach()
