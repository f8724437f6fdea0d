# Compiles SOURCE with -fsyntax-only by CXX, a compiler of kind COMPILER (gcc or clang).
# A file with "// expect: TEXT" lines must fail to compile and the compiler output must
# contain every TEXT; "// expect-gcc: TEXT" and "// expect-clang: TEXT" lines apply to that
# compiler only (GCC names the template parameters of the failed check, `layer_position =
# 3`; clang prints only their values, `check_dense_wiring<3UL, ...>`). A file without
# expectations must compile. The C locale keeps GCC's quotes ASCII. PCH, when given, is the
# header that precompile.cmake made for this compiler: included first, it stands for the
# library's headers, whose own include guards then skip them.
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
if(PCH)
  list(APPEND flags -include ${PCH})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${CXX} -std=c++20 -fsyntax-only ${flags} ${SOURCE}
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
file(STRINGS ${SOURCE} expectations REGEX "^// expect(-${COMPILER})?: ")
file(STRINGS ${SOURCE} any_expectation REGEX "^// expect(-gcc|-clang)?: ")
if(NOT any_expectation)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${SOURCE} should compile but failed:\n${out}")
  endif()
  return()
endif()
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
foreach(line IN LISTS expectations)
  string(REGEX REPLACE "^// expect(-${COMPILER})?: " "" text "${line}")
  string(FIND "${out}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${SOURCE} failed to compile, but its diagnostics (${COMPILER}) lack \"${text}\":\n${out}")
  endif()
endforeach()
message(STATUS "${SOURCE}: fails to compile with the expected message (${COMPILER})")
