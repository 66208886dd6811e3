#!/usr/bin/env bash
# Bring up a real single-node Slurm (Debian 12 packages: Slurm 22.05) on this machine for sortie's
# tests: munged, MariaDB, slurmdbd, slurmctld, slurmd and slurmrestd (JWT, 127.0.0.1 only).
#
# Idempotent: installs what is missing, (re)writes configs from the templates beside this script,
# starts only the daemons that are not running, restarts those whose config changed, then checks
# that the node is up and sacct answers. Writes $SORTIE_SLURM_DIR/env (default /tmp/sortie-slurm/env).
#
# Usage: tests/cluster/start.sh [--restart]      (--restart: stop the Slurm daemons first)
# Knobs (environment): SORTIE_SLURM_CGROUP=auto|yes|no, SORTIE_SLURM_CPUS=N (pretend N CPUs),
#   SORTIE_SLURM_REST_PORT, SORTIE_SLURM_CLUSTER, SORTIE_SLURM_DIR. See README.md.
set -euo pipefail
# shellcheck source=tests/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FORCE_RESTART=0
for arg in "$@"; do
    case $arg in
        --restart) FORCE_RESTART=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

[[ $(id -u) == 0 ]] || die "start.sh must run as root (it installs packages and starts system daemons)"
take_lock

# --------------------------------------------------------------------------------------------
# 1. Packages
# --------------------------------------------------------------------------------------------
PACKAGES=(munge mariadb-server mariadb-client slurm-client slurmctld slurmd slurmdbd slurmrestd
          curl jq util-linux procps)

pkg_installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if (( ${#missing[@]} == 0 )); then
        log "packages: all present"
        return
    fi
    log "packages: installing ${missing[*]}"
    # Keep package maintainer scripts from starting daemons with default configs:
    # we start everything ourselves. Respect an existing policy-rc.d.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1
    fi
    local apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    local ok=0
    if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" \
            >"$SORTIE_SLURM_DIR/apt.log" 2>&1 && ok=1
    fi
    if (( ! ok )); then
        log "packages: apt-get update"
        apt-get update -q >>"$SORTIE_SLURM_DIR/apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" \
            >>"$SORTIE_SLURM_DIR/apt.log" 2>&1 && ok=1
    fi
    (( made_policy )) && rm -f "$policy"
    (( ok )) || die "apt-get install ${missing[*]} failed" "$SORTIE_SLURM_DIR/apt.log"
    log "packages: done"
}

# --------------------------------------------------------------------------------------------
# 2. Users, directories, keys
# --------------------------------------------------------------------------------------------
prepare_host() {
    if ! id "$REST_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$REST_USER"
    fi
    if ! id "$TEST_USER" >/dev/null 2>&1; then
        useradd --user-group --create-home --shell /bin/bash "$TEST_USER"
    fi
    id munge >/dev/null 2>&1 || die "user 'munge' missing although munge is installed"
    id mysql >/dev/null 2>&1 || die "user 'mysql' missing although mariadb-server is installed"

    install -d -m 755 "$SLURM_ETC" "$SLURM_LOG_DIR" "$SLURMD_SPOOL"
    install -d -m 700 "$CTLD_STATE"
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o mysql -g mysql -m 755 /run/mysqld
    touch "$REST_LOG"; chown "$REST_USER:$REST_USER" "$REST_LOG"

    if [[ ! -s /etc/munge/munge.key ]]; then
        log "munge: creating key"
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key

    if [[ ! -s $JWT_KEY ]]; then
        log "jwt: creating key $JWT_KEY"
        dd if=/dev/urandom bs=32 count=1 of="$JWT_KEY" status=none
    fi
    chown root:root "$JWT_KEY"; chmod 600 "$JWT_KEY"

    if [[ ! -s $DB_PASS_FILE ]]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$DB_PASS_FILE")
    fi
}

# --------------------------------------------------------------------------------------------
# 3. Configs
# --------------------------------------------------------------------------------------------
cgroup_v1_usable() {
    # Slurm 22.05 takes cgroup v1 when /sys/fs/cgroup is not itself a cgroup2 mount.
    [[ $(stat -f -c %T /sys/fs/cgroup 2>/dev/null) != cgroup2fs ]] || return 1
    local c probe
    for c in memory freezer cpuset devices; do
        [[ $(stat -f -c %T "/sys/fs/cgroup/$c" 2>/dev/null) == cgroupfs ]] || return 1
    done
    probe=/sys/fs/cgroup/memory/sortie-probe.$$
    mkdir "$probe" 2>/dev/null || return 1
    rmdir "$probe"
}

choose_cgroup_mode() {
    case ${SORTIE_SLURM_CGROUP:-auto} in
        yes|on|1) CGROUP_MODE=cgroup ;;
        no|off|0) CGROUP_MODE=linuxproc ;;
        auto) if cgroup_v1_usable; then CGROUP_MODE=cgroup; else CGROUP_MODE=linuxproc; fi ;;
        *) die "SORTIE_SLURM_CGROUP must be auto, yes or no" ;;
    esac
}

