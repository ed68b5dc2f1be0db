#!/usr/bin/env bash
# make demo: the whole platform on 127.0.0.1 in ./run/demo -- redis-server,
# PostgreSQL (billing ledger), the controller, nginx with the wake module --
# plus one demo project whose compute is suspended until you connect.
# Ctrl-C stops everything this script started, by PID.
#
#   scripts/demo.sh           run until Ctrl-C
#   scripts/demo.sh --check   set up, connect once through nginx, tear down
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
RUN=${SMDB_DEMO_DIR:-$ROOT/run/demo}
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

PIDS=()
say() { printf '%s\n' "$*"; }

free_port() {   # first port >= $1 that nobody listens on
  local p=$1
  while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  # a frozen compute handles no signal until thawed
  local cg
  cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null || true)
  if [ -n "$cg" ] && [ -w "/sys/fs/cgroup/unified$cg/cgroup.freeze" ]; then
    echo 0 > "/sys/fs/cgroup/unified$cg/cgroup.freeze" || true
  fi
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  trap - INT TERM EXIT
  say ""
  say "stopping the demo ..."
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  # computes outlive the controller on purpose: stop them by their pid files
  for f in "$RUN"/computes/*/mariadbd.pid; do
    [ -f "$f" ] && stop_pid "$(cat "$f")"
  done
  rm -rf "$SOCK_DIR"
  say "stopped. Logs and compute data stay in $RUN"
}

# leftovers of an earlier demo that was not stopped cleanly
if [ -f "$RUN/pids" ]; then
  while read -r pid; do stop_pid "$pid"; done < "$RUN/pids"
  for f in "$RUN"/computes/*/mariadbd.pid; do [ -f "$f" ] && stop_pid "$(cat "$f")"; done
fi
rm -rf "$RUN"
mkdir -p "$RUN"
chmod 755 "$RUN"
trap cleanup INT TERM EXIT
trap 'say "demo: failed at line $LINENO (logs in $RUN)"' ERR

track() { PIDS+=("$1"); echo "$1" >> "$RUN/pids"; }

wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done
  say "demo: nothing listens on port $1 (see the logs in $RUN)"; exit 1
}

REDIS_PORT=$(free_port 16379)
CTL_PORT=$(free_port 18480)
PG_PORT=$(free_port 15432)
PROXY_PORT=$(free_port 13306)
SYSLOG_PORT=$(free_port 18514)
API_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
WAKE_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
SOCK_DIR=$(mktemp -d /tmp/smdb-demo-XXXXXX)   # sockets (short paths), PostgreSQL data

# --- redis -----------------------------------------------------------------
mkdir -p "$RUN/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" \
  --appendonly yes --save "" --daemonize no > "$RUN/redis.log" 2>&1 &
track $!
wait_port "$REDIS_PORT"

# --- PostgreSQL (billing ledger) ---------------------------------------------
PG_CONNINFO=""
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$PGBIN" ] && id postgres >/dev/null 2>&1; then
  # PostgreSQL refuses to run as root: its data lives where user postgres can
  # reach it whatever the checkout's permissions (the short /tmp directory)
  PGDATA_DIR="$SOCK_DIR/pg"
  mkdir -p "$PGDATA_DIR"
  chown postgres "$PGDATA_DIR" "$SOCK_DIR"
  chmod 755 "$SOCK_DIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA_DIR/data" -U postgres -A trust \
    > "$RUN/pg-initdb.log" 2>&1
  runuser -u postgres -- "$PGBIN/postgres" -D "$PGDATA_DIR/data" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$SOCK_DIR" \
    > "$RUN/pg.log" 2>&1 &
  track $!
  wait_port "$PG_PORT"
  for _ in $(seq 100); do
    runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAtc 'select 1' \
      >/dev/null 2>&1 && break
    sleep 0.1
  done
  runuser -u postgres -- "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc 'CREATE DATABASE smdb' \
    >/dev/null
  PG_CONNINFO="host=127.0.0.1 port=$PG_PORT dbname=smdb user=postgres connect_timeout=3"
fi

