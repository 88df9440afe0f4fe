#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests (the `postgres` product kind, the PostgreSQL store).
#
#   scripts/pg-temp.sh start <dir>   initdb into <dir> (must be empty or absent), start the
#                                    server on 127.0.0.1 at a free port, and print the admin
#                                    URL: postgresql://wharf_admin:<pw>@127.0.0.1:<port>/postgres
#   scripts/pg-temp.sh stop <dir>    stop it (immediate mode) and leave <dir> for the caller
#   scripts/pg-temp.sh restart <dir> start a stopped cluster again (same data, port, URL)
#   scripts/pg-temp.sh url <dir>     print the admin URL of a running cluster again
#
# TCP connections on 127.0.0.1 need a password (scram-sha-256), so roles made by the tests
# really authenticate; only the local Unix socket of <dir> trusts, for this script's setup.
# The admin role wharf_admin has LOGIN CREATEDB CREATEROLE (not SUPERUSER), like a managed
# service's admin. Durability is off (fsync, full_page_writes, synchronous_commit): the data
# is thrown away. PG_DURABLE=1 (start only) leaves those three at PostgreSQL's defaults (on),
# for benchmarks that compare with a store that syncs its commits (bench/billing.sh).
# Run as root, the server runs as the `postgres` user (runuser).
# PG_BIN overrides where the server binaries are (default: /usr/lib/postgresql/<newest>/bin).
# Exit status 3: no PostgreSQL server binaries (callers skip their tests).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|restart|url <dir>" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" ]] || { echo "pg-temp: no initdb in PG_BIN=$PG_BIN" >&2; exit 3; }
    echo "$PG_BIN"
    return
  fi
  local best=""
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" ]] && best=$d
  done
  if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1; then
    best=$(dirname "$(command -v initdb)")
  fi
  [[ -n "$best" ]] || { echo "pg-temp: PostgreSQL server binaries not found" >&2; exit 3; }
  echo "$best"
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'EOF' 2>/dev/null && return
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
  # Without python: a random high port that nothing listens on.
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "pg-temp: no free port" >&2
  exit 1
}

bin=$(find_bin)

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -n "$(ls -A "$dir")" ]]; then
      echo "pg-temp: $dir is not empty" >&2
      exit 1
    fi
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres: "$dir"
      # The server (user postgres) must be able to reach <dir> through its parents.
      chmod o+x "$(dirname "$dir")" 2>/dev/null || true
    fi
    chmod 700 "$dir"
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    mkdir -p "$dir/data" "$dir/run"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/data" "$dir/run"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    port=$(free_port)
    durability=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off'
    if [[ "${PG_DURABLE:-0}" == 1 ]]; then
      durability="# PG_DURABLE=1: fsync, synchronous_commit, full_page_writes at their defaults (on)"
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
$durability
shared_buffers = 16MB
max_connections = 100
max_wal_senders = 0
wal_level = minimal
dynamic_shared_memory_type = posix
logging_collector = off
log_min_messages = warning
EOF
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
      cat "$dir/server.log" >&2
      exit 1
    }
    as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres \
      -d postgres -v pw="$password" >/dev/null <<'EOF'
CREATE ROLE wharf_admin LOGIN CREATEDB CREATEROLE PASSWORD :'pw';
GRANT pg_signal_backend, pg_read_all_stats TO wharf_admin;
EOF
    url="postgresql://wharf_admin:${password}@127.0.0.1:${port}/postgres"
    umask 077
    echo "$url" >"$dir/admin-url"
    [[ $(id -u) -eq 0 ]] && chown root: "$dir/admin-url"
    echo "$url"
    ;;
  stop)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    ;;
  restart)
    # Starts a stopped cluster again on its data and port (a server that comes back).
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
      cat "$dir/server.log" >&2
      exit 1
    }
    ;;
  url)
    cat "$dir/admin-url"
    ;;
  *)
    usage
    ;;
esac
