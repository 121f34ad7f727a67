#!/usr/bin/env bash
# The PostgreSQL storage engine's tests start a throwaway cluster (initdb + pg_ctl in a temporary
# directory, tests/support/postgres.py), so they need the server binaries. Debian keeps them in
# /usr/lib/postgresql/<major>/bin, off PATH. Install Debian's server package when they are missing
# and we may (root with apt-get); otherwise say what to install: the PostgreSQL tests then say
# plainly that they are skipped (under CI they fail instead).
set -euo pipefail
have() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && return 0
    done
    return 1
}
if have; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # The tests make clusters of their own; Debian's packaged "main" cluster is not used.
    apt-get install -y -q postgresql
    have && exit 0
    echo "floodlight-trust: apt-get installed postgresql but initdb/pg_ctl are still not found" >&2
    exit 1
fi
echo "floodlight-trust: the PostgreSQL tests need initdb and pg_ctl: e.g. sudo apt-get install postgresql" >&2
exit 0
