#!/usr/bin/env bash
# Controller load, counted by slurmctld itself with sdiag, in two scenarios:
#
#   watch   watching 50 jobs for 2 minutes: sortie's poller (`sortie jobs --watch`) against what
#           turm does (squeue --json + sinfo every 2 s).
#   shared  a researcher's day: 5 detached SLURM runs + 2 TUIs (in tmux) + `sortie jobs --watch`,
#           all as the bench user, once with SORTIE_SLURM_VIEW=private (every process polls alone,
#           as before the shared view) and once shared (one polls, the others read its snapshot).
#           Load: the user's RPCs/min over the window. Reaction: the 5 runs' jobs are cancelled from
#           outside (only Slurm can tell the engines), and the time from the scancel until each
#           run's `attempt_ended` event is the reaction to a job's end (median and max).
#
#   sudo benches/slurm_load.sh [watch|shared|all]   # default all; root (sdiag -r), tests/cluster
#
# The jobs are submitted, and both watchers run, as an unprivileged user (sortietest by default), so
# sdiag's per-user table separates them from other clients of the cluster; the total RPC count minus a
# baseline window without any watcher is printed too. RPCs/min = RPCs in the window / its minutes.
# Knobs: SORTIE_BENCH_USER, SORTIE_BENCH_JOBS (50), SORTIE_BENCH_SECONDS (120),
# SORTIE_BENCH_BASELINE (60), SORTIE_BIN (default: cargo build, then target/debug/sortie).
# Exits 1 when sortie goes over 6 RPCs/min (watch), or the shared scenario over 6 RPCs/min in total
# or reacting slower than the private one (median, with 5 s of slack for the poll's phase).
set -euo pipefail
SCENARIO=${1:-all}
case "$SCENARIO" in watch|shared|all) ;; *) echo "usage: $0 [watch|shared|all]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
BUSER=${SORTIE_BENCH_USER:-sortietest}
NJOBS=${SORTIE_BENCH_JOBS:-50}
SECS=${SORTIE_BENCH_SECONDS:-120}
BASE=${SORTIE_BENCH_BASELINE:-60}
NAME="sortie-bench-load-$$"

