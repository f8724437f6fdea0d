// A downstream program that uses staticnet::mpi: a compile and link check. It starts no MPI
// environment (so it runs without mpirun); it calls into Boost.MPI and MPI only to ask
// whether MPI is initialised, which is allowed before MPI_Init, so both libraries must link.
#include <staticnet/comm/mpi.hpp>

#include <cstdio>

int main() {
    int initialized = -1;
    MPI_Initialized(&initialized);
    std::printf("consumer_mpi: sizeof(staticnet::mpi_communicator) = %zu, MPI initialised: %d, Boost.MPI: %d\n",
                sizeof(staticnet::mpi_communicator), initialized, boost::mpi::environment::initialized() ? 1 : 0);
    return initialized == 0 ? 0 : 1;
}
