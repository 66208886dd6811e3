#!/usr/bin/env bash
# A 200-step DAG on Slurm, sortie against Snakemake + snakemake-executor-plugin-slurm on the same
# cluster: time until every step is submitted, controller RPCs per step, wall time to completion.
#
#   usage: sudo benches/slurm_dag.sh [--steps N] [--only sortie|snakemake] [--sortie MODES] [--keep]
#
# Needs root (it reads sdiag and `sacctmgr show stats`, and runs both tools as SORTIE_BENCH_USER)
# and the test cluster (tests/cluster/start.sh). The DAG (benches/slurm_dag/gen.py writes it for both
# tools): 1 prep -> N-2 independent train steps -> 1 gather; every step runs `sleep 1; touch out/X`
# with 1 CPU, SORTIE_BENCH_MEM MB, 2 minutes, partition debug.
#
#   sortie     sortie run sortie.toml --executor slurm           (foreground), twice: the 198 train
#              instances as one job array (its default), then one sbatch each (array = false)
#   snakemake  snakemake --executor slurm --jobs 250 --latency-wait 5
#                        --default-resources slurm_account=sortie   (default status polling)
#
# Both run as the unprivileged bench user so that the "by user" tables of sdiag (slurmctld) and
# `sacctmgr show stats` (slurmdbd) separate them from other clients of the shared cluster. The
# counters are read before and after each run (no reset): RPCs = after - before for that user.
# Submission and end times come from `sacct -X` (whole seconds): sortie's jobs are named
# `<group>.<seq>.<run_id>`, Snakemake's all carry its "SLURM run ID" as name.
#
# --steps N       DAG size (default 200)
# --only TOOL     run one tool only
# --sortie MODES  the sortie runs, comma-separated: array, no-array (default: array,no-array)
# --keep          keep the work directory
# Knobs: SORTIE_BIN (default: cargo build --release, target/release/sortie),
#   SORTIE_BENCH_USER (sortietest), SORTIE_BENCH_MEM (256: Snakemake's in-job wrapper, a Python
#   interpreter, is OOM-killed at 64 MB), SORTIE_BENCH_VENV (default ~USER/.cache/sortie-bench/venv
#   of the bench user; created with pip if missing), SORTIE_BENCH_SNAKEMAKE_ARGS (extra arguments).
set -euo pipefail

SNAKEMAKE_VERSION=9.27.1
PLUGIN_VERSION=2.8.0

usage() { sed -n '5p' "$0" | sed 's/^#   //' >&2; exit 2; }
die() { echo "slurm_dag: $*" >&2; exit 1; }

STEPS=200 ONLY="" MODES="array,no-array" KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) [ $# -ge 2 ] || usage; STEPS=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || usage; ONLY=$2; shift 2 ;;
    --sortie) [ $# -ge 2 ] || usage; MODES=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
case "$ONLY" in ""|sortie|snakemake) ;; *) usage ;; esac
for m in ${MODES//,/ }; do case "$m" in array|no-array) ;; *) usage ;; esac; done
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 3 ] || die "--steps must be a number >= 3"

cd "$(dirname "$0")/.."
HERE=$PWD/benches/slurm_dag
BUSER=${SORTIE_BENCH_USER:-sortietest}
MEM=${SORTIE_BENCH_MEM:-256}
[ "$(id -u)" = 0 ] || die "run as root (sdiag, sacctmgr show stats, runuser)"
for c in sdiag sacctmgr sacct sbatch squeue scancel runuser python3; do
  command -v "$c" >/dev/null || die "$c not found"
done
id "$BUSER" >/dev/null 2>&1 || die "no user $BUSER (tests/cluster/start.sh creates sortietest)"
scontrol ping >/dev/null 2>&1 && sinfo -h >/dev/null 2>&1 \
  || die "no Slurm cluster answers (sudo tests/cluster/start.sh)"
BHOME=$(getent passwd "$BUSER" | cut -d: -f6)

WORK=$(mktemp -d /tmp/sortie-bench-dag.XXXXXX)
chmod 755 "$WORK"
TOOL_PID="" SORTIE_RUN="" SMK_RUN=""