# --- controller ----------------------------------------------------------------
cat > "$RUN/controller.conf" <<CONF
listen = 127.0.0.1:$CTL_PORT
redis = 127.0.0.1:$REDIS_PORT
api_token = $API_TOKEN
wake_token = $WAKE_TOKEN
data_dir = $RUN/computes
socket_dir = $SOCK_DIR
compute_port_min = $(free_port 23306)
compute_port_max = $(( $(free_port 23306) + 50 ))
mycnf_template = $ROOT/config/compute.cnf.in
idle_timeout_s = 120
freeze_after_s = 30
CONF
[ -f "$BUILD/wake_activity.so" ] && echo "activity_plugin = $BUILD/wake_activity.so" >> "$RUN/controller.conf"
[ -n "$PG_CONNINFO" ] && echo "pg_conninfo = $PG_CONNINFO" >> "$RUN/controller.conf"
echo "syslog_listen = 127.0.0.1:$SYSLOG_PORT" >> "$RUN/controller.conf"
"$BUILD/smdb-controller" --config "$RUN/controller.conf" > "$RUN/controller.log" 2>&1 &
track $!
wait_port "$CTL_PORT"

# --- nginx with the wake module ---------------------------------------------------
mkdir -p "$RUN/nginx/logs"
sed -e "s|@MODULE@|$BUILD/ngx_stream_wake_module.so|g" \
    -e "s|@CONTROLLER@|127.0.0.1:$CTL_PORT|g" \
    -e "s|@WAKE_TOKEN@|$WAKE_TOKEN|g" \
    -e "s|@LISTEN@|127.0.0.1:$PROXY_PORT|g" \
    -e "s|@SYSLOG@|127.0.0.1:$SYSLOG_PORT|g" \
    -e "s|@RUN_DIR@|$RUN/nginx|g" \
    "$ROOT/config/nginx.conf" > "$RUN/nginx/nginx.conf"
nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -g 'daemon off;' > "$RUN/nginx.log" 2>&1 &
track $!
wait_port "$PROXY_PORT"

# --- the demo project ---------------------------------------------------------------
export SMDB_URL="http://127.0.0.1:$CTL_PORT" SMDB_API_TOKEN="$API_TOKEN" SMDB_WAKE_TOKEN="$WAKE_TOKEN"
"$BUILD/smdbctl" project create demo > "$RUN/demo-project.json"
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$RUN/demo-project.json" "$1"; }
PASSWORD=$(field 'd["admin_password"]')
CID=$(field 'd["compute_id"]')
"$BUILD/smdbctl" compute suspend "$CID" > /dev/null

# The demo's nginx offers no TLS; MariaDB 11.4+ clients (Debian 13) ask for
# it by default and need --skip-ssl to connect without.
NO_TLS=""
mariadb --version 2>/dev/null | grep -Eq ' (1[1-9]\.([4-9]|[1-9][0-9])|1[2-9]\.[0-9]+|[2-9][0-9]\.[0-9]+)\.[0-9]+-MariaDB' &&
  NO_TLS=" --skip-ssl"

say ""
say "Serverless MariaDB demo is running (logs and data in $RUN)."
say ""
say "The project 'demo' is suspended; connecting wakes it:"
say ""
say "    mariadb -h 127.0.0.1 -P $PROXY_PORT -u admin -p'$PASSWORD'$NO_TLS demo"
say ""
say "(route by database name, as above, or by user prefix: -u demo.admin)"
say "Controller API:  export SMDB_URL=$SMDB_URL SMDB_API_TOKEN=$API_TOKEN"
say "                 $BUILD/smdbctl project show demo"
say "                 $BUILD/smdbctl usage demo"
say "Metrics:         curl -H 'Authorization: Bearer $API_TOKEN' $SMDB_URL/metrics"
say "The compute freezes after 30 s idle and stops after 120 s. Ctrl-C stops everything."

if [ $CHECK -eq 1 ]; then
  out=$(mariadb $NO_TLS -h 127.0.0.1 -P "$PROXY_PORT" -u admin -p"$PASSWORD" demo -N -e 'SELECT 40 + 2')
  [ "$out" = "42" ] || { say "demo check: unexpected answer '$out'"; exit 1; }
  say "demo check: connected through nginx to the woken compute: SELECT 40 + 2 = $out"
  exit 0
fi
wait
