# cmake -P script: writes immunizer/version.hpp from version.hpp.in. Run at configure time
# and at every build (target immunizer_version_gen), so the commit stays current; the file
# is rewritten only when its content changes, so an unchanged commit rebuilds nothing.
#   -DIN=version.hpp.in -DOUT=.../immunizer/version.hpp -DVERSION=x.y.z -DSOURCE_DIR=...
#   [-DCOMMIT=...]  (given: used as is; otherwise `git rev-parse` in SOURCE_DIR, "" if none)
string(REPLACE "." ";" _parts "${VERSION}")
list(GET _parts 0 IMMUNIZER_VERSION_MAJOR)
list(GET _parts 1 IMMUNIZER_VERSION_MINOR)
list(GET _parts 2 IMMUNIZER_VERSION_PATCH)
set(IMMUNIZER_VERSION "${VERSION}")
if(DEFINED COMMIT AND NOT COMMIT STREQUAL "")
  set(IMMUNIZER_GIT_COMMIT "${COMMIT}")
else()
  set(IMMUNIZER_GIT_COMMIT "")
  find_program(_git git)
  if(_git)
    execute_process(COMMAND ${_git} -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                    OUTPUT_VARIABLE _commit RESULT_VARIABLE _rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0)
      set(IMMUNIZER_GIT_COMMIT "${_commit}")
    endif()
  endif()
endif()
configure_file("${IN}" "${OUT}" @ONLY)
