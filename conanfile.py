"""Conan 2 recipe of staticnet (header-only). See ports/README.md for how to use it.

    conan create . [-o "staticnet/*:with_mpi=True"]

Tested with xtensor 0.24.3 and 0.27.1, xsimd 8.1.0 and 14.3.0, xtl 0.7.2 and 0.8.2 (Debian 12's
and the current releases: scripts/test.sh and scripts/test-upstream.sh); the ranges below take
the releases between them, which include/staticnet/core/compat.hpp bridges. The package holds the headers only; CMakeDeps and PkgConfigDeps generate
the consumers' files from package_info(): staticnet::staticnet, and staticnet::mpi with
with_mpi=True.
"""

import os

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class StaticnetConan(ConanFile):
    name = "staticnet"
    license = "MIT"
    version = "0.1.0"  # keep equal to project(VERSION) in CMakeLists.txt (tests/consumer/run.sh checks)
    description = "Header-only C++20 library for training statically typed CNNs, on one core or many machines"
    topics = ("deep-learning", "cnn", "neural-network", "header-only", "mpi")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"with_mpi": [True, False]}
    default_options = {"with_mpi": False}
    # package() copies the headers; the CMake files travel along so that the exported sources
    # are the project as it configures and installs (`cmake --install`), e.g. for debugging.
    exports_sources = "include/*", "cmake/*", "CMakeLists.txt", "LICENSE*"
    no_copy_source = True

    def layout(self):
        basic_layout(self, src_folder=".")

    def configure(self):
        if self.options.with_mpi:
            # ConanCenter's boost builds without Boost.MPI unless asked.
            self.options["boost"].without_mpi = False
            self.options["boost"].without_serialization = False

    def requirements(self):
        # Public headers include all of these, so they are transitive (the default for a
        # header-library's requires).
        self.requires("xtensor/[>=0.24 <0.28]")
        self.requires("xsimd/[>=8 <15]")
        self.requires("zlib/[>=1.2.11 <2]")
        if self.options.with_mpi:
            self.requires("boost/[>=1.74 <2]")
            self.requires("openmpi/[>=4.1 <6]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)
        if self.settings.os == "Windows" and self.settings.compiler == "msvc":
            raise ConanInvalidConfiguration(f"{self.ref} uses POSIX headers (unistd.h); MSVC is not supported")

    def package(self):
        copy(self, "*.hpp", src=os.path.join(self.source_folder, "include"),
             dst=os.path.join(self.package_folder, "include"))
        copy(self, "LICENSE*", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "staticnet")
        self.cpp_info.set_property("cmake_target_name", "staticnet::staticnet")  # all components
        self.cpp_info.set_property("cmake_config_version_compat", "SameMinorVersion")  # as staticnetConfigVersion
        self.cpp_info.set_property("pkg_config_name", "staticnet")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []

        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "staticnet::core")
        core.set_property("pkg_config_name", "staticnet-core")
        core.requires = ["xtensor::xtensor", "xsimd::xsimd", "zlib::zlib"]
        core.bindirs = []
        core.libdirs = []
        if self.settings.os in ("Linux", "FreeBSD"):
            core.system_libs = ["pthread", "m"]

        # Opt-in -march=native, as CMakeLists.txt's staticnet::native (see there for why).
        native = self.cpp_info.components["native"]
        native.set_property("cmake_target_name", "staticnet::native")
        native.set_property("pkg_config_name", "staticnet-native")
        native.requires = ["core"]
        native.cxxflags = ["-march=native"]
        native.bindirs = []
        native.libdirs = []

        if self.options.with_mpi:
            mpi = self.cpp_info.components["mpi"]
            mpi.set_property("cmake_target_name", "staticnet::mpi")
            mpi.set_property("pkg_config_name", "staticnet-mpi")
            mpi.requires = ["core", "boost::mpi", "boost::serialization", "openmpi::openmpi"]
            mpi.bindirs = []
            mpi.libdirs = []
