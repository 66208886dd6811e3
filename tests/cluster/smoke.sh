#!/usr/bin/env bash
# Prove the test cluster from start.sh works the way sortie uses it: sbatch --parsable, squeue/sacct
# --json (records the JSON parser version from `meta`), afterok dependencies (success and the
# DependencyNeverSatisfied path), --array with a throttle, scancel, sacct -P --delimiter text,
# slurmrestd with JWT headers (as root and as the test user), a non-root submitter, memory limits
# (OUT_OF_MEMORY) and sdiag.
#
# Usage: tests/cluster/smoke.sh [--long]
#   --long adds slow checks (about 2 more minutes): --time limit -> TIMEOUT, --signal delivery,
#   scontrol requeue, and partition preemption (urgent requeues a running debug job).
# Exit status: 0 when every check passed. The last line is "N passed, N failed".
set -uo pipefail
# shellcheck source=tests/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LONG=0
for arg in "$@"; do
    case $arg in
        --long) LONG=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done
[[ $(id -u) == 0 ]] || die "smoke.sh runs as root (it also submits as \$SORTIE_SLURM_TEST_USER)"
[[ -r $ENV_FILE ]] || die "$ENV_FILE is missing: run tests/cluster/start.sh first"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
API=$SORTIE_SLURM_REST_API
export SLURM_TIME_FORMAT=%s   # epoch seconds in sacct/squeue text output

WORK=$(mktemp -d /tmp/sortie-slurm-smoke.XXXXXX)
chmod 777 "$WORK"
# Small, short jobs so they fit next to whatever else runs on the 2-core node.
SB=(sbatch --parsable -D "$WORK" -t 5 -c 1 --mem=50M -J sortie-smoke)
TERMINAL='^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|DEADLINE|PREEMPTED)'
PASS=0 FAIL=0 SUBMITTED=()

