#!/usr/bin/env bash
# TUI startup and idle bench: the release binary in a detached tmux session (160×48, the wide layout).
#
#   startup   `sortie` opened in a temp project holding a few finished runs; the time from
#             `tmux new-session` until `tmux capture-pane -p` shows the header text " sortie " (the
#             first frame), and until it shows " live " (the first frame with data). Polled every
#             5 ms; N repetitions, median reported. The same loop with a program that only prints
#             " sortie " gives the tmux + polling floor, printed beside it.
#   idle      CPU and memory of the TUI process over a window (default 60 s, after 5 s to settle):
#             (a) watching a live run (one step appending a metric line every second, ~200 s long)
#             during its first minute, when running durations show seconds, then (a') the same run
#             after its first minute (a training run's usual state: durations show minutes, and only
#             new metric points redraw); (b) on finished runs only (truly idle). CPU from
#             /proc/PID/task/*/schedstat (on-CPU ns per thread, exact) and, for comparison, from
#             /proc/PID/stat utime+stime (clock ticks, `getconf CLK_TCK`: at 100 Hz one tick is
#             0.017 % of a core over 60 s, and ticks are sampled, so they only confirm the order of
#             magnitude); memory from VmHWM/VmRSS in /proc/PID/status.
#
# Targets (exit 1 if one is missed): startup to first frame ≤ 100 ms (median); watching a live run,
# in its first minute and after it, ≤ 0.1 % of a core (schedstat) and RSS ≤ 40 MB. The finished-run
# figures are for context, as is turm (0.03 % CPU, 4 MB idle).
#
# Usage: benches/tui_idle.sh [--reps N] [--window SECONDS]
# Env:   SORTIE_BIN (default: target/release/sortie, built if missing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPS=5
WINDOW=60
SETTLE=5
STARTUP_GOAL_MS=100
CPU_GOAL_PCT=0.1
RSS_GOAL_MB=40
POLL_S=2

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) REPS="$2"; shift ;;
        --window) WINDOW="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tui_idle.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

command -v tmux >/dev/null || { echo "tui_idle.sh: tmux is needed" >&2; exit 2; }

SORTIE_BIN="${SORTIE_BIN:-$ROOT/target/release/sortie}"
if [[ ! -x "$SORTIE_BIN" ]]; then
    echo "== building $SORTIE_BIN (cargo build --release)" >&2
    (cd "$ROOT" && cargo build --release)
fi
SORTIE_BIN="$(cd "$(dirname "$SORTIE_BIN")" && pwd)/$(basename "$SORTIE_BIN")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sortie-bench-tui.XXXXXX")"
PROJ="$WORK/project"
SOCK="sortie-bench-tui-$$"
ENGINE_PID=""
LIVE_RUN=""
CLK_TCK="$(getconf CLK_TCK)"

# A private tmux server (its own socket): the user's sessions are never touched.
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }

cleanup() {
    tm kill-server 2>/dev/null || true
    if [[ -n "$LIVE_RUN" ]]; then
        "$SORTIE_BIN" -C "$PROJ" cancel "$LIVE_RUN" >/dev/null 2>&1 || true
    fi
    if [[ -n "$ENGINE_PID" ]]; then
        for _ in $(seq 50); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$ENGINE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The TUI reads only an empty config dir, and keeps its index under the temp dir.
mkdir -p "$PROJ" "$WORK/config" "$WORK/state"
export SORTIE_CONFIG_DIR="$WORK/config" SORTIE_STATE_DIR="$WORK/state"
unset SORTIE_PROJECT
TMUX_ENV=(-e "SORTIE_CONFIG_DIR=$SORTIE_CONFIG_DIR" -e "SORTIE_STATE_DIR=$SORTIE_STATE_DIR")

now_us() { echo "${EPOCHREALTIME/./}"; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
pass() { awk -v v="$1" -v g="$2" 'BEGIN {exit !(v <= g)}'; }
MISSED=0
verdict() { # name value goal unit
    if pass "$2" "$3"; then echo "PASS $1: $2 $4 (target ≤ $3 $4)"
    else echo "MISS $1: $2 $4 (target ≤ $3 $4)"; MISSED=$((MISSED + 1)); fi
}

# --- the project: a few finished runs -------------------------------------------------------------
cat >"$PROJ/tiny.toml" <<'EOF'
[pipeline]
name = "tiny"

[[step]]
name = "prepare"
run = "echo prepared"

[[step]]
name = "train"
needs = ["prepare"]
matrix = { seed = [0, 1] }
run = 'for i in $(seq 1 50); do echo "{\"step\": $i, \"loss\": $((1000 - i))}" >> "$SORTIE_METRICS"; done'
EOF
cat >"$PROJ/live.toml" <<'EOF'
[pipeline]
name = "live"

[[step]]
name = "train"
run = 'for i in $(seq 1 200); do echo "{\"step\": $i, \"loss\": $((1000 - i))}" >> "$SORTIE_METRICS"; sleep 1; done'
EOF
echo "== making 3 finished runs of a tiny pipeline in $PROJ"
for _ in 1 2 3; do
    (cd "$PROJ" && "$SORTIE_BIN" run tiny.toml --force >>"$WORK/run.log" 2>&1)
done

# The server starts before any timing, so no measurement pays for it.
tm new-session -d -s keep -x 160 -y 48 "sleep 100000"

# wait_for SESSION TEXT: polls the pane every 5 ms until TEXT shows (10 s at most).
wait_for() {
    local deadline=$(( $(now_us) + 10000000 ))
    until [[ "$(tm capture-pane -p -t "$1" 2>/dev/null)" == *"$2"* ]]; do
        (( $(now_us) < deadline )) || { echo "tui_idle.sh: $2 never showed in $1" >&2; tm capture-pane -p -t "$1" >&2 || true; return 1; }
        sleep 0.005
    done
}

# --- startup --------------------------------------------------------------------------------------
echo "== startup to first frame: $REPS repetitions, tmux 160x48, capture-pane polled every 5 ms"
FIRST=(); LIVE=(); FLOOR=()
for i in $(seq "$REPS"); do
    t0=$(now_us)
    tm new-session -d -s "floor$i" -x 160 -y 48 "printf ' sortie  floor'; exec sleep 100"
    wait_for "floor$i" " sortie "
    FLOOR+=( $(( ($(now_us) - t0) / 1000 )) )
    tm kill-session -t "floor$i"

    t0=$(now_us)
    tm new-session -d -s "start$i" -x 160 -y 48 -c "$PROJ" "${TMUX_ENV[@]}" "exec '$SORTIE_BIN'"
    wait_for "start$i" " sortie "
    t1=$(now_us)
    wait_for "start$i" " live "
    t2=$(now_us)
    FIRST+=( $(( (t1 - t0) / 1000 )) ); LIVE+=( $(( (t2 - t0) / 1000 )) )
    echo "  rep $i: first frame $(( (t1 - t0) / 1000 )) ms, first frame with data $(( (t2 - t0) / 1000 )) ms, tmux floor ${FLOOR[-1]} ms"
    tm send-keys -t "start$i" q
    sleep 0.2
    tm kill-session -t "start$i" 2>/dev/null || true
done
FIRST_MED=$(printf '%s\n' "${FIRST[@]}" | median)
LIVE_MED=$(printf '%s\n' "${LIVE[@]}" | median)
FLOOR_MED=$(printf '%s\n' "${FLOOR[@]}" | median)
echo "startup: first frame median ${FIRST_MED} ms; with data ${LIVE_MED} ms; tmux+polling floor ${FLOOR_MED} ms (included in both)"

# --- idle -----------------------------------------------------------------------------------------
# thread_ns PID: on-CPU ns of every thread, as "tid name ns" lines.
thread_ns() {
    local t
    for t in /proc/"$1"/task/*; do
        [[ -r "$t/schedstat" ]] || continue
        echo "${t##*/} $(tr ' ' '_' <"$t/comm") $(cut -d' ' -f1 "$t/schedstat")"
    done
}
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Waited-for children (squeue/sacct when a cluster is found): cutime + cstime.
child_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $14 + $15}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# measure LABEL SESSION: settle, then CPU over the window; prints the figures and sets CPU_PCT RSS_MB.
measure() {
    local label="$1" sess="$2" pid
    pid=$(tm display -p -t "$sess" '#{pane_pid}')
    [[ "$(cat /proc/"$pid"/comm)" == sortie ]] || { echo "tui_idle.sh: pane pid $pid is not sortie" >&2; return 1; }
    sleep "$SETTLE"
    local k0 k1 c0 c1 a b
    k0=$(ticks "$pid"); c0=$(child_ticks "$pid"); a=$(thread_ns "$pid")
    sleep "$WINDOW"
    k1=$(ticks "$pid"); c1=$(child_ticks "$pid"); b=$(thread_ns "$pid")
    local hwm rss
    hwm=$(status_kb "$pid" VmHWM); rss=$(status_kb "$pid" VmRSS)
    CPU_PCT=$(awk -v d=$((k1 - k0)) -v hz="$CLK_TCK" -v w="$WINDOW" 'BEGIN {printf "%.3f", d / hz / w * 100}')
    RSS_MB=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
    # Per-thread ns deltas (threads born during the window count from 0).
    local deltas
    deltas=$(join -a2 -e0 -o 2.2,1.3,2.3 <(sort <<<"$a") <(sort <<<"$b") | awk '{by[$1] += $3 - $2} END {for (n in by) print n, by[n]}')
    SCHED_PCT=$(awk -v w="$WINDOW" '{t += $2} END {printf "%.4f", t / 1e9 / w * 100}' <<<"$deltas")
    echo "$label: CPU ${SCHED_PCT} % of a core over ${WINDOW} s (schedstat; clock ticks say ${CPU_PCT} %, $((k1 - k0)) ticks at ${CLK_TCK}/s);" \
         "RSS ${RSS_MB} MB, peak (VmHWM) $(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}') MB"
    echo "  on-CPU by thread over the window: $(sort <<<"$deltas" | awk '{printf "%s%s %.1f ms", (NR > 1 ? ", " : ""), $1, $2 / 1e6}')"
    echo "  child processes (squeue/sacct), not in the figure above: $(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v w="$WINDOW" 'BEGIN {printf "%.3f", d / hz / w * 100}') % of a core ($((c1 - c0)) ticks)"
    # The data thread wakes every poll interval (2 s by default; the config dir is empty).
    awk -v w="$WINDOW" -v p="$POLL_S" '$1 == "sortie-data" {printf "  data thread: %.2f ms of CPU per %s s poll cycle (%d cycles)\n", $2 / 1e6 / (w / p), p, w / p}' <<<"$deltas"
}