# Cancel whatever of the bench is still queued (by job name), stop a tool still running.
cleanup() {
  local rc=$?
  if [ -n "$TOOL_PID" ] && kill -0 "$TOOL_PID" 2>/dev/null; then
    kill -TERM -- "-$TOOL_PID" 2>/dev/null || kill -TERM "$TOOL_PID" 2>/dev/null || true
  fi
  if [ -n "$SMK_RUN" ]; then scancel --user="$BUSER" --name="$SMK_RUN" >/dev/null 2>&1 || true; fi
  if [ -n "$SORTIE_RUN" ]; then
    squeue -h -u "$BUSER" -o '%i %j' 2>/dev/null | awk -v s=".$SORTIE_RUN" \
      'length($2) > length(s) && substr($2, length($2) - length(s) + 1) == s { print $1 }' \
      | xargs -r scancel >/dev/null 2>&1 || true
  fi
  if [ -n "$KEEP" ]; then echo "== kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the tools ----------------------------------------------------------------------------------
BIN=${SORTIE_BIN:-}
if [ -z "$BIN" ] && [ "$ONLY" != snakemake ]; then
  cargo build --release --quiet || die "cargo build --release failed"
  BIN=target/release/sortie
fi
if [ "$ONLY" != snakemake ]; then
  "$BIN" run --help 2>/dev/null | grep -q -- '--executor' || die "$BIN run has no --executor"
  mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/sortie"
  chmod 755 "$WORK/bin" "$WORK/bin/sortie"
fi

# as_user_exec DIR CMD...: become CMD, run as the bench user in DIR, in a new session (so that
# cleanup can stop its whole process group); as_user DIR CMD...: the same in a subshell.
as_user_exec() {
  local dir=$1; shift
  cd "$dir" && exec setsid runuser -u "$BUSER" -- env HOME="$BHOME" USER="$BUSER" LOGNAME="$BUSER" \
    PATH=/usr/local/bin:/usr/bin:/bin "$@"
}
as_user() { (as_user_exec "$@"); }

VENV=${SORTIE_BENCH_VENV:-$BHOME/.cache/sortie-bench/venv}
if [ "$ONLY" != sortie ]; then
  if ! as_user / "$VENV/bin/python" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
    echo "== setting up Snakemake $SNAKEMAKE_VERSION + slurm plugin $PLUGIN_VERSION in $VENV (pip)"
    mkdir -p "$(dirname "$VENV")"
    chown "$BUSER": "$(dirname "$VENV")"
    as_user / bash -c "python3 -m venv '$VENV' && '$VENV/bin/pip' install --quiet \
      snakemake==$SNAKEMAKE_VERSION snakemake-executor-plugin-slurm==$PLUGIN_VERSION" >&2 \
      || die "could not install Snakemake into $VENV"
  fi
  SMK_VERSION=$(as_user / "$VENV/bin/snakemake" --version)
  PLUGIN=$(as_user / "$VENV/bin/pip" show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version/ { print $2 }')
fi

# --- conditions ---------------------------------------------------------------------------------
others() { squeue -h -o '%u' 2>/dev/null | wc -l; }
echo "== sortie:    ${BIN:--} ($([ -n "$BIN" ] && "$BIN" --version 2>/dev/null || echo '-'))"
[ "$ONLY" = sortie ] || echo "== snakemake: $SMK_VERSION, snakemake-executor-plugin-slurm $PLUGIN ($VENV)"
echo "== slurm:     $(sinfo -V), node $(scontrol show node -o | grep -o 'CPUTot=[0-9]*') $(scontrol show node -o | grep -o 'RealMemory=[0-9]*')"
echo "== machine:   $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(others) jobs in the queue, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== DAG:       $STEPS steps (prep -> $((STEPS - 2)) train -> gather), sleep 1 each, 1 cpu, ${MEM}M, 2 min; as $BUSER"
echo "== work:      $WORK"

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
M() { python3 "$HERE/measure.py" "$@"; }
now() { date +%s.%N; }

# Wait until the bench user has nothing of ours left in the queue, so runs do not overlap.
settle() {
  for _ in $(seq 1 120); do
    [ "$(squeue -h -u "$BUSER" 2>/dev/null | wc -l)" = 0 ] && return 0
    sleep 1
  done
  echo "   (the bench user still has jobs queued; going on)"
}

run_tool() { # run_tool TOOL GEN_FLAG CMD...: TOOL is snakemake or sortie-<mode>
  local tool=$1 flag=$2; shift 2
  local d=$WORK/$tool rc t0 t1
  mkdir -p "$d"
  SORTIE_RUN="" SMK_RUN=""
  # shellcheck disable=SC2086
  python3 "$HERE/gen.py" "$d" "$STEPS" "$MEM" $flag
  chown -R "$BUSER": "$d"
  settle
  echo "== $tool: $* (load $(cut -d' ' -f1 /proc/loadavg), $(others) jobs queued by anyone)"
  M snap "$d/before.json"
  t0=$(now)
  as_user_exec "$d" "$@" > "$d/tool.log" 2>&1 &
  TOOL_PID=$!
  # The run id is only known once the tool has started: read it as soon as it appears.
  while kill -0 "$TOOL_PID" 2>/dev/null; do
    if [ "$tool" = snakemake ] && [ -z "$SMK_RUN" ]; then
      SMK_RUN=$(grep -o 'SLURM run ID: [0-9a-f-]*' "$d/tool.log" 2>/dev/null | awk '{ print $4 }' || true)
    fi
    if [ "$tool" != snakemake ] && [ -z "$SORTIE_RUN" ]; then
      SORTIE_RUN=$(ls "$d/.sortie/runs" 2>/dev/null | head -n1 || true)
    fi
    sleep 0.2
  done
  rc=0; wait "$TOOL_PID" || rc=$?
  t1=$(now)
  TOOL_PID=""
  M snap "$d/after.json"
  [ "$tool" = snakemake ] && [ -z "$SMK_RUN" ] && \
    SMK_RUN=$(grep -o 'SLURM run ID: [0-9a-f-]*' "$d/tool.log" | awk '{ print $4 }' || true)
  [ "$tool" != snakemake ] && [ -z "$SORTIE_RUN" ] && SORTIE_RUN=$(ls "$d/.sortie/runs" 2>/dev/null | head -n1 || true)
  echo "   exit $rc after $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
  if [ "$rc" != 0 ]; then
    echo "slurm_dag: $tool exited $rc; the end of its output:" >&2
    tail -n 25 "$d/tool.log" >&2
  fi
  local n
  n=$(find "$d/out" -type f | wc -l)
  [ "$n" = "$STEPS" ] || echo "   WARNING: $n of $STEPS output files exist"
  local events=""
  if [ "$tool" = snakemake ]; then
    [ -n "$SMK_RUN" ] || die "no SLURM run ID in Snakemake's log"
    M jobs "$BUSER" "$t0" --name "$SMK_RUN" "$d/jobs.json"
  else
    [ -n "$SORTIE_RUN" ] || die "no run directory under $d/.sortie/runs"
    M jobs "$BUSER" "$t0" --suffix ".$SORTIE_RUN" "$d/jobs.json"
    events=$d/.sortie/runs/$SORTIE_RUN/events.jsonl
  fi
  M result "$tool" "$STEPS" "$BUSER" "$t0" "$t1" "$d/before.json" "$d/after.json" "$d/jobs.json" \
    $events >> "$RESULTS"
  tail -n1 "$RESULTS" | M brief
}

if [ "$ONLY" != snakemake ]; then
  for m in ${MODES//,/ }; do
    flag=""; [ "$m" = no-array ] && flag=--no-array
    run_tool "sortie-$m" "$flag" env SORTIE_STATE_DIR=.state "$WORK/bin/sortie" run sortie.toml --executor slurm
  done
fi
if [ "$ONLY" != sortie ]; then
  # shellcheck disable=SC2086
  run_tool snakemake "" "$VENV/bin/snakemake" --executor slurm --jobs 250 --latency-wait 5 \
    --default-resources slurm_account=sortie ${SORTIE_BENCH_SNAKEMAKE_ARGS:-}
fi

echo
echo "$STEPS-step DAG on Slurm ($(date -u +%Y-%m-%dT%H:%MZ); times from launch; RPCs by $BUSER)"
echo
M table "$RESULTS"
echo
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
