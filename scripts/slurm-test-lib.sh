# Helpers shared by the Slurm test scripts (scripts/slurm-local-selftest, scripts/slurm-pipeline-test):
# sourced, never run. They count checks in $passed / $failed.

now_ms() { date +%s%3N; }
secs_since() { local ms=$(( $(now_ms) - $1 )); echo "$((ms / 1000)).$(( ms % 1000 / 100 ))"; }
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
check() { # description command...   (the command's own output is discarded)
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}

# Same liveness test as the start/stop scripts (zombies and recycled pids do not count).
alive() { # pid name
  local pid=$1 name=$2 stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Polls `scontrol show job` until the job has left the queue states or `bound` seconds passed;
# prints the final "JobState ExitCode" (or "TIMEDOUT_WAITING <state>").
wait_job() { # jobid bound_seconds
  local id=$1 end=$(( $(date +%s) + $2 )) line st ec
  while :; do
    line=$(scontrol show job -o "$id" 2>/dev/null || true)
    st=$(grep -oE 'JobState=[A-Z_]+' <<<"$line" | cut -d= -f2)
    ec=$(grep -oE 'ExitCode=[0-9]+:[0-9]+' <<<"$line" | cut -d= -f2)
    case "$st" in
      PENDING|RUNNING|COMPLETING|CONFIGURING|SUSPENDED|REQUEUED|REQUEUE_FED|SIGNALING|STAGE_OUT|"") ;;
      *) echo "$st $ec"; return 0 ;;
    esac
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "TIMEDOUT_WAITING ${st:-unknown}"
      scancel "$id" 2>/dev/null
      return 0
    fi
    sleep 0.3
  done
}

show_file() { # file   (indented, for the log when a check fails)
  [ -f "$1" ] && sed 's/^/      | /' "$1" || echo "      | ($1 missing)"
}