echo "== idle on finished runs: settle ${SETTLE} s, window ${WINDOW} s"
tm new-session -d -s idle -x 160 -y 48 -c "$PROJ" "${TMUX_ENV[@]}" "exec '$SORTIE_BIN'"
wait_for idle " live "
measure "finished runs (truly idle)" idle
IDLE_CPU=$SCHED_PCT; IDLE_RSS=$RSS_MB
tm kill-session -t idle

echo "== idle watching a live run (a metric line every second): settle ${SETTLE} s, window ${WINDOW} s"
OUT=$(cd "$PROJ" && "$SORTIE_BIN" run live.toml --detach --force 2>&1)
LIVE_RUN=$(sed -n 's/.*run \([^ ]*\) started in the background.*/\1/p' <<<"$OUT")
ENGINE_PID=$(sed -n 's/.*engine pid \([0-9]*\).*/\1/p' <<<"$OUT")
[[ -n "$LIVE_RUN" && -n "$ENGINE_PID" ]] || { echo "tui_idle.sh: could not start the live run: $OUT" >&2; exit 3; }
tm new-session -d -s watch -x 160 -y 48 -c "$PROJ" "${TMUX_ENV[@]}" "exec '$SORTIE_BIN'"
wait_for watch " live "
measure "live run $LIVE_RUN, its first minute" watch
FIRST_MIN_CPU=$SCHED_PCT; FIRST_MIN_RSS=$RSS_MB
measure "live run $LIVE_RUN, after its first minute" watch
WATCH_CPU=$SCHED_PCT; WATCH_RSS=$RSS_MB
[[ "$(tm capture-pane -p -t watch)" == *"$LIVE_RUN"* ]] || echo "  (warning: the live run was not on screen at the end)"
tm kill-session -t watch

echo
echo "== targets"
verdict "startup to first frame (median of $REPS, tmux floor ${FLOOR_MED} ms included)" "$FIRST_MED" "$STARTUP_GOAL_MS" ms
verdict "idle CPU watching a live run, its first minute" "$FIRST_MIN_CPU" "$CPU_GOAL_PCT" "% of a core"
verdict "idle CPU watching a live run, after its first minute" "$WATCH_CPU" "$CPU_GOAL_PCT" "% of a core"
verdict "RSS watching a live run (first minute)" "$FIRST_MIN_RSS" "$RSS_GOAL_MB" MB
verdict "RSS watching a live run (after)" "$WATCH_RSS" "$RSS_GOAL_MB" MB
echo "context: finished runs only ${IDLE_CPU} % CPU, ${IDLE_RSS} MB RSS; turm idles at 0.03 % and 4 MB"
[[ $MISSED -eq 0 ]] || exit 1
