# Sourced by scripts/test: starts a throwaway PostgreSQL cluster for the test run and stops it on exit.
# Needs the server binaries (Debian: apt-get install postgresql). Exports METERBOOK_TEST_POSTGRES_URL.

start_throwaway_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] && command -v pg_ctl >/dev/null 2>&1; then
    bin=$(dirname "$(command -v pg_ctl)")
  fi
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL server binaries not found: apt-get install postgresql (or set METERBOOK_TEST_POSTGRES_URL)." >&2
    return 1
  fi
  PG_TMP=$(mktemp -d /tmp/meterbook-pg.XXXXXX)
  local port run_as=()
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root; the postgres user comes with Debian's package.
    chown postgres "$PG_TMP"
    run_as=(runuser -u postgres --)
  fi
  PG_CTL=("${run_as[@]}" "$bin/pg_ctl" -D "$PG_TMP/data")
  "${run_as[@]}" "$bin/initdb" -D "$PG_TMP/data" -U meterbook -A trust -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  # Durability settings are off for speed: these tests kill meterbook, never PostgreSQL.
  "${PG_CTL[@]}" -w -l "$PG_TMP/server.log" \
    -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  trap stop_throwaway_postgres EXIT
  export METERBOOK_TEST_POSTGRES_URL="postgresql+psycopg://meterbook@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the tests on port $port"
}

stop_throwaway_postgres() {
  "${PG_CTL[@]}" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
}
