#!/usr/bin/env bash
# Submits the whole study as a chain of Slurm jobs, each starting only when the one before it
# succeeded (sbatch --dependency=afterok):
#   data generation → base training (when the training config has a base stage) → continual training →
#   circuit sweep (one job, or a job array and a merge) → analysis
# and with --forget the forgetting experiment after the continual training (docs/forgetting.md):
#   forget training (one sub-run per replay ratio) → circuit sweep of the forgetting checkpoints
#
#   slurm/pipeline.sh [options] CONFIG      CONFIG names configs/{data,train,sweep}/CONFIG.toml
#
# Options:
#   --run DIR               run folder (default runs/CONFIG); data/, train/, circuits/, analysis/ and
#                           logs/ (the jobs' output files) go there
#   --ranks N               MPI ranks of the training and sweep jobs (default 2)
#   --cpus-per-task N       OpenBLAS threads per rank (default 1)
#   --partition P, --account A, --qos Q    passed to every sbatch
#   --time-data T, --time-train T, --time-sweep T, --time-analysis T
#                           time limits (defaults 00:30:00, 24:00:00, 24:00:00, 01:00:00); the
#                           training and sweep jobs checkpoint and requeue themselves before theirs
#   --signal-lead S         seconds before the limit at which they are told to stop (default 300)
#   --array N               run the sweep as a job array of N one-rank tasks (--part I/N each) and a
#                           merge job; N = the number of checkpoints gives one checkpoint per task
#   --forget                also submit the forget stage and the sweep of its checkpoints (stage
#                           = "forget"); the data config must write the forgetting sets (forget.n_new > 0)
#   --set-data KEY=VALUE, --set-train KEY=VALUE, --set-sweep KEY=VALUE, --set-forget-sweep KEY=VALUE
#                           extra config overrides for one step (repeatable); the forget sweep takes
#                           --set-sweep's too, then its own (e.g. 'tasks=["city"]', 'topn=[5000, 8000]')
#   --sbatch OPTION         one more option for every sbatch (repeatable), e.g. --sbatch=--mem=8G
#   --dry-run               print the sbatch commands instead of submitting them
#
# Prints one line per job ("step job-id") and, last, "jobs: data=… base=… … analysis=…", which is
# also appended to RUN/logs/pipeline-jobs.txt.
# Exit codes: 0 submitted, 64 usage error, other: sbatch refused a job (its message is shown; jobs
# already submitted are cancelled). Data generation is skipped when RUN/data already holds a data
# set; training and the sweep resume from what RUN holds, so submitting again continues a run.
set -euo pipefail

me=pipeline.sh
usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "$me: error: $*" >&2; exit 64; }
root=$(cd "$(dirname "$0")/.." && pwd)

config="" run="" ranks=2 cpus=1 array=0 lead=300 dry=0 forget=0
time_data=00:30:00 time_train=24:00:00 time_sweep=24:00:00 time_analysis=01:00:00
common=() set_data=() set_train=() set_sweep=() set_forget_sweep=()
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
while [ $# -gt 0 ]; do
  opt=$1 val=""
  case "$opt" in
    --*=*) val=${opt#*=}; opt=${opt%%=*}; set -- "$opt" "$val" "${@:2}" ;;
  esac
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --run) need "$@"; run=$2; shift 2 ;;
    --ranks) need "$@"; posint "$1" "$2"; ranks=$2; shift 2 ;;
    --cpus-per-task) need "$@"; posint "$1" "$2"; cpus=$2; shift 2 ;;
    --partition|--account|--qos) need "$@"; common+=("$1=$2"); shift 2 ;;
    --time-data) need "$@"; time_data=$2; shift 2 ;;
    --time-train) need "$@"; time_train=$2; shift 2 ;;
    --time-sweep) need "$@"; time_sweep=$2; shift 2 ;;
    --time-analysis) need "$@"; time_analysis=$2; shift 2 ;;
    --signal-lead) need "$@"; posint "$1" "$2"; lead=$2; shift 2 ;;
    --array) need "$@"; posint "$1" "$2"; array=$2; shift 2 ;;
    --set-data) need "$@"; set_data+=(--set "$2"); shift 2 ;;
    --set-train) need "$@"; set_train+=(--set "$2"); shift 2 ;;
    --set-sweep) need "$@"; set_sweep+=(--set "$2"); shift 2 ;;
    --set-forget-sweep) need "$@"; set_forget_sweep+=(--set "$2"); shift 2 ;;
    --forget) forget=1; shift ;;
    --sbatch) need "$@"; common+=("$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -*) die "unknown option '$opt' (see --help)" ;;
    *) [ -z "$config" ] || die "one CONFIG only, got '$config' and '$opt'"; config=$1; shift ;;
  esac
done
[ -n "$config" ] || { usage >&2; die "no CONFIG given (e.g. tiny, gpt2, gpt2-medium)"; }
for kind in data train sweep; do
  [ -f "$root/configs/$kind/$config.toml" ] || die "configs/$kind/$config.toml not found (configs: $(cd "$root/configs/train" && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))"
