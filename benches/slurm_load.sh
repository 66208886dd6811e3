#!/usr/bin/env bash
# Controller load of watching 50 jobs for 2 minutes: sortie's poller (`sortie jobs --watch`) against
# what turm does (squeue --json + sinfo every 2 s), counted by slurmctld itself with sdiag.
#
#   sudo benches/slurm_load.sh            # needs root (sdiag -r) and the test cluster (tests/cluster)
#
# The jobs are submitted, and both watchers run, as an unprivileged user (sortietest by default), so
# sdiag's per-user table separates them from other clients of the cluster; the total RPC count minus a
# baseline window without any watcher is printed too. RPCs/min = RPCs in the window / its minutes.
# Knobs: SORTIE_BENCH_USER, SORTIE_BENCH_JOBS (50), SORTIE_BENCH_SECONDS (120),
# SORTIE_BENCH_BASELINE (60), SORTIE_BIN (default: cargo build, then target/debug/sortie).
# Exits 1 when sortie goes over 6 RPCs/min.
set -euo pipefail

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
