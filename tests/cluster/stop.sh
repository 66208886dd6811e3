#!/usr/bin/env bash
# Stop the daemons tests/cluster/start.sh started: slurmrestd, slurmd, slurmctld, slurmdbd,
# MariaDB and munged, in that order. Idempotent: a daemon that is not running is skipped.
# Jobs are not cancelled: slurmctld saves its state and picks them up on the next start.
# Usage: tests/cluster/stop.sh
set -euo pipefail
# shellcheck source=tests/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $(id -u) == 0 ]] || die "stop.sh must run as root"
take_lock

stop_pidfile slurmrestd "$REST_PID" 15
stop_pidfile slurmd "$SLURMD_PID" 30
stop_pidfile slurmctld "$CTLD_PID" 30
stop_pidfile slurmdbd "$DBD_PID" 30

if [[ -S $MYSQL_SOCK ]] && mariadb-admin --socket="$MYSQL_SOCK" ping >/dev/null 2>&1; then
    log "stopping mariadb"
    mariadb-admin --socket="$MYSQL_SOCK" shutdown >/dev/null 2>&1 || true
    # mysqld_safe exits by itself once mysqld has shut down cleanly.
    wait_until 60 bash -c "[[ ! -e $MYSQL_PID ]]" || stop_pidfile mariadb "$MYSQL_PID" 30
elif pid_alive "$MYSQL_PID"; then
    stop_pidfile mariadb "$MYSQL_PID" 60
fi

stop_pidfile munged "$MUNGE_PID" 15
log "all stopped"
