# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for tests/cluster/{start,stop,smoke}.sh.
# Sourced, not executed. Everything can be overridden from the environment.

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Where start.sh writes the env file, rendered configs and its own bookkeeping.
SORTIE_SLURM_DIR=${SORTIE_SLURM_DIR:-/tmp/sortie-slurm}
ENV_FILE=$SORTIE_SLURM_DIR/env

CLUSTER_NAME=${SORTIE_SLURM_CLUSTER:-sortie}
REST_HOST=127.0.0.1
REST_PORT=${SORTIE_SLURM_REST_PORT:-6820}
# Unprivileged user that runs slurmrestd (it refuses root and SlurmUser).
REST_USER=${SORTIE_SLURM_REST_USER:-slurmrest}
# Ordinary user for tests that must not run as root.
TEST_USER=${SORTIE_SLURM_TEST_USER:-sortietest}
ACCOUNT=${SORTIE_SLURM_ACCOUNT:-sortie}

SLURM_ETC=/etc/slurm
SLURM_LOG_DIR=/var/log/slurm
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
JWT_KEY=$CTLD_STATE/jwt_hs256.key
DB_PASS_FILE=$SLURM_ETC/.sortie-dbpass
DB_NAME=slurm_acct_db
DB_USER=slurm

MUNGE_PID=/run/munge/munged.pid
MYSQL_PID=/run/mysqld/mysqld.pid
MYSQL_SOCK=/run/mysqld/mysqld.sock
DBD_PID=/run/slurmdbd.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
REST_PID=/run/sortie-slurmrestd.pid
REST_LOG=$SLURM_LOG_DIR/slurmrestd.log

_t0=$(date +%s%N)
# log MESSAGE: timestamped (seconds since the script started) line on stderr.
log() {
    local ms=$(( ($(date +%s%N) - _t0) / 1000000 ))
    printf '[%3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}

# die MESSAGE [LOGFILE...]: print the message and the tail of each log, exit 1.
die() {
    local msg=$1; shift
    echo "ERROR: $msg" >&2
    local f
    for f in "$@"; do
        if [[ -r $f ]]; then
            echo "----- last 40 lines of $f -----" >&2
            tail -n 40 "$f" >&2
        fi
    done
    exit 1
}

# pid_alive PIDFILE: true when the file names a live process.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(head -n1 "$1" 2>/dev/null | tr -dc 0-9)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

pid_of() { head -n1 "$1" 2>/dev/null | tr -dc 0-9; }

# wait_until SECONDS CMD...: poll CMD every 0.5 s until it succeeds or time runs out.
wait_until() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || return 1
        sleep 0.5
    done
}

# stop_pidfile NAME PIDFILE [TIMEOUT]: SIGTERM the process, wait, SIGKILL if it lingers.
stop_pidfile() {
    local name=$1 pidfile=$2 timeout=${3:-20} pid
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(pid_of "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$timeout" bash -c "! kill -0 $pid"; then
        log "$name did not stop in ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 bash -c "! kill -0 $pid" || true
    fi
    rm -f "$pidfile"
}

# take_lock: serialise start.sh/stop.sh runs (parallel test jobs may both call start.sh).
take_lock() { # daemons must be started with 9>&- so they do not inherit the lock
    mkdir -p "$SORTIE_SLURM_DIR"
    exec 9>"$SORTIE_SLURM_DIR/.lock"
    flock -w 600 9 || die "another start.sh/stop.sh holds $SORTIE_SLURM_DIR/.lock"
}
