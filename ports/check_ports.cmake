# Checks the vcpkg port and the Conan recipe as far as this machine allows (neither vcpkg nor
# Conan is installed here). Run by tests/consumer/run.sh; see ports/README.md.
#
#   cmake -DSOURCE_DIR=<staticnet checkout> -P ports/check_ports.cmake
#       static checks: vcpkg.json (fields, version = project version), the portfile's calls,
#       conanfile.py's version, no hosting host names in ports/ and conanfile.py
#   cmake -DSOURCE_DIR=<checkout> -DWORK_DIR=<empty dir> [-DFEATURES=mpi] -P ports/check_ports.cmake
#       also runs portfile.cmake itself with stand-ins for the vcpkg helpers it calls: the
#       real configure and install of the checkout with the port's options into
#       WORK_DIR/packages/staticnet, then the moves vcpkg_cmake_config_fixup makes. A
#       consumer can then find_package(staticnet) with CMAKE_PREFIX_PATH=WORK_DIR/packages/staticnet.
cmake_minimum_required(VERSION 3.20)

if(NOT SOURCE_DIR OR NOT EXISTS "${SOURCE_DIR}/CMakeLists.txt")
  message(FATAL_ERROR "check_ports: pass -DSOURCE_DIR=<staticnet checkout>")
endif()
set(port_dir "${SOURCE_DIR}/ports/vcpkg/staticnet")
set(check_failures 0)
# check("<if() condition>" "what it means"): counts the failures, reports each check.
function(check condition what)
  cmake_language(EVAL CODE "if(${condition})\n set(ok TRUE)\nelse()\n set(ok FALSE)\nendif()")
  if(ok)
    message(STATUS "ok   ${what}")
  else()
    message(STATUS "FAIL ${what}")
    math(EXPR failures "${check_failures} + 1")
    set(check_failures ${failures} PARENT_SCOPE)
  endif()
endfunction()

# ---------------------------------------------------------------- the project's version
file(READ "${SOURCE_DIR}/CMakeLists.txt" cmakelists)
string(REGEX MATCH "project\\(staticnet VERSION ([0-9.]+)" _ "${cmakelists}")
set(project_version "${CMAKE_MATCH_1}")
string(REGEX MATCH "set\\(STATICNET_CMAKE_DIR \\$\\{CMAKE_INSTALL_DATADIR\\}/([^)]+)\\)" _ "${cmakelists}")
set(project_cmake_dir "share/${CMAKE_MATCH_1}")  # where the package config is installed

# ---------------------------------------------------------------- vcpkg.json
file(READ "${port_dir}/vcpkg.json" manifest)
string(JSON name ERROR_VARIABLE err GET "${manifest}" name)
check("NOT err AND name STREQUAL \"staticnet\"" "vcpkg.json: name staticnet")
string(JSON version ERROR_VARIABLE err GET "${manifest}" version)
check("NOT err AND version STREQUAL project_version" "vcpkg.json: version ${version} = project version ${project_version}")
string(JSON n_deps ERROR_VARIABLE err LENGTH "${manifest}" dependencies)
set(deps "")
set(host_deps "")
if(NOT err)
  math(EXPR last "${n_deps} - 1")
  foreach(i RANGE ${last})
    string(JSON type TYPE "${manifest}" dependencies ${i})
    if(type STREQUAL "STRING")
      string(JSON dep GET "${manifest}" dependencies ${i})
      list(APPEND deps "${dep}")
    else()
      string(JSON dep GET "${manifest}" dependencies ${i} name)
      string(JSON host ERROR_VARIABLE no_host GET "${manifest}" dependencies ${i} host)
      if(NOT no_host AND host)
        list(APPEND host_deps "${dep}")
      else()
        list(APPEND deps "${dep}")
      endif()
    endif()
  endforeach()
endif()
list(SORT deps)
list(SORT host_deps)
check("deps STREQUAL \"xsimd;xtensor;zlib\"" "vcpkg.json: dependencies xsimd, xtensor, zlib (found: ${deps})")
check("host_deps STREQUAL \"vcpkg-cmake;vcpkg-cmake-config\"" "vcpkg.json: host tools vcpkg-cmake, vcpkg-cmake-config")
string(JSON mpi_deps ERROR_VARIABLE err GET "${manifest}" features mpi dependencies)
check("NOT err AND mpi_deps MATCHES \"boost-mpi\"" "vcpkg.json: feature mpi depends on boost-mpi")