die() { echo "slurm_load: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sdiag -r needs it)"
for c in sdiag sbatch squeue sinfo scancel runuser; do
  command -v "$c" >/dev/null || die "$c not found"
done
id "$BUSER" >/dev/null 2>&1 || die "no user $BUSER (tests/cluster/start.sh creates sortietest)"
sinfo -h >/dev/null || die "no Slurm cluster answers (sudo tests/cluster/start.sh)"

BIN=${SORTIE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --quiet || die "cargo build failed"
  BIN=target/debug/sortie
fi
"$BIN" jobs --help >/dev/null 2>&1 || die "$BIN has no \`jobs\` command"
WORK=$(mktemp -d /tmp/sortie-bench-load.XXXXXX)
chmod 755 "$WORK"
cp "$BIN" "$WORK/sortie"
chmod 755 "$WORK/sortie"

as_user() { (cd "$WORK" && runuser -u "$BUSER" -- env HOME="$WORK" USER="$BUSER" LOGNAME="$BUSER" "$@"); }

cleanup() {
  scancel --name="$NAME" --user="$BUSER" >/dev/null 2>&1 || true
  [ -n "${JOBIDS:-}" ] && scancel $JOBIDS >/dev/null 2>&1 || true
  as_user tmux -L "sortie-bench-$$" kill-server >/dev/null 2>&1 || true
  [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null || true
  for p in ${ENGINES:-}; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# sdiag's counters: "<total by type> <user's count>", and the per-type lines into $1.
read_sdiag() {
  sdiag > "$1"
  awk -v u="$BUSER" '
    /statistics by message type/ { sect = 1; next }
    /statistics by user/         { sect = 2; next }
    /^Pending RPC/               { sect = 0 }
    sect == 1 && /count:/ { match($0, /count:[0-9]+/); t += substr($0, RSTART + 6, RLENGTH - 6) }
    sect == 2 && $1 == u  { match($0, /count:[0-9]+/); n += substr($0, RSTART + 6, RLENGTH - 6) }
    END { printf "%d %d\n", t, n }' "$1"
}

types() {
  awk '/statistics by message type/ { s = 1; next } /statistics by user/ { s = 0 }
       s && /count:/ { match($0, /count:[0-9]+/); printf "      %-28s %s\n", $1, substr($0, RSTART + 6, RLENGTH - 6) }' "$1"
}

watch_scenario() {
  echo "== submitting $NJOBS jobs as $BUSER ($NAME)"
  for _ in $(seq 1 "$NJOBS"); do
    as_user sbatch --parsable -J "$NAME" -t 10 --mem=32M -c 1 -o /dev/null --wrap 'sleep 300' >/dev/null
  done
  sleep 5
  echo "   $(squeue -h -u "$BUSER" -n "$NAME" -t PD | wc -l) pending, $(squeue -h -u "$BUSER" -n "$NAME" -t R | wc -l) running"

  echo "== baseline: ${BASE}s with no watcher"
  sdiag -r >/dev/null
  sleep "$BASE"
  read -r base_total base_user < <(read_sdiag "$WORK/sdiag.base")

  echo "== sortie jobs --watch for ${SECS}s"
  sdiag -r >/dev/null
  as_user "$WORK/sortie" jobs --watch --for "${SECS}s" --user "$BUSER" > "$WORK/watch.out" 2> "$WORK/watch.err" || true
  read -r s_total s_user < <(read_sdiag "$WORK/sdiag.sortie")
  s_cmds=$(grep -o '[0-9]* Slurm commands' "$WORK/watch.err" | grep -o '^[0-9]*' || echo '?')
  s_redraws=$(grep -c '^jobs of' "$WORK/watch.out" || true)

  echo "== turm-like loop (squeue --json + sinfo every 2 s) for ${SECS}s"
  sdiag -r >/dev/null
  t_cmds=$(as_user bash -c '
    end=$((SECONDS + '"$SECS"')); n=0
    while [ $SECONDS -lt $end ]; do
      squeue --json >/dev/null 2>&1; sinfo >/dev/null 2>&1; n=$((n + 2)); sleep 2
    done
    echo $n')
  read -r t_total t_user < <(read_sdiag "$WORK/sdiag.turm")

  awk -v b="$base_total" -v bs="$BASE" -v secs="$SECS" \
      -v st="$s_total" -v su="$s_user" -v sc="$s_cmds" \
      -v tt="$t_total" -v tu="$t_user" -v tc="$t_cmds" -v user="$BUSER" -v jobs="$NJOBS" '
    BEGIN {
      m = secs / 60; bpm = b / (bs / 60)
      printf "\nController load while watching %d jobs for %ds (slurmctld RPCs counted by sdiag)\n\n", jobs, secs
      printf "%-30s %12s %14s %12s %16s\n", "watcher", "commands/min", "RPCs/min total", "- baseline", "RPCs/min (" user ")"
      printf "%-30s %12s %14.1f %12s %16s\n", "baseline (no watcher, " bs "s)", "-", bpm, "-", "-"
      printf "%-30s %12.1f %14.1f %12.1f %16.1f\n", "sortie jobs --watch", sc / m, st / m, st / m - bpm, su / m
      printf "%-30s %12.1f %14.1f %12.1f %16.1f\n", "turm-like (2 s loop)", tc / m, tt / m, tt / m - bpm, tu / m
    }'
  echo
  echo "   sortie redrew the table $s_redraws times; its own count: $(tail -n1 "$WORK/watch.err")"
  echo "   RPC types during sortie's window:"; types "$WORK/sdiag.sortie"
  echo "   RPC types during the turm-like window:"; types "$WORK/sdiag.turm"
  # The goal: sortie's poller costs the controller at most 6 RPCs a minute (its user's sdiag count).
  awk -v su="$s_user" -v tu="$t_user" -v secs="$SECS" 'BEGIN {
    s = su / (secs / 60); t = tu / (secs / 60); ok = (s <= 6)
    printf "slurm_load: sortie %.1f RPCs/min vs turm-like %.1f (%.0fx less); goal <= 6/min: %s\n",
      s, t, (s > 0 ? t / s : 0), (ok ? "met" : "MISSED")
    exit !ok }'
}

# The shared scenario once, in mode $1 (private|shared): prints "<user RPCs/min> <median s> <max s>".
shared_once() {
  local mode=$1 proj="$WORK/proj-$1" state="$WORK/state-$1" runs=() ids=() i
  mkdir -p "$proj" "$state"
  cat > "$proj/sortie.toml" <<TOML
[pipeline]
name = "load"
executor = "slurm"

[defaults]
resources = { cpus = 1, mem = "32M", time = "15m", partition = "debug" }

[[step]]
name = "long"
run = "sleep 900"
TOML
  chown -R "$BUSER" "$proj" "$state"
  local env=(SORTIE_STATE_DIR="$state")
  [ "$mode" = private ] && env+=(SORTIE_SLURM_VIEW=private)
  for i in 1 2 3 4 5; do
    as_user env "${env[@]}" sh -c "cd '$proj' && exec '$WORK/sortie' run -d sortie.toml" >/dev/null \
      || die "sortie run -d failed"
  done
  # Every run's job submitted (the engines' own sbatch is not what is measured).
  for _ in $(seq 1 120); do
    [ "$(cat "$proj"/.sortie/runs/*/events.jsonl 2>/dev/null | grep -c '"type":"job_submitted"')" -ge 5 ] && break
    sleep 1
  done
  ENGINES=$(cat "$proj"/.sortie/runs/*/events.jsonl | python3 -c '
import json, sys
print(" ".join(str(e["pid"]) for e in map(json.loads, sys.stdin) if e["type"] == "engine_started"))')
  JOBIDS=$(cat "$proj"/.sortie/runs/*/events.jsonl | python3 -c '
import json, sys
print(" ".join(e["job_id"] for e in map(json.loads, sys.stdin) if e["type"] == "job_submitted"))')
  for i in 1 2; do
    as_user tmux -L "sortie-bench-$$" new-session -d -s "tui$i-$mode" -x 160 -y 48 \
      "cd $proj && env ${env[*]} $WORK/sortie"
  done
  as_user env "${env[@]}" "$WORK/sortie" jobs --watch --for "$((SECS + 60))s" \
    > "$WORK/watch-$mode.out" 2>&1 &
  WATCH_PID=$!
  sleep 20
  sdiag -r >/dev/null
  sleep "$SECS"
  read -r _ user_rpcs < <(read_sdiag "$WORK/sdiag.$mode")
  types "$WORK/sdiag.$mode" > "$WORK/types.$mode"
  # Reaction: cancel the jobs from outside; only Slurm can tell the engines.
  local t0; t0=$(date +%s.%N)
  scancel $JOBIDS
  for _ in $(seq 1 180); do
    [ "$(cat "$proj"/.sortie/runs/*/events.jsonl | grep -c '"type":"attempt_ended"')" -ge 5 ] && break
    sleep 1
  done
  local react
  react=$(cat "$proj"/.sortie/runs/*/events.jsonl | T0="$t0" python3 -c '
import json, os, sys
t0 = float(os.environ["T0"])
d = sorted(e["ts"] - t0 for e in map(json.loads, sys.stdin) if e["type"] == "attempt_ended")
print("%.1f %.1f %d" % (d[len(d) // 2], d[-1], len(d)) if d else "nan nan 0")')
  as_user tmux -L "sortie-bench-$$" kill-server >/dev/null 2>&1 || true
  kill "$WATCH_PID" 2>/dev/null || true
  wait "$WATCH_PID" 2>/dev/null || true
  for p in $ENGINES; do kill "$p" 2>/dev/null || true; done
  sleep 2
  JOBIDS="" ENGINES="" WATCH_PID=""
  echo "$(awk -v n="$user_rpcs" -v s="$SECS" 'BEGIN { printf "%.1f", n / (s / 60) }') $react"
}

shared_scenario() {
  echo "== 5 detached runs + 2 TUIs + jobs --watch, ${SECS}s each: every process polling alone"
  read -r p_rpm p_med p_max p_n < <(shared_once private)
  echo "== the same with one shared Slurm view"
  read -r s_rpm s_med s_max s_n < <(shared_once shared)
  printf "\n%-34s %16s %22s %10s\n" "5 runs + 2 TUIs + jobs --watch" "RPCs/min ($BUSER)" "reaction median / max" "ends seen"
  printf "%-34s %16s %15ss / %ss %10s\n" "every process polls (private)" "$p_rpm" "$p_med" "$p_max" "$p_n/5"
  printf "%-34s %16s %15ss / %ss %10s\n" "one shared view" "$s_rpm" "$s_med" "$s_max" "$s_n/5"
  echo "   RPC types, private:"; cat "$WORK/types.private"
  echo "   RPC types, shared:"; cat "$WORK/types.shared"
  awk -v r="$s_rpm" -v sm="$s_med" -v pm="$p_med" -v n="$s_n" 'BEGIN {
    ok = (r <= 6 && n == 5 && sm <= pm + 5)
    printf "slurm_load: shared view %.1f RPCs/min in total (goal <= 6), reaction median %.1fs vs %.1fs alone: %s\n",
      r, sm, pm, (ok ? "met" : "MISSED")
    exit !ok }'
}

status=0
if [ "$SCENARIO" = watch ] || [ "$SCENARIO" = all ]; then watch_scenario || status=1; fi
if [ "$SCENARIO" = shared ] || [ "$SCENARIO" = all ]; then shared_scenario || status=1; fi
exit $status
