# strata_add_test_suites(TARGET ...): one ctest entry per GoogleTest suite of TARGET, rather than
# one per case (gtest_discover_tests), so a run of about 2,300 cases starts some 250 processes
# instead of 2,300: process start-up (the loader, the CUDA libraries, the sanitizer runtimes) was
# most of the suite's time. The suites are listed when ctest starts (`--gtest_list_tests`), so
# the build itself runs nothing.
#
#   strata_add_test_suites(strata_tests
#     RESULTS_DIR dir          each suite writes dir/<suite>.json (GoogleTest's JSON report),
#                              which scripts/test_summary.py counts case by case
#     SHARDS Suite=N ...       split a long suite over N processes (GTEST_TOTAL_SHARDS)
#     COSTS Suite=seconds ...  ctest -j starts the costliest entries first; without a record
#                              of an earlier run (a fresh clone) it knows only these
#     ENVIRONMENT var=value... set for every entry
#     TIMEOUT seconds)         per entry
#
# An entry is named after its suite (Ops, CudaParity/Elementwise, ...), a shard `Suite#2of4`.
# NOTE: a suite whose cases all skip passes as far as ctest is concerned; the case counts,
# skipped ones included, come from the JSON reports.

set(_strata_test_suites_script "${CMAKE_CURRENT_LIST_FILE}")

function(strata_add_test_suites target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "RESULTS_DIR;TIMEOUT" "SHARDS;COSTS;ENVIRONMENT")
  set(include_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_suites.cmake")
  # Read by ctest in this folder: lists the suites of the built program and adds their tests.
  file(GENERATE OUTPUT "${include_file}" CONTENT
"set(STRATA_SUITES_EXECUTABLE \"$<TARGET_FILE:${target}>\")
set(STRATA_SUITES_RESULTS_DIR \"${arg_RESULTS_DIR}\")
set(STRATA_SUITES_SHARDS \"${arg_SHARDS}\")
set(STRATA_SUITES_COSTS \"${arg_COSTS}\")
set(STRATA_SUITES_ENVIRONMENT \"${arg_ENVIRONMENT}\")
set(STRATA_SUITES_TIMEOUT \"${arg_TIMEOUT}\")
set(STRATA_SUITES_TARGET \"${target}\")
include(\"${_strata_test_suites_script}\")
strata_suites_add_tests()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${include_file}")
endfunction()

# Runs inside ctest (script mode), from the generated include file above.
macro(strata_suites_add_tests)
  if(NOT EXISTS "${STRATA_SUITES_EXECUTABLE}")
    add_test("${STRATA_SUITES_TARGET}_NOT_BUILT" "${STRATA_SUITES_TARGET}_NOT_BUILT")
  else()
    execute_process(COMMAND "${STRATA_SUITES_EXECUTABLE}" --gtest_list_tests
                    OUTPUT_VARIABLE _listing RESULT_VARIABLE _status TIMEOUT 120)
    if(NOT _status EQUAL 0)
      message(FATAL_ERROR "${STRATA_SUITES_EXECUTABLE} --gtest_list_tests failed (${_status})")
    endif()
    if(STRATA_SUITES_RESULTS_DIR)
      file(MAKE_DIRECTORY "${STRATA_SUITES_RESULTS_DIR}")
      # Reports of an earlier run would be counted with this one's.
      file(GLOB _old_reports "${STRATA_SUITES_RESULTS_DIR}/*.json")
      if(_old_reports)
        file(REMOVE ${_old_reports})
      endif()
    endif()
    string(REPLACE "\n" ";" _lines "${_listing}")
    foreach(_line IN LISTS _lines)
      # A suite line starts in column 0 and ends its name with '.' ("Suite.", "Prefix/Suite.",
      # "Typed/0.  # TypeParam = float"); case lines are indented.
      if(_line MATCHES "^([^ .#][^ .]*)\\.")
        set(_suite "${CMAKE_MATCH_1}")
        set(_shards 1)
        foreach(_spec IN LISTS STRATA_SUITES_SHARDS)
          if(_spec MATCHES "^(.+)=([0-9]+)$" AND CMAKE_MATCH_1 STREQUAL _suite)
            set(_shards "${CMAKE_MATCH_2}")
          endif()
        endforeach()
        set(_cost 0)
        foreach(_spec IN LISTS STRATA_SUITES_COSTS)
          if(_spec MATCHES "^(.+)=([0-9.]+)$" AND CMAKE_MATCH_1 STREQUAL _suite)
            set(_cost "${CMAKE_MATCH_2}")
          endif()
        endforeach()
        string(REGEX REPLACE "[^A-Za-z0-9_]" "_" _file_stem "${_suite}")
        math(EXPR _last_shard "${_shards} - 1")
        foreach(_shard RANGE ${_last_shard})
          set(_name "${_suite}")
          set(_stem "${_file_stem}")
          set(_env ${STRATA_SUITES_ENVIRONMENT})
          if(_shards GREATER 1)
            math(EXPR _shard_number "${_shard} + 1")
            set(_name "${_suite}#${_shard_number}of${_shards}")
            set(_stem "${_file_stem}_${_shard_number}of${_shards}")
            list(APPEND _env "GTEST_TOTAL_SHARDS=${_shards}" "GTEST_SHARD_INDEX=${_shard}")
          endif()
          set(_args "--gtest_filter=${_suite}.*")
          if(STRATA_SUITES_RESULTS_DIR)
            list(APPEND _args "--gtest_output=json:${STRATA_SUITES_RESULTS_DIR}/${_stem}.json")
          endif()
          add_test("${_name}" "${STRATA_SUITES_EXECUTABLE}" ${_args})
          set_tests_properties("${_name}" PROPERTIES ENVIRONMENT "${_env}" COST "${_cost}")
          if(STRATA_SUITES_TIMEOUT)
            set_tests_properties("${_name}" PROPERTIES TIMEOUT "${STRATA_SUITES_TIMEOUT}")
          endif()
        endforeach()
      endif()
    endforeach()
  endif()
endmacro()