# ---------------------------------------------------------------- portfile.cmake, usage
file(READ "${port_dir}/portfile.cmake" portfile)
foreach(needle IN ITEMS
    "set(VCPKG_BUILD_TYPE release)"
    "-DSTATICNET_BUILD_TESTS=OFF" "-DSTATICNET_BUILD_EXAMPLES=OFF" "-DSTATICNET_BUILD_BENCHMARKS=OFF"
    "mpi STATICNET_MPI"
    "vcpkg_cmake_install()"
    "vcpkg_cmake_config_fixup(PACKAGE_NAME staticnet CONFIG_PATH ${project_cmake_dir})"
    "vcpkg_install_copyright(FILE_LIST \"\${SOURCE_PATH}/LICENSE\")")
  string(FIND "${portfile}" "${needle}" at)
  check("at GREATER -1" "portfile.cmake: ${needle}")
endforeach()
check("EXISTS \"${port_dir}/usage\"" "usage file")

# ---------------------------------------------------------------- conanfile.py
file(READ "${SOURCE_DIR}/conanfile.py" conanfile)
string(REGEX MATCH "\n    version = \"([^\"]+)\"" _ "${conanfile}")
check("CMAKE_MATCH_1 STREQUAL project_version" "conanfile.py: version ${CMAKE_MATCH_1} = project version ${project_version}")

# ---------------------------------------------------------------- no hosting host names
file(GLOB_RECURSE port_files "${SOURCE_DIR}/ports/*")
foreach(f IN LISTS port_files ITEMS "${SOURCE_DIR}/conanfile.py")
  file(READ "${f}" text)
  string(TOLOWER "${text}" text)
  string(REGEX MATCH "[a-z]+://|[a-z0-9-]\\.(com|org|net|io)[/:\" )\n]" host "${text}")
  check("host STREQUAL \"\"" "no URL or host name in ${f} ${host}")
endforeach()

