#!/usr/bin/env bash
# Sets up, builds with ASan+UBSan and runs every test against real components: a PostgreSQL
# cluster started here for the tests (as the postgres user when run as root), ZeroMQ, h2o and
# libcurl; then runs the unit tests again under valgrind. Extra arguments go to ctest (e.g.
# -R broker) in both passes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh asan

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdir=$(mktemp -d /tmp/impact-test-pg.XXXXXX)
chmod 0755 "$pgdir"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$pgdir"
    as_pg=(runuser -u postgres --)
fi
stop_pg() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
}
trap stop_pg EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-k $pgdir -c listen_addresses='' -c max_connections=200 -c fsync=off" start >/dev/null
export IMPACT_TEST_DATABASE_URL="host=$pgdir port=5432 user=postgres dbname=postgres"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

(cd "$root/build-asan" && ctest --output-on-failure --timeout 600 "$@")

scripts/setup.sh valgrind
(cd "$root/build-valgrind" && ctest --output-on-failure --timeout 900 -L unit "$@")
