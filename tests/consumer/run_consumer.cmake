# run_consumer.cmake - driver of the install tests (cmake -P, called by CTest).
#
# KVQ_MODE=install    install the build tree KVQ_BUILD_DIR into the empty prefix KVQ_PREFIX, and run
#                     the installed `kvq conform --backend ref` away from the source tree
# KVQ_MODE=cmake      configure, build and run tests/consumer with find_package(kvq)
# KVQ_MODE=pkgconfig  compile tests/consumer/main.c with `pkg-config --cflags --libs kvq` and
#                     backend_main.c with `pkg-config --cflags --libs kvq-backends`, and run them
#
# Every step that fails stops the script with FATAL_ERROR, which CTest reports as a failure.
cmake_minimum_required(VERSION 3.25)

foreach(var KVQ_MODE KVQ_BUILD_DIR KVQ_PREFIX KVQ_CONSUMER_SOURCE KVQ_WORK_DIR KVQ_C_COMPILER KVQ_VERSION
            KVQ_LIBDIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

# Run a command, echo it, and stop on a non-zero exit status.
function(kvq_run)
  string(JOIN " " shown ${ARGN})
  message(STATUS "run: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${shown}")
  endif()
endfunction()

# A sanitized kvq is a static library that needs the sanitizer runtimes at link time.
set(sanitize_flags "")
if(KVQ_SANITIZE)
  set(sanitize_flags -fsanitize=address,undefined)
endif()

# Shared builds: the dynamic loader must find the installed libkvq.so.
set(ENV{LD_LIBRARY_PATH} "${KVQ_PREFIX}/${KVQ_LIBDIR}:$ENV{LD_LIBRARY_PATH}")

if(KVQ_MODE STREQUAL "install")
  file(REMOVE_RECURSE ${KVQ_PREFIX})
  set(config_args "")
  if(KVQ_CONFIG)
    set(config_args --config ${KVQ_CONFIG})
  endif()
  kvq_run(${CMAKE_COMMAND} --install ${KVQ_BUILD_DIR} --prefix ${KVQ_PREFIX} ${config_args})
  foreach(file include/kvq/kvq.h include/kvq/kvq_backend.h ${KVQ_LIBDIR}/cmake/kvq/kvqConfig.cmake
               ${KVQ_LIBDIR}/cmake/kvq/kvqConfigVersion.cmake ${KVQ_LIBDIR}/cmake/kvq/kvqTargets.cmake
               ${KVQ_LIBDIR}/cmake/kvq/kvqBackendsTargets.cmake ${KVQ_LIBDIR}/pkgconfig/kvq.pc
               ${KVQ_LIBDIR}/pkgconfig/kvq-backends.pc bin/kvq share/kvq/golden/manifest.json
               share/doc/kvq/README.md share/doc/kvq/docs/CLI.md share/doc/kvq/spec/00-overview.md)
    if(NOT EXISTS ${KVQ_PREFIX}/${file})
      message(FATAL_ERROR "install is missing ${file}")
    endif()
  endforeach()
  foreach(lib kvq kvq_backends kvq_backend_common)
    file(GLOB libs ${KVQ_PREFIX}/${KVQ_LIBDIR}/lib${lib}.*)
    if(NOT libs)
      message(FATAL_ERROR "install is missing lib${lib} in ${KVQ_PREFIX}/${KVQ_LIBDIR}")
    endif()
  endforeach()
  # The installed tool judges the reference backend with the installed golden set, from a
  # directory that has no conformance/golden (golden cases only: the random ones are ctest's
  # `conform`). It names the golden set it read; that must be the installed one.
  set(away ${KVQ_WORK_DIR}/conform-installed)
  file(REMOVE_RECURSE ${away})
  file(MAKE_DIRECTORY ${away})
  execute_process(COMMAND ${KVQ_PREFIX}/bin/kvq conform --backend ref --random 0 --quiet
                  WORKING_DIRECTORY ${away} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "installed kvq conform --backend ref:\n${out}${err}")
  file(REAL_PATH ${KVQ_PREFIX}/share/kvq/golden installed_golden)
  string(REGEX MATCH "golden: +([^ ]+) " seen "${out}")
  if(seen)
    file(REAL_PATH ${CMAKE_MATCH_1} seen_golden)
  endif()
  if(NOT rc EQUAL 0 OR NOT out MATCHES "result: PASS")
    message(FATAL_ERROR "the installed kvq conform --backend ref did not pass (${rc})")
  endif()
  if(NOT seen OR NOT seen_golden STREQUAL installed_golden)
    message(FATAL_ERROR "the installed kvq conform read the golden set '${CMAKE_MATCH_1}', not ${installed_golden}")
  endif()

elseif(KVQ_MODE STREQUAL "cmake")
  set(work ${KVQ_WORK_DIR}/cmake)
  file(REMOVE_RECURSE ${work})
  string(JOIN " " flags ${sanitize_flags})
  kvq_run(${CMAKE_COMMAND} -S ${KVQ_CONSUMER_SOURCE} -B ${work} -DCMAKE_BUILD_TYPE=Release
          -DCMAKE_C_COMPILER=${KVQ_C_COMPILER} -DCMAKE_PREFIX_PATH=${KVQ_PREFIX}
          "-DCMAKE_C_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")
  kvq_run(${CMAKE_COMMAND} --build ${work})
  kvq_run(${work}/consumer)
  kvq_run(${work}/backend_consumer)

elseif(KVQ_MODE STREQUAL "pkgconfig")
  if(NOT KVQ_PKG_CONFIG)
    find_program(KVQ_PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
  endif()
  set(work ${KVQ_WORK_DIR}/pkgconfig)
  file(REMOVE_RECURSE ${work})
  file(MAKE_DIRECTORY ${work})
  # Only the scratch prefix is searched, so a kvq installed system-wide cannot answer instead.
  set(ENV{PKG_CONFIG_LIBDIR} "${KVQ_PREFIX}/${KVQ_LIBDIR}/pkgconfig")
  set(ENV{PKG_CONFIG_PATH} "")
  execute_process(COMMAND ${KVQ_PKG_CONFIG} --modversion kvq RESULT_VARIABLE rc
                  OUTPUT_VARIABLE version OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR NOT version STREQUAL KVQ_VERSION)
    message(FATAL_ERROR "pkg-config --modversion kvq gave '${version}' (${rc}), expected ${KVQ_VERSION}")
  endif()
  foreach(program "consumer;main.c;kvq" "backend_consumer;backend_main.c;kvq-backends")
    list(GET program 0 name)
    list(GET program 1 source)
    list(GET program 2 module)
    execute_process(COMMAND ${KVQ_PKG_CONFIG} --cflags --libs ${module} RESULT_VARIABLE rc
                    OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pkg-config --cflags --libs ${module} failed (${rc})")
    endif()
    separate_arguments(flags UNIX_COMMAND "${flags}")
    kvq_run(${KVQ_C_COMPILER} -std=c11 -Wall -Wextra -Wpedantic -Werror ${sanitize_flags}
            ${KVQ_CONSUMER_SOURCE}/${source} -o ${work}/${name} ${flags})
    kvq_run(${work}/${name})
  endforeach()

else()
  message(FATAL_ERROR "run_consumer.cmake: unknown KVQ_MODE '${KVQ_MODE}'")
endif()