# ---------------------------------------------------------------- run the portfile
if(WORK_DIR)
  # What vcpkg sets for a portfile, and stand-ins for the helpers it calls.
  set(PORT staticnet)
  set(VERSION "${version}")
  set(TARGET_TRIPLET x64-linux)
  set(CURRENT_PACKAGES_DIR "${WORK_DIR}/packages/staticnet")
  set(CURRENT_BUILDTREES_DIR "${WORK_DIR}/buildtrees/staticnet")
  file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}")
  file(MAKE_DIRECTORY "${CURRENT_BUILDTREES_DIR}")
  set(simulated_steps "")

  function(vcpkg_from_git)
    message(FATAL_ERROR "check_ports: the port run from the checkout must use the checkout, not vcpkg_from_git")
  endfunction()

  function(vcpkg_check_features)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "OUT_FEATURE_OPTIONS" "FEATURES")
    set(options "")
    list(LENGTH arg_FEATURES n)
    math(EXPR last "${n} - 1")
    foreach(i RANGE 0 ${last} 2)
      math(EXPR j "${i} + 1")
      list(GET arg_FEATURES ${i} feature)
      list(GET arg_FEATURES ${j} option)
      if(feature IN_LIST FEATURES)
        list(APPEND options "-D${option}=ON")
      else()
        list(APPEND options "-D${option}=OFF")
      endif()
    endforeach()
    set(${arg_OUT_FEATURE_OPTIONS} "${options}" PARENT_SCOPE)
  endfunction()

  function(vcpkg_cmake_configure)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH" "OPTIONS")
    if(NOT VCPKG_BUILD_TYPE STREQUAL "release")
      message(FATAL_ERROR "check_ports: the port must set VCPKG_BUILD_TYPE release before configuring")
    endif()
    message(STATUS "vcpkg_cmake_configure: ${arg_OPTIONS}")
    execute_process(
      COMMAND "${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-rel"
              -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}"
              -DCMAKE_INSTALL_BINDIR=bin -DCMAKE_INSTALL_LIBDIR=lib -DFETCHCONTENT_FULLY_DISCONNECTED=ON
              -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON ${arg_OPTIONS}
      OUTPUT_FILE "${CURRENT_BUILDTREES_DIR}/config-out.log" ERROR_FILE "${CURRENT_BUILDTREES_DIR}/config-err.log"
      RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      file(READ "${CURRENT_BUILDTREES_DIR}/config-err.log" log)
      message(FATAL_ERROR "check_ports: configure failed:\n${log}")
    endif()
  endfunction()

  function(vcpkg_cmake_install)
    execute_process(COMMAND "${CMAKE_COMMAND}" --install "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-rel"
                    OUTPUT_QUIET RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "check_ports: install failed")
    endif()
  endfunction()

  # What vcpkg_cmake_config_fixup does to a relocatable CMake package: moves CONFIG_PATH to
  # share/PACKAGE_NAME and shortens the prefix computations by the levels it moved up.
  function(vcpkg_cmake_config_fixup)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "PACKAGE_NAME;CONFIG_PATH" "")
    set(from "${CURRENT_PACKAGES_DIR}/${arg_CONFIG_PATH}")
    set(to "${CURRENT_PACKAGES_DIR}/share/${arg_PACKAGE_NAME}")
    if(NOT IS_DIRECTORY "${from}")
      message(FATAL_ERROR "check_ports: vcpkg_cmake_config_fixup: ${arg_CONFIG_PATH} was not installed")
    endif()
    string(REGEX MATCHALL "/" from_levels "/${arg_CONFIG_PATH}")
    list(LENGTH from_levels from_depth)
    math(EXPR moved_up "${from_depth} - 2")
    file(GLOB files RELATIVE "${from}" "${from}/*.cmake")
    file(MAKE_DIRECTORY "${to}")
    foreach(f IN LISTS files)
      file(READ "${from}/${f}" text)
      foreach(_ RANGE 1 ${moved_up})
        replace_first(text "get_filename_component(_IMPORT_PREFIX \"\${_IMPORT_PREFIX}\" PATH)\n" "")
        replace_first(text "../\" ABSOLUTE)" "\" ABSOLUTE)")  # PACKAGE_PREFIX_DIR of @PACKAGE_INIT@
      endforeach()
      file(WRITE "${to}/${f}" "${text}")
    endforeach()
    file(REMOVE_RECURSE "${from}")
    file(GLOB rest "${CURRENT_PACKAGES_DIR}/share/cmake/*")
    if(NOT rest)
      file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/share/cmake")
    endif()
  endfunction()
  # Replaces the first occurrence of `what` in the variable `var` by `with`.
  function(replace_first var what with)
    string(FIND "${${var}}" "${what}" at)
    if(at GREATER -1)
      string(LENGTH "${what}" n)
      string(SUBSTRING "${${var}}" 0 ${at} head)
      math(EXPR after "${at} + ${n}")
      string(SUBSTRING "${${var}}" ${after} -1 tail)
      set(${var} "${head}${with}${tail}" PARENT_SCOPE)
    endif()
  endfunction()

  function(vcpkg_fixup_pkgconfig)
    file(GLOB pc_files "${CURRENT_PACKAGES_DIR}/share/pkgconfig/*.pc" "${CURRENT_PACKAGES_DIR}/lib/pkgconfig/*.pc")
    foreach(pc IN LISTS pc_files)
      file(READ "${pc}" text)
      string(FIND "${text}" "${CURRENT_PACKAGES_DIR}" at)
      if(at GREATER -1)
        message(FATAL_ERROR "check_ports: ${pc} holds the absolute install path")
      endif()
    endforeach()
  endfunction()

  function(vcpkg_install_copyright)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "" "FILE_LIST")
    foreach(f IN LISTS arg_FILE_LIST)
      if(NOT EXISTS "${f}")
        message(WARNING "check_ports: ${f} does not exist: vcpkg would stop here (the project has no LICENSE yet)")
        return()
      endif()
    endforeach()
    list(GET arg_FILE_LIST 0 first)
    file(INSTALL "${first}" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
    get_filename_component(name "${first}" NAME)
    file(RENAME "${CURRENT_PACKAGES_DIR}/share/${PORT}/${name}" "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright")
  endfunction()

  message(STATUS "running ${port_dir}/portfile.cmake (FEATURES: ${FEATURES})")
  set(FEATURES core ${FEATURES})  # as vcpkg passes them
  include("${port_dir}/portfile.cmake")

  check("EXISTS \"${CURRENT_PACKAGES_DIR}/share/staticnet/staticnetConfig.cmake\"" "vcpkg layout: share/staticnet/staticnetConfig.cmake")
  check("EXISTS \"${CURRENT_PACKAGES_DIR}/share/staticnet/usage\"" "vcpkg layout: share/staticnet/usage")
  check("EXISTS \"${CURRENT_PACKAGES_DIR}/include/staticnet/staticnet.hpp\"" "vcpkg layout: include/staticnet/staticnet.hpp")
  check("NOT EXISTS \"${CURRENT_PACKAGES_DIR}/lib\" AND NOT EXISTS \"${CURRENT_PACKAGES_DIR}/debug\"" "vcpkg layout: no lib/, no debug/")
  check("NOT EXISTS \"${CURRENT_PACKAGES_DIR}/share/cmake\"" "vcpkg layout: no share/cmake left")
  if("mpi" IN_LIST FEATURES)
    check("EXISTS \"${CURRENT_PACKAGES_DIR}/share/staticnet/staticnetMpiTargets.cmake\"" "feature mpi: staticnet::mpi installed")
  else()
    check("NOT EXISTS \"${CURRENT_PACKAGES_DIR}/share/staticnet/staticnetMpiTargets.cmake\"" "no feature mpi: no staticnet::mpi")
  endif()
endif()

if(check_failures GREATER 0)
  message(FATAL_ERROR "check_ports: ${check_failures} check(s) failed")
endif()
message(STATUS "check_ports: all checks passed")
