#include "CMPIShim.h"

MPI_Comm dkc_mpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Datatype dkc_mpi_float(void) { return MPI_FLOAT; }
MPI_Datatype dkc_mpi_double(void) { return MPI_DOUBLE; }
MPI_Datatype dkc_mpi_int32(void) { return MPI_INT32_T; }
MPI_Datatype dkc_mpi_int64(void) { return MPI_INT64_T; }
MPI_Datatype dkc_mpi_byte(void) { return MPI_BYTE; }
MPI_Op dkc_mpi_op_sum(void) { return MPI_SUM; }
MPI_Op dkc_mpi_op_max(void) { return MPI_MAX; }
MPI_Op dkc_mpi_op_min(void) { return MPI_MIN; }
void *dkc_mpi_in_place(void) { return MPI_IN_PLACE; }
int dkc_mpi_any_source(void) { return MPI_ANY_SOURCE; }
int dkc_mpi_any_tag(void) { return MPI_ANY_TAG; }
int dkc_mpi_success(void) { return MPI_SUCCESS; }
int dkc_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
int dkc_mpi_errors_return(void) { return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); }
int dkc_mpi_status_source(const MPI_Status *status) { return status->MPI_SOURCE; }
int dkc_mpi_status_tag(const MPI_Status *status) { return status->MPI_TAG; }
