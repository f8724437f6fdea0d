# vcpkg port of staticnet (header-only). See ports/README.md for how to use it and what was
# checked. Two sources:
#  - an overlay port used from a staticnet checkout (`--overlay-ports=<checkout>/ports/vcpkg`)
#    builds the checkout it lies in;
#  - copied into a registry, it fetches the sources with vcpkg_from_git: fill in the URL and
#    the commit of the release below.
set(VCPKG_BUILD_TYPE release)  # header-only: nothing differs between debug and release

get_filename_component(STATICNET_CHECKOUT "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(EXISTS "${STATICNET_CHECKOUT}/include/staticnet/staticnet.hpp" AND EXISTS "${STATICNET_CHECKOUT}/CMakeLists.txt")
  set(SOURCE_PATH "${STATICNET_CHECKOUT}")
  message(STATUS "staticnet: building the checkout at ${SOURCE_PATH}")
else()
  vcpkg_from_git(
    OUT_SOURCE_PATH SOURCE_PATH
    URL "<your-git-url>"
    REF "<full commit id of the v${VERSION} release>"
    HEAD_REF main
  )
endif()

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    mpi STATICNET_MPI
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DSTATICNET_BUILD_TESTS=OFF
    -DSTATICNET_BUILD_EXAMPLES=OFF
    -DSTATICNET_BUILD_BENCHMARKS=OFF
    -DSTATICNET_BUILD_TOOLS=OFF
    ${FEATURE_OPTIONS}
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME staticnet CONFIG_PATH share/cmake/staticnet)
vcpkg_fixup_pkgconfig()

# The feature "mpi" promises staticnet::mpi: fail here rather than in the user's project.
if("mpi" IN_LIST FEATURES AND NOT EXISTS "${CURRENT_PACKAGES_DIR}/share/staticnet/staticnetMpiTargets.cmake")
  message(FATAL_ERROR "staticnet: feature mpi requested, but the build found no MPI or Boost.MPI (no staticnet::mpi)")
endif()

# Header-only: no libraries, no debug tree.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/debug")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