render() { # render TEMPLATE OUT: replace every @KEY@ with the value of the shell variable V_KEY.
    local tmpl=$1 out=$2 key val
    cp "$tmpl" "$out.tmp"
    for key in $(grep -o '@[A-Z_]*@' "$tmpl" | sort -u | tr -d @); do
        local var="V_$key"
        [[ -v $var ]] || die "template $tmpl uses @$key@ but no value is set"
        val=${!var}
        val=${val//\\/\\\\}; val=${val//|/\\|}; val=${val//&/\\&}
        sed -i "s|@$key@|$val|g" "$out.tmp"
    done
    mv "$out.tmp" "$out"
}

# install_if_changed SRC DEST MODE: copy when content differs; return 0 if it changed.
install_if_changed() {
    if [[ -f $2 ]] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
        return 1
    fi
    install -m "$3" -o root -g root "$1" "$2"
}

# shellcheck disable=SC2034  # the V_* variables are read indirectly by render()
write_configs() {
    choose_cgroup_mode
    local host hw real_mem
    host=$(hostname -s)
    hw=$(slurmd -C 2>/dev/null | head -n1) || true
    [[ $hw == NodeName=* ]] || die "slurmd -C did not describe this node (got: $hw)"
    real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    # Leave ~10% (at least 1 GiB) for the daemons, MariaDB and the test harness itself.
    local reserve=$(( real_mem / 10 )); (( reserve < 1024 )) && reserve=1024
    V_REAL_MEMORY=$(( (real_mem - reserve) / 100 * 100 ))

    if [[ -n ${SORTIE_SLURM_CPUS:-} ]]; then
        V_NODE_HW="CPUs=$SORTIE_SLURM_CPUS"
        V_SLURMD_PARAMETERS="SlurmdParameters=config_overrides"
    else
        V_NODE_HW=$(grep -o -E '(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+' <<<"$hw" | tr '\n' ' ')
        V_NODE_HW=${V_NODE_HW% }
        V_SLURMD_PARAMETERS="#SlurmdParameters= (config_overrides only with SORTIE_SLURM_CPUS)"
    fi

    V_CLUSTER=$CLUSTER_NAME V_HOST=$host V_JWT_KEY=$JWT_KEY
    V_CTLD_STATE=$CTLD_STATE V_SLURMD_SPOOL=$SLURMD_SPOOL V_CTLD_PID=$CTLD_PID
    V_SLURMD_PID=$SLURMD_PID V_LOG_DIR=$SLURM_LOG_DIR V_DBD_PID=$DBD_PID
    V_DB_USER=$DB_USER V_DB_NAME=$DB_NAME V_DB_PASS=$(cat "$DB_PASS_FILE")
    V_DEF_MEM_PER_CPU=${SORTIE_SLURM_DEF_MEM_PER_CPU:-500}
    V_MAX_ARRAY_SIZE=${SORTIE_SLURM_MAX_ARRAY_SIZE:-10001}
    V_SCHED_PARAMS="bf_interval=2,sched_interval=2"
    V_JAG_FREQ=2
    if [[ $CGROUP_MODE == cgroup ]]; then
        V_PROCTRACK=proctrack/cgroup
        V_TASK_PLUGIN=task/cgroup
        V_JOBACCT_GATHER=jobacct_gather/cgroup
        V_JAG_PARAMS=NoShared
    else
        V_PROCTRACK=proctrack/linuxproc
        V_TASK_PLUGIN=task/none
        V_JOBACCT_GATHER=jobacct_gather/linux
        V_JAG_PARAMS=OverMemoryKill,NoShared
    fi

    local r=$SORTIE_SLURM_DIR/rendered
    mkdir -p "$r"
    render "$CLUSTER_DIR/slurm.conf.in" "$r/slurm.conf"
    render "$CLUSTER_DIR/slurmdbd.conf.in" "$r/slurmdbd.conf"
    render "$CLUSTER_DIR/cgroup.conf.in" "$r/cgroup.conf"

    SLURM_CONF_CHANGED=0 DBD_CONF_CHANGED=0
    install_if_changed "$r/slurm.conf" "$SLURM_ETC/slurm.conf" 644 && SLURM_CONF_CHANGED=1
    install_if_changed "$r/slurmdbd.conf" "$SLURM_ETC/slurmdbd.conf" 600 && DBD_CONF_CHANGED=1
    if [[ $CGROUP_MODE == cgroup ]]; then
        install_if_changed "$r/cgroup.conf" "$SLURM_ETC/cgroup.conf" 644 && SLURM_CONF_CHANGED=1
    elif [[ -e $SLURM_ETC/cgroup.conf ]]; then
        rm -f "$SLURM_ETC/cgroup.conf"; SLURM_CONF_CHANGED=1
    fi
    log "configs: mode=$CGROUP_MODE node=[$V_NODE_HW RealMemory=$V_REAL_MEMORY]" \
        "slurm.conf changed=$SLURM_CONF_CHANGED slurmdbd.conf changed=$DBD_CONF_CHANGED"
}

# --------------------------------------------------------------------------------------------
# 4. Daemons
# --------------------------------------------------------------------------------------------
munge_ok() { munge -n -t 10 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if pid_alive "$MUNGE_PID" && munge_ok; then log "munged: running"; return; fi
    log "munged: starting"
    rm -f "$MUNGE_PID" /run/munge/munge.socket.2*
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged 9>&- \
        || die "munged failed to start" /var/log/munge/munged.log
    wait_until 15 munge_ok || die "munged started but munge/unmunge fails" /var/log/munge/munged.log
}

mysql_ok() { mariadb-admin --socket="$MYSQL_SOCK" ping >/dev/null 2>&1; }
MYSQL_LOG=/var/log/mysql/error.log

start_mysql() {
    if mysql_ok; then log "mariadb: running"; else
        log "mariadb: starting"
        install -d -o mysql -g adm -m 2750 /var/log/mysql
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "mariadb: initialising data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
                >"$SORTIE_SLURM_DIR/mariadb-install.log" 2>&1 \
                || die "mariadb-install-db failed" "$SORTIE_SLURM_DIR/mariadb-install.log"
        fi
        # Loopback only; log to a file we can show on failure.
        setsid mysqld_safe --user=mysql --bind-address=127.0.0.1 --log-error="$MYSQL_LOG" \
            >/dev/null 2>&1 </dev/null 9>&- &
        wait_until 60 mysql_ok || die "MariaDB did not answer within 60 s" "$MYSQL_LOG"
    fi
    local pass; pass=$(cat "$DB_PASS_FILE")
    mariadb --socket="$MYSQL_SOCK" -uroot <<SQL || die "could not create the accounting database/user" "$MYSQL_LOG"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
}

dbd_ok() { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

start_slurmdbd() {
    if pid_alive "$DBD_PID" && (( DBD_CONF_CHANGED == 0 )) && dbd_ok; then
        log "slurmdbd: running"; return
    fi
    stop_pidfile slurmdbd "$DBD_PID" 30
    log "slurmdbd: starting"
    slurmdbd 9>&- || die "slurmdbd failed to start" "$SLURM_LOG_DIR/slurmdbd.log"
    wait_until 60 dbd_ok || die "slurmdbd did not answer sacctmgr within 60 s" "$SLURM_LOG_DIR/slurmdbd.log"
}

ensure_cluster() {
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER_NAME"; then
        log "sacctmgr: adding cluster $CLUSTER_NAME"
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null \
            || die "sacctmgr add cluster failed" "$SLURM_LOG_DIR/slurmdbd.log"
    fi
}

ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    if pid_alive "$CTLD_PID" && (( SLURM_CONF_CHANGED == 0 )) && ctld_ok; then
        log "slurmctld: running"; return
    fi
    stop_pidfile slurmctld "$CTLD_PID" 30
    log "slurmctld: starting"
    slurmctld 9>&- || die "slurmctld failed to start" "$SLURM_LOG_DIR/slurmctld.log"
    wait_until 60 ctld_ok || die "slurmctld did not answer scontrol ping within 60 s" "$SLURM_LOG_DIR/slurmctld.log"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -n1; }
node_up() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

start_slurmd() {
    if pid_alive "$SLURMD_PID" && (( SLURM_CONF_CHANGED == 0 )); then
        log "slurmd: running"
    else
        stop_pidfile slurmd "$SLURMD_PID" 30
        log "slurmd: starting"
        slurmd 9>&- || die "slurmd failed to start" "$SLURM_LOG_DIR/slurmd.log"
    fi
    if ! wait_until 30 node_up; then
        local st; st=$(node_state)
        if [[ $st =~ drain|down|fail ]]; then
            log "node is '$st' ($(sinfo -h -N -o '%E' | head -n1)); resuming it"
            scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null \
                || scontrol update nodename="$(hostname -s)" state=idle 2>/dev/null || true
        fi
        wait_until 30 node_up || die "node never became usable (state: $(node_state), reason: $(sinfo -h -N -o '%E' | head -n1))" \
            "$SLURM_LOG_DIR/slurmd.log" "$SLURM_LOG_DIR/slurmctld.log"
    fi
    log "node $(hostname -s): $(node_state)"
}

ensure_associations() {
    if ! sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT"; then
        log "sacctmgr: adding account $ACCOUNT"
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER_NAME" \
            description="sortie tests" organization=sortie >/dev/null || die "sacctmgr add account failed"
    fi
    local u
    for u in root "$TEST_USER"; do
        if ! sacctmgr -n -P show assoc where cluster="$CLUSTER_NAME" user="$u" account="$ACCOUNT" \
                format=user | grep -qx "$u"; then
            log "sacctmgr: adding user $u to account $ACCOUNT"
            sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER_NAME" >/dev/null \
                || die "sacctmgr add user $u failed"
        fi
    done
    # The test user's jobs are charged to the sortie account by default.
    sacctmgr -i modify user where name="$TEST_USER" set defaultaccount="$ACCOUNT" >/dev/null 2>&1 || true
}

rest_ok() {
    # Any HTTP answer means it listens; a real request is made in smoke.sh.
    local code
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$REST_HOST:$REST_PORT/openapi" 2>/dev/null) || return 1
    [[ $code =~ ^[1-5][0-9][0-9]$ ]]
}

start_slurmrestd() {
    if pid_alive "$REST_PID" && (( SLURM_CONF_CHANGED == 0 )) && rest_ok; then
        log "slurmrestd: running on $REST_HOST:$REST_PORT"; return
    fi
    stop_pidfile slurmrestd "$REST_PID" 15
    if rest_ok; then
        die "port $REST_PORT already answers HTTP but not from a slurmrestd this script started; stop it or set SORTIE_SLURM_REST_PORT"
    fi
    log "slurmrestd: starting on $REST_HOST:$REST_PORT as $REST_USER"
    # SLURM_JWT=daemon: every request authenticates with the caller's X-SLURM-USER-TOKEN.
    # No -s: load every OpenAPI plugin this build has (v0.0.36..38 and dbv0.0.36..38 on 22.05).
    setsid setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
        env SLURM_JWT=daemon slurmrestd -a rest_auth/jwt "$REST_HOST:$REST_PORT" \
        >>"$REST_LOG" 2>&1 </dev/null 9>&- &
    echo $! > "$REST_PID"
    wait_until 30 rest_ok || die "slurmrestd did not answer on $REST_HOST:$REST_PORT within 30 s" "$REST_LOG"
}

# --------------------------------------------------------------------------------------------
# 5. Final checks and the env file
# --------------------------------------------------------------------------------------------
final_checks() {
    sacct -n -X -P --starttime=now-1hour --format=JobID >/dev/null 2>"$SORTIE_SLURM_DIR/sacct.err" \
        || die "sacct does not answer" "$SORTIE_SLURM_DIR/sacct.err" "$SLURM_LOG_DIR/slurmdbd.log"
    # The controller must have reached slurmdbd, or sacct shows no jobs from this cluster.
    wait_until 30 bash -c "sacctmgr -n -P show cluster format=cluster,controlport | grep -q '^$CLUSTER_NAME|6817'" \
        || die "slurmctld is not registered with slurmdbd" "$SLURM_LOG_DIR/slurmctld.log" "$SLURM_LOG_DIR/slurmdbd.log"
}

write_env() {
    local version json_plugin rest_plugins newest
    version=$(sinfo -V | awk '{print $2}')
    json_plugin=$(squeue --json 2>/dev/null | jq -r '.meta.plugins.data_parser // .meta.plugin.data_parser // .meta.plugin.type // "unknown"' 2>/dev/null || echo unknown)
    rest_plugins=$(setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
        slurmrestd -s list 2>&1 | sed -n 's/^slurmrestd: *//; s/^\(openapi\/[a-z0-9.]*\)$/\1/p' \
        | grep '^openapi/' | sort -V | paste -sd, -)
    newest=$(tr ',' '\n' <<<"$rest_plugins" | grep -E '^openapi/v[0-9.]+$' | sort -V | tail -n1)
    newest=${newest#openapi/}
    cat > "$ENV_FILE.tmp" <<EOF
# Written by tests/cluster/start.sh on $(date -u +%FT%TZ). KEY=value lines; load in a shell with
#   set -a; . $ENV_FILE; set +a
# Token for REST (or SLURM_JWT for CLI): \`scontrol token lifespan=3600\` prints SLURM_JWT=<jwt>;
# as root add username=<user> to mint one for another user. Send headers
# X-SLURM-USER-NAME: <user> and X-SLURM-USER-TOKEN: <jwt>.
SLURM_REST_URL=http://$REST_HOST:$REST_PORT
SORTIE_SLURM_REST_API=$newest
SORTIE_SLURM_REST_PLUGINS=$rest_plugins
SORTIE_SLURM_TOKEN_CMD='scontrol token lifespan=3600'
SORTIE_SLURM_VERSION=$version
SORTIE_SLURM_JSON_PLUGIN=$json_plugin
SORTIE_SLURM_CLUSTER=$CLUSTER_NAME
SORTIE_SLURM_NODE=$(hostname -s)
SORTIE_SLURM_PARTITIONS=debug,alt,urgent
SORTIE_SLURM_DEFAULT_PARTITION=debug
SORTIE_SLURM_ACCOUNT=$ACCOUNT
SORTIE_SLURM_TEST_USER=$TEST_USER
SORTIE_SLURM_MODE=$CGROUP_MODE
SORTIE_SLURM_LOG_DIR=$SLURM_LOG_DIR
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    chmod 644 "$ENV_FILE"
    log "env: wrote $ENV_FILE (Slurm $version, CLI JSON $json_plugin, REST $newest)"
}

# --------------------------------------------------------------------------------------------
install_packages
prepare_host
write_configs
if (( FORCE_RESTART )); then
    stop_pidfile slurmrestd "$REST_PID" 15
    stop_pidfile slurmd "$SLURMD_PID" 30
    stop_pidfile slurmctld "$CTLD_PID" 30
    stop_pidfile slurmdbd "$DBD_PID" 30
fi
start_munge
start_mysql
start_slurmdbd
ensure_cluster
start_slurmctld
start_slurmd
ensure_associations
start_slurmrestd
final_checks
write_env
log "cluster '$CLUSTER_NAME' is up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ';')"
