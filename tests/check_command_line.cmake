# Runs COMMAND (a list) and checks that one of our programs answers its command line as
# tools/command_line.hpp promises:
#  - STATUS 2, a usage error: exit status exactly 2, nothing on stdout, and exactly one line
#    on stderr, which contains EXPECT;
#  - STATUS 0, --help: exit status 0, nothing on stderr, EXPECT on stdout.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
message("exit status: ${result}\nstdout: [${out}]\nstderr: [${err}]")
if(NOT result STREQUAL STATUS)
  message(FATAL_ERROR "the exit status is '${result}', not ${STATUS}")
endif()
if(STATUS EQUAL 0)
  set(quiet "${err}")
  set(said "${out}")
else()
  set(quiet "${out}")
  set(said "${err}")
  if(NOT err MATCHES "^[^\n]+\n$")  # text without a line break, then one line break
    message(FATAL_ERROR "stderr is not exactly one line")
  endif()
endif()
if(NOT quiet STREQUAL "")
  message(FATAL_ERROR "unexpected output on the other stream")
endif()
string(FIND "${said}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the output does not say \"${EXPECT}\"")
endif()
