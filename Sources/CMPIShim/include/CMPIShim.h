// What Swift cannot import from mpi.h: the handle macros and MPI_IN_PLACE.
#ifndef DKC_CMPISHIM_H
#define DKC_CMPISHIM_H
#include <mpi.h>

MPI_Comm dkc_mpi_comm_world(void);
MPI_Datatype dkc_mpi_float(void);
MPI_Datatype dkc_mpi_double(void);
MPI_Datatype dkc_mpi_int32(void);
MPI_Datatype dkc_mpi_int64(void);
MPI_Datatype dkc_mpi_byte(void);
MPI_Op dkc_mpi_op_sum(void);
MPI_Op dkc_mpi_op_max(void);
MPI_Op dkc_mpi_op_min(void);
void *dkc_mpi_in_place(void);
int dkc_mpi_any_source(void);
int dkc_mpi_any_tag(void);
int dkc_mpi_success(void);
int dkc_mpi_max_processor_name(void);
/// Installs MPI_ERRORS_RETURN on the world communicator so every failure reaches Swift as a code.
int dkc_mpi_errors_return(void);
/// Source, tag and byte count of a completed receive.
int dkc_mpi_status_source(const MPI_Status *status);
int dkc_mpi_status_tag(const MPI_Status *status);
#endif
