# Shared by the dkc batch scripts (slurm/*.sbatch): sourced, never run. It
#   - refuses to run outside a Slurm allocation,
#   - finds the dkc binary ($DKC, else .build/release/dkc of the checkout, else dkc on PATH),
#   - sets OPENBLAS_NUM_THREADS from --cpus-per-task,
#   - launches the ranks with `srun --kill-on-bad-exit=1 --mpi=pmix` (a rank that dies ends the whole
#     step at once; DKC_LAUNCHER=mpirun: mpirun inside the allocation),
#   - forwards the time-limit warning (--signal=B:USR1@N) to the job step, and requeues the job once
#     dkc has saved its state and exited 0, so the requeued job resumes where this one stopped.
#
# Exit codes of every batch script (also in the README's cluster section):
#   0   finished; or stopped at the time-limit warning, state saved, job requeued (it resumes by itself)
#   1   failure (I/O, MPI, a rank died): see the output file
#   64  usage error: bad option or config key, or not run inside a Slurm allocation
#   65  data error: a missing or malformed input file or results folder, named in the output
#   75  stopped at the time-limit warning with its state saved, but the job could not be requeued:
#       submit the same command again to resume
#   143 cancelled (scancel, or the hard time limit) before dkc could stop cleanly
# Environment: DKC (dkc binary), DKC_HOME (the checkout; default the submit folder),
# DKC_LAUNCHER (srun or mpirun), DKC_SRUN_MPI (srun's --mpi plugin, default pmix).

dkc_me=$(basename "${DKC_SCRIPT:-$0}")
dkc_die() { # code message
  echo "$dkc_me: error: $2" >&2
  exit "$1"
}

if [ -z "${SLURM_JOB_ID:-}" ]; then
  dkc_die 64 "not inside a Slurm allocation (SLURM_JOB_ID is unset): submit it with sbatch, e.g. 'sbatch slurm/$dkc_me --config tiny'; to run dkc without Slurm use mpirun directly (see the README)"
fi

DKC_HOME=${DKC_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ -z "${DKC:-}" ]; then
  if [ -x "$DKC_HOME/.build/release/dkc" ]; then
    DKC=$DKC_HOME/.build/release/dkc
  elif command -v dkc >/dev/null 2>&1; then
    DKC=$(command -v dkc)
  else
    dkc_die 64 "no dkc binary: not at $DKC_HOME/.build/release/dkc (run 'swift build -c release' there) and not on PATH; or set DKC=/path/to/dkc"
  fi
fi
[ -x "$DKC" ] || dkc_die 64 "DKC=$DKC is not an executable"

# One OpenBLAS pool of --cpus-per-task threads per rank. srun no longer reads SLURM_CPUS_PER_TASK
# from the environment (Slurm ≥ 22.05), so it is passed to srun explicitly below.
dkc_cpus=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$dkc_cpus
# OpenMPI refuses to start as root unless told; test clusters and containers often run jobs as root.
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

echo "$dkc_me: job ${SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} task(s) × $dkc_cpus CPU(s), restart ${SLURM_RESTART_COUNT:-0}, $(date '+%F %T')"
echo "$dkc_me: dkc = $DKC"

dkc_step_pid=""
dkc_stop=""
dkc_on_signal() { # name
  # USR1 is the warning before the time limit (or a preemption): stop, save, requeue. TERM is
  # scancel or the limit itself: stop and save, no requeue.
  [ "$1" = TERM ] && dkc_stop=TERM || dkc_stop=${dkc_stop:-USR1}
  echo "$dkc_me: got SIG$1 at $(date '+%T'): asking dkc to save its state and stop"
  # srun and mpirun both forward USR1 to every rank; dkc's ranks finish their step or cells, write
  # the checkpoint or the result files, and exit 0.
  [ -z "$dkc_step_pid" ] || kill -USR1 "$dkc_step_pid" 2>/dev/null || true
}
trap 'dkc_on_signal USR1' USR1
trap 'dkc_on_signal TERM' TERM

# Runs `dkc ARGS...` on the job's ranks and waits for it, forwarding signals; returns its exit code.
dkc_launch() {
  local launcher=${DKC_LAUNCHER:-srun}
  case "$launcher" in
    srun) srun --kill-on-bad-exit=1 --mpi="${DKC_SRUN_MPI:-pmix}" --cpus-per-task="$dkc_cpus" --export="ALL,OPENBLAS_NUM_THREADS=$dkc_cpus" "$DKC" "$@" & ;;
    mpirun) mpirun --bind-to none -x OPENBLAS_NUM_THREADS "$DKC" "$@" & ;;
    *) dkc_die 64 "DKC_LAUNCHER must be srun or mpirun, got '$launcher'" ;;
  esac
  dkc_wait $!
}

# Runs `dkc ARGS...` as one process in the batch shell (data generation, merge, analysis).
dkc_single() {
  "$DKC" "$@" &
  dkc_wait $!
}

# Waits for the step, also across signals (bash's wait returns when a trapped signal arrives).
dkc_wait() { # pid
  local rc
  dkc_step_pid=$1
  while :; do
    wait "$dkc_step_pid"
    rc=$?
    if [ "$rc" -gt 128 ] && kill -0 "$dkc_step_pid" 2>/dev/null; then continue; fi
    break
  done
  if [ "$rc" -gt 128 ]; then   # interrupted wait: the step may have ended meanwhile; get its status
    wait "$dkc_step_pid" 2>/dev/null
    local again=$?
    [ "$again" = 127 ] || rc=$again
  fi
  dkc_step_pid=""
  return "$rc"
}

# Ends the batch script after the step: requeues on the USR1 path when dkc saved its state.
dkc_finish() { # step exit code
  local rc=$1
  if [ "$dkc_stop" = USR1 ] && [ "$rc" = 0 ]; then
    local id=$SLURM_JOB_ID
    [ -z "${SLURM_ARRAY_TASK_ID:-}" ] || id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
    echo "$dkc_me: state saved; requeueing job $id, which resumes where this run stopped"
    if scontrol requeue "$id"; then exit 0; fi
    echo "$dkc_me: error: scontrol requeue $id failed (was the job submitted with --requeue?): submit the same command again to resume" >&2
    exit 75
  fi
  if [ "$rc" = 0 ]; then
    echo "$dkc_me: done at $(date '+%F %T')"
  else
    echo "$dkc_me: dkc exited with $rc (1 failure, 64 usage error, 65 data error: the message above names the cause)" >&2
  fi
  exit "$rc"
}
