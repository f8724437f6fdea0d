# What scripts/ promise a new user, checked without installing anything:
#  - install-deps.sh --train (what scripts/train.sh runs) lists no clang, OpenCV, ONNX or
#    test library, and every package it lists comes with a reason; the full set has them;
#  - train.sh asks for --train, test.sh for the full set;
#  - install-deps.sh refuses an unknown option, naming it;
#  - skip-reasons.sh finds a skipped test's reason in a CTest log, and says where it looked
#    when there is none.
function(run_script out_var status)
  execute_process(COMMAND bash ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result STREQUAL status)
    message(FATAL_ERROR "bash ${ARGN}: exit status ${result}, not ${status}\nstdout: ${out}\nstderr: ${err}")
  endif()
  set(${out_var} "${out}${err}" PARENT_SCOPE)
endfunction()

run_script(train 0 ${SCRIPTS}/install-deps.sh --list --train)
foreach(forbidden IN ITEMS "clang" "opencv" "onnx" "catch2" "nlohmann")
  string(FIND "${train}" "${forbidden}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "install-deps.sh --train would install '${forbidden}':\n${train}")
  endif()
endforeach()
foreach(needed IN ITEMS "g++" "libxtensor-dev" "libcli11-dev" "dataset-fashion-mnist")
  string(FIND "${train}" "${needed}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "install-deps.sh --train lacks ${needed}:\n${train}")
  endif()
endforeach()
string(REGEX MATCHALL "[^\n]+" lines "${train}")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^[a-z0-9.+-]+ +[^ ]")
    message(FATAL_ERROR "a package without its reason: '${line}'")
  endif()
endforeach()
run_script(full 0 ${SCRIPTS}/install-deps.sh --list)
foreach(needed IN ITEMS "clang-19" "python3-opencv" "python3-onnx" "catch2")
  string(FIND "${full}" "${needed}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "install-deps.sh (full) lacks ${needed}:\n${full}")
  endif()
endforeach()
run_script(bad 2 ${SCRIPTS}/install-deps.sh --tran)
if(NOT bad MATCHES "unknown option '--tran'")
  message(FATAL_ERROR "install-deps.sh --tran: the message does not name the option: ${bad}")
endif()
file(READ ${SCRIPTS}/train.sh train_sh)
if(NOT train_sh MATCHES "install-deps.sh --train")
  message(FATAL_ERROR "scripts/train.sh does not install the training set only")
endif()

# A CTest log with one skipped test and one that passed.
file(MAKE_DIRECTORY ${WORK}/Testing/Temporary)
file(WRITE ${WORK}/Testing/Temporary/LastTest.log
"1/2 Testing: mpi:two_hosts\n1/2 Test: mpi:two_hosts\nOutput:\n----\nSKIPPED: needs root to create network namespaces\n<end of output>\n"
"2/2 Testing: unit:ok\n2/2 Test: unit:ok\nOutput:\n----\nfine\n<end of output>\n")
run_script(reasons 0 ${SCRIPTS}/skip-reasons.sh ${WORK})
if(NOT reasons STREQUAL "skipped: mpi:two_hosts: needs root to create network namespaces\n")
  message(FATAL_ERROR "skip-reasons.sh printed: '${reasons}'")
endif()
run_script(none 2 ${SCRIPTS}/skip-reasons.sh ${WORK}/nowhere)
if(NOT none MATCHES "no CTest log at '${WORK}/nowhere/Testing/Temporary/LastTest.log'")
  message(FATAL_ERROR "skip-reasons.sh without a log: '${none}'")
endif()
