# ctest eval_csic_small: a small `immunizer eval csic` (first 3000 training requests, 500 + 500
# test requests) through the real binaries; passes when it completes and AUC > 0.5.
if(NOT EXISTS "${DATASETS}/csic2010/normalTrafficTraining.txt.gz")
  message(STATUS "no CSIC 2010 under ${DATASETS}: skipped")
  return()
endif()
set(D "${DATASETS}/csic2010")
execute_process(
  COMMAND "${IMMUNIZER}" eval csic --training "${D}/normalTrafficTraining.txt.gz" --normal "${D}/normalTrafficTest.txt.gz"
          --anomalous "${D}/anomalousTrafficTest.txt.gz" --training-count 3000 --test-count 500
          --time-limit 160 --stall 20 --json "${OUT}"
  RESULT_VARIABLE rc TIMEOUT 170)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "immunizer eval csic failed: ${rc}")
endif()
file(READ "${OUT}" js)
string(JSON auc GET "${js}" auc)
string(JSON normal GET "${js}" normal)
string(JSON anomalous GET "${js}" anomalous)
message(STATUS "AUC ${auc} over ${normal} normal + ${anomalous} anomalous requests")
if(normal LESS 450 OR anomalous LESS 450)
  message(FATAL_ERROR "too few scored requests: ${normal} normal, ${anomalous} anomalous")
endif()
if(NOT auc GREATER 0.5)
  message(FATAL_ERROR "AUC ${auc} <= 0.5")
endif()