ok()   { PASS=$((PASS + 1)); log "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); log "FAIL - $*"; }
# expect NAME ACTUAL EXPECTED_REGEX
expect() { if [[ $2 =~ $3 ]]; then ok "$1 ($2)"; else fail "$1: got '$2', want /$3/"; fi; }

submit() { # submit ARGS...: sbatch, remember the id for cleanup, print the id
    local out id
    out=$("${SB[@]}" "$@" 2>"$WORK/sbatch.err") || { echo "sbatch $* failed: $(cat "$WORK/sbatch.err")" >&2; echo 0; return 1; }
    id=${out%%;*}
    SUBMITTED+=("$id")
    echo "$id"
}

# state_of ID: base state from the controller (single-job RPC), else from accounting.
state_of() {
    local s
    s=$(squeue -h -t all -j "$1" -o %T 2>/dev/null | head -n1)
    [[ -n $s ]] || s=$(sacct -n -X -P -j "$1" --format=State 2>/dev/null | tail -n1)
    s=${s%% *}
    echo "${s:-UNKNOWN}"
}

# wait_state ID REGEX TIMEOUT: poll until the state matches; print the last state seen.
wait_state() {
    local deadline=$(( $(date +%s) + $3 )) s
    while :; do
        s=$(state_of "$1")
        if [[ $s =~ $2 ]] || (( $(date +%s) >= deadline )); then echo "$s"; return; fi
        sleep 1
    done
}

# sacct_field ID FIELD: one field of the allocation row, waiting up to 20 s for accounting to catch up.
sacct_field() {
    local deadline=$(( $(date +%s) + 20 )) v
    while :; do
        v=$(sacct -n -X -P -j "$1" --format="$2" 2>/dev/null | tail -n1)
        if [[ -n $v && $v != Unknown ]] || (( $(date +%s) >= deadline )); then echo "$v"; return; fi
        sleep 1
    done
}

cleanup() {
    (( ${#SUBMITTED[@]} )) && scancel "${SUBMITTED[@]}" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

log "cluster: Slurm $SORTIE_SLURM_VERSION, mode $SORTIE_SLURM_MODE, REST $SLURM_REST_URL ($API)"
expect "scontrol ping" "$(scontrol ping 2>&1 | grep -o 'is UP' | head -n1)" '^is UP$'
expect "node usable" "$(sinfo -h -N -o %T | head -n1)" '^(idle|mixed|allocated|completing)$'

# --- submit everything first so the jobs run while we check ---------------------------------
J_HI=$(submit -o "$WORK/hi-%j.out" --wrap 'echo hi')
J_PARENT=$(submit --wrap 'sleep 3')
J_CHILD=$(submit -d "afterok:$J_PARENT" --wrap 'echo child')
J_BAD=$(submit --wrap 'exit 3')
J_ORPHAN=$(submit -d "afterok:$J_BAD" --wrap 'echo never')
J_ARRAY=$(submit --array=0-3%2 -o "$WORK/arr-%A_%a.out" --wrap 'echo task $SLURM_ARRAY_TASK_ID; sleep 2')
J_CANCEL=$(submit --wrap 'sleep 300')
J_OOM=$(submit --mem=64M --wrap "perl -e '\$x = q(x) x (400*1024*1024); sleep 2'")
J_USER=$(cd /tmp && runuser -u "$SORTIE_SLURM_TEST_USER" -- sbatch --parsable -D /tmp -t 5 -c 1 --mem=50M \
    -J sortie-smoke-user -o /dev/null --wrap 'id -un' 2>"$WORK/user.err") || J_USER=0
[[ $J_USER != 0 ]] && SUBMITTED+=("$J_USER")
expect "sbatch --parsable prints a job id" "$J_HI" '^[0-9]+$'

# --- basic job ---------------------------------------------------------------------------
expect "echo hi: final state" "$(wait_state "$J_HI" "$TERMINAL" 180)" '^COMPLETED$'
expect "echo hi: output file" "$(cat "$WORK/hi-$J_HI.out" 2>/dev/null)" '^hi$'

# --- JSON --------------------------------------------------------------------------------
SQ=$(squeue --json 2>"$WORK/squeue.err")
expect "squeue --json: .jobs is an array" "$(jq -r '.jobs|type' <<<"$SQ" 2>&1)" '^array$'
SQ_PARSER=$(jq -r '.meta.plugins.data_parser // .meta.plugin.data_parser // .meta.plugin.type // "none"' <<<"$SQ")
SQ_VERSION=$(jq -r '(.meta.Slurm // .meta.slurm).version | "\(.major).\(.minor).\(.micro)"' <<<"$SQ")
log "     squeue --json meta: parser=$SQ_PARSER slurm=$SQ_VERSION"
# Accounting is written asynchronously: give slurmdbd a moment to have the finished job.
deadline=$(( $(date +%s) + 20 ))
# NB: SLURM_TIME_FORMAT (set to %s above) must be unset for sacct --json: 22.05 formats its own
# default start time with it, fails to parse it back and returns no jobs (errors[].source=start_time).
while SA=$(env -u SLURM_TIME_FORMAT sacct --json -j "$J_HI" 2>"$WORK/sacct.err"); \
      [[ $(jq -r '.jobs[0].state.current // empty' <<<"$SA" 2>/dev/null) == "" ]] && (( $(date +%s) < deadline )); do
    sleep 1
done
log "     sacct --json with SLURM_TIME_FORMAT=%s: $(sacct --json -j "$J_HI" 2>/dev/null | jq -c '{jobs: (.jobs|length), error: .errors[0].source}')"
SA_PARSER=$(jq -r '.meta.plugins.data_parser // .meta.plugin.data_parser // .meta.plugin.type // "none"' <<<"$SA")
log "     sacct --json meta: parser=$SA_PARSER"
expect "sacct --json: state of echo hi" \
    "$(jq -r '.jobs[0].state.current | if type=="array" then .[0] else . end' <<<"$SA" 2>&1)" '^COMPLETED$'
expect "squeue --json parser recorded" "$SQ_PARSER" '(v0\.0\.[0-9]+)$'

# --- dependencies ------------------------------------------------------------------------
expect "afterok child: final state" "$(wait_state "$J_CHILD" "$TERMINAL" 180)" '^COMPLETED$'
P_END=$(sacct_field "$J_PARENT" End); C_START=$(sacct_field "$J_CHILD" Start)
if [[ $P_END =~ ^[0-9]+$ && $C_START =~ ^[0-9]+$ ]] && (( C_START >= P_END )); then
    ok "afterok child started $((C_START - P_END)) s after its parent ended"
else
    fail "afterok ordering: parent end '$P_END', child start '$C_START'"
fi
expect "failing parent: final state" "$(wait_state "$J_BAD" "$TERMINAL" 180)" '^FAILED$'
expect "orphan of failed parent: reason" \
    "$(deadline=$(( $(date +%s) + 60 )); while r=$(squeue -h -j "$J_ORPHAN" -o %r 2>/dev/null); [[ $r != DependencyNeverSatisfied ]] && (( $(date +%s) < deadline )); do sleep 1; done; echo "$r")" \
    '^DependencyNeverSatisfied$'

# --- scancel -----------------------------------------------------------------------------
scancel "$J_ORPHAN" "$J_CANCEL"
expect "scancel pending orphan" "$(wait_state "$J_ORPHAN" "$TERMINAL" 60)" '^CANCELLED$'
expect "scancel sleeper" "$(wait_state "$J_CANCEL" "$TERMINAL" 60)" '^CANCELLED$'

# --- arrays ------------------------------------------------------------------------------
deadline=$(( $(date +%s) + 240 ))
while rows=$(sacct -n -X -P -j "$J_ARRAY" --format=JobID,State,Start,End 2>/dev/null); \
      [[ $(grep -c '|COMPLETED|' <<<"$rows") -lt 4 && -z $(grep -E '\|(FAILED|CANCELLED)' <<<"$rows") ]] \
      && (( $(date +%s) < deadline )); do sleep 1; done
expect "array 0-3%2: tasks completed" "$(grep -c '|COMPLETED|' <<<"$rows")" '^4$'
expect "array task ids" "$(cut -d'|' -f1 <<<"$rows" | sort | paste -sd' ')" "^${J_ARRAY}_0 ${J_ARRAY}_1 ${J_ARRAY}_2 ${J_ARRAY}_3$"
# Throttle: at no instant did more than 2 tasks run.
max_overlap=$(awk -F'|' '{print $3, 1; print $4, -1}' <<<"$rows" | sort -k1,1n -k2,2n \
    | awk '{c += $2; if (c > m) m = c} END {print m + 0}')
expect "array throttle %2: max tasks running at once" "$max_overlap" '^[12]$'
expect "array task output" "$(cat "$WORK/arr-${J_ARRAY}_3.out" 2>/dev/null)" '^task 3$'

# --- sacct text format -------------------------------------------------------------------
US=$'\x1f'
TXT=$(sacct -n -X -P --delimiter="$US" -j "$J_HI,$J_BAD" --format=JobID,JobName,State,ExitCode,Partition,Account)
expect "sacct -P --delimiter: echo hi row" "$(grep "^$J_HI$US" <<<"$TXT" | tr "$US" '|')" "^$J_HI\|sortie-smoke\|COMPLETED\|0:0\|debug\|"
expect "sacct -P --delimiter: exit 3 row" "$(grep "^$J_BAD$US" <<<"$TXT" | tr "$US" '|')" "^$J_BAD\|sortie-smoke\|FAILED\|3:0\|debug\|"
expect "sacct steps (no -X) include .batch" "$(sacct -n -P -j "$J_HI" --format=JobID | paste -sd' ')" "\.batch"

# --- memory limit ------------------------------------------------------------------------
S=$(wait_state "$J_OOM" "$TERMINAL" 120)
if [[ $SORTIE_SLURM_MODE == cgroup ]]; then
    expect "job over --mem=64M is OOM-killed" "$S" '^OUT_OF_MEMORY$'
else
    log "     (linuxproc mode) job over --mem ended as $S (OverMemoryKill polling; not asserted)"
fi

# --- non-root submitter ------------------------------------------------------------------
if [[ $J_USER == 0 ]]; then
    fail "sbatch as $SORTIE_SLURM_TEST_USER: $(cat "$WORK/user.err")"
else
    expect "job of $SORTIE_SLURM_TEST_USER: final state" "$(wait_state "$J_USER" "$TERMINAL" 180)" '^COMPLETED$'
    expect "sacct as $SORTIE_SLURM_TEST_USER sees own job (user|account)" \
        "$(sleep 1; runuser -u "$SORTIE_SLURM_TEST_USER" -- sacct -n -X -P -j "$J_USER" --format=User,Account)" \
        "^$SORTIE_SLURM_TEST_USER\|$SORTIE_SLURM_ACCOUNT$"
fi

# --- slurmrestd ---------------------------------------------------------------------------
rest() { # rest USER TOKEN PATH
    curl -sS -m 20 -H "X-SLURM-USER-NAME: $1" -H "X-SLURM-USER-TOKEN: $2" "$SLURM_REST_URL$3"
}
TOKEN=$(scontrol token lifespan=600 2>&1 | sed -n 's/^SLURM_JWT=//p')
expect "scontrol token" "${TOKEN:0:3}" '^eyJ$'
R=$(rest root "$TOKEN" "/slurm/$API/jobs" 2>&1)
expect "REST GET /slurm/$API/jobs lists echo hi" \
    "$(jq -r --argjson id "$J_HI" '[.jobs[] | select(.job_id == $id) | .job_state] | .[0] // "missing"' <<<"$R" 2>&1)" '^COMPLETED$'
log "     REST meta: $(jq -c '.meta.plugin // .meta.plugins' <<<"$R" 2>/dev/null)"
R=$(rest root "$TOKEN" "/slurmdb/$API/job/$J_HI" 2>&1)
expect "REST GET /slurmdb/$API/job/<id>" "$(jq -r '.jobs[0].state.current // "missing" | if type=="array" then .[0] else . end' <<<"$R" 2>&1)" '^COMPLETED$'
# update_time is all-or-nothing: 304 and no body when nothing changed since then, else every job.
expect "REST jobs?update_time=<future> answers 304 Not Modified" \
    "$(curl -s -o /dev/null -m 20 -w '%{http_code}' -H 'X-SLURM-USER-NAME: root' -H "X-SLURM-USER-TOKEN: $TOKEN" \
        "$SLURM_REST_URL/slurm/$API/jobs?update_time=$(( $(date +%s) + 3600 ))")" '^304$'
expect "REST without auth headers answers 401" \
    "$(curl -s -o /dev/null -m 20 -w '%{http_code}' "$SLURM_REST_URL/slurm/$API/jobs")" '^401$'
# 22.05 answers a bad token with 500 and errors[].source=slurm_load_jobs, not 401.
expect "REST with a bad token is refused (HTTP status)" \
    "$(curl -s -o /dev/null -m 20 -w '%{http_code}' -H 'X-SLURM-USER-NAME: root' \
        -H 'X-SLURM-USER-TOKEN: bogus.token.value' "$SLURM_REST_URL/slurm/$API/jobs")" '^(401|403|500)$'
UTOKEN=$(scontrol token username="$SORTIE_SLURM_TEST_USER" lifespan=600 2>&1 | sed -n 's/^SLURM_JWT=//p')
R=$(rest "$SORTIE_SLURM_TEST_USER" "$UTOKEN" "/slurm/$API/ping" 2>&1)
expect "REST ping as $SORTIE_SLURM_TEST_USER" "$(jq -r '.pings[0].ping // "missing"' <<<"$R" 2>&1)" '^UP$'

# --- sdiag --------------------------------------------------------------------------------
D=$(sdiag 2>&1)
expect "sdiag has RPC stats by message type" "$(grep -c 'Remote Procedure Call statistics by message type' <<<"$D")" '^1$'
log "     sdiag: $(grep -E '^\s*REQUEST_JOB_INFO ' <<<"$D" | head -n1 | tr -s ' ')"

# --- slow checks ----------------------------------------------------------------------------
if (( LONG )); then
    J_TO=$(submit -t 1 --wrap 'sleep 300')
    J_SIG=$(submit -t 1 --signal=B:USR1@50 -o "$WORK/sig-%j.out" \
        --wrap 'trap "echo got USR1; exit 0" USR1; i=0; while [ $i -lt 200 ]; do sleep 1; i=$((i+1)); done')
    J_RQ=$(submit --requeue -o "$WORK/rq-%j.out" --open-mode=append --wrap 'echo run $SLURM_RESTART_COUNT; sleep 5')
    expect "requeue candidate running" "$(wait_state "$J_RQ" '^RUNNING$' 120)" '^RUNNING$'
    scontrol requeue "$J_RQ"
    expect "scontrol requeue -> runs again and completes" "$(wait_state "$J_RQ" "$TERMINAL" 180)" '^COMPLETED$'
    expect "requeued job ran twice" "$(paste -sd, "$WORK/rq-$J_RQ.out" 2>/dev/null)" 'run.*1'
    expect "sacct -D shows the REQUEUED attempt" "$(sacct -D -n -X -P -j "$J_RQ" --format=State | paste -sd,)" 'REQUEUED'
    expect "--signal=B:USR1@50 delivered (trap exits 0)" "$(wait_state "$J_SIG" "$TERMINAL" 120)" '^COMPLETED$'
    expect "--signal output" "$(cat "$WORK/sig-$J_SIG.out" 2>/dev/null)" 'got USR1'
    expect "--time=1 sleeper ends as TIMEOUT" "$(wait_state "$J_TO" "$TERMINAL" 150)" '^TIMEOUT$'
    # Preemption: a debug job holding every CPU is requeued when an urgent job needs one.
    J_LOW=$(submit --requeue -c "$(nproc)" --wrap 'sleep 300')
    expect "low-priority job running" "$(wait_state "$J_LOW" '^RUNNING$' 180)" '^RUNNING$'
    J_HIGH=$(submit -p urgent --wrap 'sleep 2')
    expect "urgent job completes" "$(wait_state "$J_HIGH" "$TERMINAL" 120)" '^COMPLETED$'
    expect "preempted job requeued (sacct -D)" "$(sacct -D -n -X -P -j "$J_LOW" --format=State | paste -sd,)" '^PREEMPTED'
fi

echo "$PASS passed, $FAIL failed"
(( FAIL == 0 ))
