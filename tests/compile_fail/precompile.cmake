# Precompiles <staticnet/staticnet.hpp> for the compile-fail cases of one compiler: CXX, of
# kind COMPILER (gcc or clang), with FLAGS, into the header DIR/staticnet_all.hpp and its
# precompiled form beside it (.gch for GCC, .pch for clang), which either compiler's
# `-include DIR/staticnet_all.hpp` then takes instead of parsing the library again: a case
# takes about 1.5 s instead of 5 s. (Should the precompiled file not fit, GCC parses the
# header itself and the case's result is the same; clang refuses it, and says so.)
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
file(MAKE_DIRECTORY ${DIR})
file(WRITE ${DIR}/staticnet_all.hpp "#include <staticnet/staticnet.hpp>\n")
if(COMPILER STREQUAL "gcc")
  set(output ${DIR}/staticnet_all.hpp.gch)
else()
  set(output ${DIR}/staticnet_all.hpp.pch)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${CXX} -std=c++20 ${flags} -x c++-header
                        ${DIR}/staticnet_all.hpp -o ${output}
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "precompiling <staticnet/staticnet.hpp> with ${CXX} failed:\n${out}")
endif()
