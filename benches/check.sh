#!/usr/bin/env bash
# `sortie check` bench: validate and print the expanded DAG of a 10 000-instance pipeline.
#
# The pipeline: one step `cell` with a 100×100 matrix (10 000 instances) and one fan-in step
# `gather` that needs all of them: 10 001 step instances. `sortie check` validates it and prints the
# expanded DAG; its output goes to /dev/null. Nothing runs. `check --json` (which lists every
# instance, ~4 MB) is timed too, for information.
#
# Goal (exit 1 if missed): median wall time ≤ 0.3 s. Uses hyperfine if installed (3 warm-ups,
# 20 runs), else a loop of 20 runs timed with `date +%s.%N`.
#
# With --snakemake, also times one `snakemake -n` (dry run) of the same DAG, for comparison, with the
# venv that benches/engine.sh sets up (created here too if missing; needs the network).
#
# Usage: benches/check.sh [--runs N] [--side N] [--snakemake]   (--side N: an N×N matrix; default 100)
# Env:   SORTIE_BIN (default: target/release/sortie, built if missing)
#        SORTIE_BENCH_VENV (default: ${XDG_CACHE_HOME:-$HOME/.cache}/sortie-bench/venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=20
SIDE=100
GOAL_S=0.3
WITH_SNAKEMAKE=0

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --side) SIDE="$2"; shift ;;
        --snakemake) WITH_SNAKEMAKE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "check.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

command -v python3 >/dev/null || { echo "check.sh: python3 is needed" >&2; exit 2; }

SORTIE_BIN="${SORTIE_BIN:-$ROOT/target/release/sortie}"
if [[ ! -x "$SORTIE_BIN" ]]; then
    echo "== building $SORTIE_BIN (cargo build --release)" >&2
    (cd "$ROOT" && cargo build --release)
fi
SORTIE_BIN="$(cd "$(dirname "$SORTIE_BIN")" && pwd)/$(basename "$SORTIE_BIN")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sortie-bench-check.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"

python3 - sortie.toml "$SIDE" <<'EOF'
import sys
path, side = sys.argv[1], int(sys.argv[2])
values = ", ".join(str(i) for i in range(side))
with open(path, "w") as f:
    f.write('[pipeline]\nname = "check-bench"\n\n')
    f.write('[[step]]\nname = "cell"\n')
    f.write(f"matrix = {{ a = [{values}], b = [{values}] }}\n")
    f.write('run = "echo {{a}} {{b}} > out/{{a}}-{{b}}"\n')
    f.write('outputs = ["out/{{a}}-{{b}}"]\n\n')
    f.write('[[step]]\nname = "gather"\nneeds = ["cell"]\n')
    f.write('run = "cat out/* > all.txt"\n')
    f.write('outputs = ["all.txt"]\n')
EOF
INSTANCES=$((SIDE * SIDE + 1))

echo "== sortie:  $SORTIE_BIN ($("$SORTIE_BIN" --version 2>/dev/null || echo '?'))"
echo "== machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== sortie check of ${SIDE}×${SIDE} matrix + fan-in = $INSTANCES instances, $RUNS runs"

# One run outside the timing: it must succeed and report every instance. The text form lists the
# first instances of each step; the --json form lists them all, so count them there.
if ! "$SORTIE_BIN" check sortie.toml > check.out 2> check.err; then
    echo "check.sh: sortie check failed:" >&2
    cat check.err >&2
    exit 1
fi
if ! grep -q "$INSTANCES instances" check.out; then
    echo "check.sh: sortie check does not report $INSTANCES instances:" >&2
    head -n 3 check.out >&2
    exit 1
fi
"$SORTIE_BIN" check --json sortie.toml > check.json
listed=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(len(g.get("instances", [])) for g in d.get("groups", [])))' check.json)
if [[ "$listed" -ne "$INSTANCES" ]]; then
    echo "check.sh: sortie check --json lists $listed instances, expected $INSTANCES" >&2
    exit 1
fi
echo "   check output: text $(wc -l < check.out) lines; --json $(wc -c < check.json) bytes listing $listed instances"

# time_cmd LABEL CMD...: prints "median mean min max" in seconds.
time_cmd() {
    local label="$1"; shift
    if command -v hyperfine >/dev/null; then
        hyperfine --shell=none --warmup 3 --runs "$RUNS" --export-json "times-$label.json" \
            --output=null "$*" >&2
        python3 -c '
import json, statistics, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print(f"{statistics.median(t):.4f} {statistics.mean(t):.4f} {min(t):.4f} {max(t):.4f}")' "times-$label.json"
    else
        local times=() t0 t1
        for _ in 1 2 3; do "$@" > /dev/null; done
        for _ in $(seq 1 "$RUNS"); do
            t0=$(date +%s.%N)
            "$@" > /dev/null
            t1=$(date +%s.%N)
            times+=("$(python3 -c "print($t1 - $t0)")")
        done
        python3 -c '
import statistics, sys
t = [float(x) for x in sys.argv[1:]]
print(f"{statistics.median(t):.4f} {statistics.mean(t):.4f} {min(t):.4f} {max(t):.4f}")' "${times[@]}"
    fi
}

if command -v hyperfine >/dev/null; then
    echo "   timing with $(hyperfine --version), output to /dev/null"
else
    echo "   timing with a date +%s.%N loop (hyperfine not installed), output to /dev/null"
fi
read -r median mean min max <<<"$(time_cmd text "$SORTIE_BIN" check sortie.toml)"
read -r jmedian _ _ _ <<<"$(time_cmd json "$SORTIE_BIN" check --json sortie.toml)"

snake_summary=""
if [[ "$WITH_SNAKEMAKE" == 1 ]]; then
    VENV="${SORTIE_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sortie-bench/venv}"
    if [[ ! -x "$VENV/bin/snakemake" ]]; then
        echo "== setting up Snakemake in $VENV (pip install 'snakemake>=9')"
        { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet 'snakemake>=9'; } >&2
    fi
    mkdir -p snake
    cat > snake/Snakefile <<EOF
SIDE = $SIDE

rule all:
    input: "all.txt"

rule gather:
    input: expand("out/{a}-{b}", a=range(SIDE), b=range(SIDE))
    output: "all.txt"
    shell: "cat {input} > {output}"

rule cell:
    output: "out/{a}-{b}"
    shell: "echo {wildcards.a} {wildcards.b} > {output}"
EOF
    t0=$(date +%s.%N)
    if ! (cd snake && "$VENV/bin/snakemake" -n -c2 --quiet > snake.out 2>&1); then
        echo "check.sh: snakemake -n failed:" >&2
        tail -n 20 snake/snake.out >&2
        exit 3
    fi
    t1=$(date +%s.%N)
    snake_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    echo "   snakemake $("$VENV/bin/snakemake" --version) -n (dry run) of the same $INSTANCES jobs: $snake_s s (one run)"
    snake_summary=$(python3 -c "print(f'; snakemake -n {$snake_s:.1f} s ({$snake_s / $median:.0f}x slower)')")
fi

ok=$(python3 -c "print(int($median <= $GOAL_S))")
echo
printf '%s-instance check: sortie %.3f s median (mean %.3f, min %.3f, max %.3f over %s runs) (goal ≤ %s, %s); check --json listing all instances %.3f s%s\n' \
    "$INSTANCES" "$median" "$mean" "$min" "$max" "$RUNS" "$GOAL_S" "$([[ $ok == 1 ]] && echo met || echo MISSED)" "$jmedian" "$snake_summary"
[[ "$ok" == 1 ]] || exit 1