done
command -v sbatch >/dev/null 2>&1 || [ "$dry" = 1 ] || die "sbatch not found: run this on a Slurm login node"
run=$(realpath -m "${run:-runs/$config}")
[ "$dry" = 1 ] || mkdir -p "$run/logs" || die "cannot create $run/logs"

submitted=()
cancel_all() { [ "${#submitted[@]}" = 0 ] || [ "$dry" = 1 ] || scancel "${submitted[@]}" 2>/dev/null || true; }
n=0
# submit NAME DEPENDENCY SBATCH-OPTIONS... -- SCRIPT ARGS...   → sets $jid
submit() {
  local name=$1 dep=$2; shift 2
  local opts=(--parsable --job-name="dkc-$name" --output="$run/logs/%x-%j.out" --open-mode=append
              --chdir="$root" --export="ALL,DKC_HOME=$root" "${common[@]}")
  [ -z "$dep" ] || opts+=(--dependency="afterok:$dep" --kill-on-invalid-dep=yes)
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  if [ "$dry" = 1 ]; then
    n=$((n + 1)); jid="<$name>"
    printf 'sbatch'; printf ' %q' "${opts[@]}" "$@"; echo
  else
    local out
    if ! out=$(sbatch "${opts[@]}" "$@" 2>&1); then
      echo "$me: sbatch refused the $name job: $out" >&2
      cancel_all
      exit 1
    fi
    jid=${out%%;*}
    submitted+=("$jid")
  fi
  printf '%-10s %s\n' "$name" "$jid"
}

job_data="" job_base="" deps=""
if [ -f "$run/data/manifest.json" ]; then
  echo "data       kept: $run/data holds a data set"
else
  submit data "" --ntasks=1 --cpus-per-task=1 --time="$time_data" -- \
    "$root/slurm/dkc.sbatch" data generate --config "$config" --out "$run/data" "${set_data[@]}"
  job_data=$jid
fi
mpi=(--ntasks="$ranks" --cpus-per-task="$cpus" --signal="B:USR1@$lead" --requeue)
paths=(--set "data_dir=\"$run/data\"" --set "output_dir=\"$run/train\"")
# A configuration that starts from a pretrained model (stages = ["continual"], e.g. gpt2-pretrained) has no base stage.
if grep -Eq '^[[:space:]]*stages[[:space:]]*=.*"base"' "$root/configs/train/$config.toml"; then
  submit base "$job_data" "${mpi[@]}" --time="$time_train" -- \
    "$root/slurm/train.sbatch" --config "$config" --set 'stages=["base"]' "${paths[@]}" "${set_train[@]}"
  job_base=$jid continual_after=$jid
else
  echo "base       skipped: configs/train/$config.toml has no base stage"
  job_base="" continual_after=$job_data
fi
submit continual "$continual_after" "${mpi[@]}" --time="$time_train" -- \
  "$root/slurm/train.sbatch" --config "$config" --set 'stages=["continual"]' "${paths[@]}" "${set_train[@]}"
job_continual=$jid
sweep_args=(--config "$config" --set "run_dir=\"$run\"" --set "data_dir=\"$run/data\"" "${set_sweep[@]}")
if [ "$array" -gt 0 ]; then
  submit sweep "$job_continual" --array="0-$((array - 1))" --ntasks=1 --cpus-per-task="$cpus" \
    --signal="B:USR1@$lead" --requeue --time="$time_sweep" -- "$root/slurm/sweep.sbatch" "${sweep_args[@]}"
  job_parts=$jid
  submit merge "$job_parts" --ntasks=1 --cpus-per-task=1 --time="$time_analysis" -- \
    "$root/slurm/sweep.sbatch" "${sweep_args[@]}" --merge
  job_sweep=$jid
else
  submit sweep "$job_continual" "${mpi[@]}" --time="$time_sweep" -- "$root/slurm/sweep.sbatch" "${sweep_args[@]}"
  job_sweep=$jid
fi
submit analysis "$job_sweep" --ntasks=1 --cpus-per-task=1 --time="$time_analysis" -- \
  "$root/slurm/dkc.sbatch" analyze --run "$run"
job_analysis=$jid
if [ "$forget" = 1 ]; then
  submit forget "$job_continual" "${mpi[@]}" --time="$time_train" -- \
    "$root/slurm/train.sbatch" --config "$config" --set 'stages=["forget"]' "${paths[@]}" "${set_train[@]}"
  job_forget=$jid
  submit forget-sweep "$job_forget" "${mpi[@]}" --time="$time_sweep" -- \
    "$root/slurm/sweep.sbatch" "${sweep_args[@]}" --set 'stage="forget"' "${set_forget_sweep[@]}"
  job_forget_sweep=$jid
fi

line="jobs: data=${job_data:-kept} base=${job_base:-none} continual=$job_continual${job_parts:+ sweep_parts=$job_parts} sweep=$job_sweep analysis=$job_analysis${job_forget:+ forget=$job_forget forget_sweep=$job_forget_sweep}"
echo "$line"
[ "$dry" = 1 ] || echo "$(date '+%F %T') $config $line" >>"$run/logs/pipeline-jobs.txt"
echo "watch: squeue -j $(IFS=,; echo "${submitted[*]:-none}"); logs in $run/logs; report: $run/analysis/report.md"
