#!/usr/bin/env bash
# Make a Debian machine ready for the PostgreSQL tests, as root, without stdin: install the server
# (Debian's postgresql, which also creates the `postgres` user the tests run it as under root) when
# no initdb is found. The tests start a private server of their own (tests/support/postgres.py);
# nothing here starts one. Debian's package creates the cluster 15/main, and starts it on port 5432
# where services may start (not in a container whose policy-rc.d forbids it): harmless, unused.
# Idempotent: a second run changes nothing and takes well under a second.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-postgres: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get needs it)"
    exit 1
fi

# Where tests/support/postgres.py looks: pg_config's bindir, Debian's folders, PATH.
server_installed() {
    [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
        command -v initdb >/dev/null 2>&1
}

if server_installed; then
    log "PostgreSQL server already installed"
    exit 0
fi

log "installing: postgresql"
apt-get update -q
apt-get install -y -q --no-install-recommends postgresql </dev/null

if ! server_installed; then
    log "ERROR: postgresql is installed but no initdb was found in /usr/lib/postgresql/*/bin"
    exit 1
fi
id postgres >/dev/null 2>&1 || log "WARNING: no 'postgres' user: the tests cannot run the server as root"
log "PostgreSQL server installed: $(ls /usr/lib/postgresql | sort -n | tr '\n' ' ')"
