#pragma once
/// @file
/// `launched_by_mpirun()`: whether an MPI launcher started this process.
///
/// A program built with MPI support can then run as a plain single process when started on
/// its own (no MPI initialisation at all, a `local_communicator`) and data-parallel under
/// `mpirun`, from the same binary. Needs no MPI header.

#include <cstdlib>
#include <initializer_list>

namespace staticnet {

/// True under Open MPI's, MPICH's/Hydra's or a PMIx launcher (they set these variables).
inline bool launched_by_mpirun() noexcept {
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(variable) != nullptr) return true;
    return false;
}

}  // namespace staticnet
