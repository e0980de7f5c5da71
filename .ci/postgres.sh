# A throwaway PostgreSQL 15 for the tests: source it, then start and stop it.
#
#   . .ci/postgres.sh
#   tenant_dna_postgres_start      # exports the two variables below
#   trap tenant_dna_postgres_stop EXIT
#   .venv/bin/python -m pytest tests/test_storage_postgres.py
#
# TENANT_DNA_TEST_POSTGRES_URL   postgresql://tenant_dna:<password>@127.0.0.1:<port>/postgres
# TENANT_DNA_TEST_POSTGRES_DATA  the cluster's data folder (the restart test uses it)
#
# The cluster lives in a new temporary folder, listens on 127.0.0.1 only, on a
# free port, with its socket in that folder: it never meets a server already
# running on the machine. initdb and pg_ctl refuse to run as root, so as root
# (CI) they run as the postgres user. The role tenant_dna is a superuser with
# a random password (scram over TCP), so the tests can create their databases.

tenant_dna_postgres_start() {
    local bin root port password as_owner=()
    bin=""
    if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
        for bin in /usr/lib/postgresql/*/bin; do :; done
        if [ ! -x "$bin/initdb" ]; then
            echo "postgres.sh: initdb and pg_ctl not found: install PostgreSQL 15" >&2
            return 1
        fi
        PATH="$bin:$PATH"
    fi
    root=$(mktemp -d "${TMPDIR:-/tmp}/tenant-dna-postgres.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$root"
        as_owner=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    (umask 077 && printf '%s\n' "$password" >"$root/password")
    [ "${#as_owner[@]}" -eq 0 ] || chown postgres: "$root/password"
    "${as_owner[@]}" initdb -D "$root/data" -U tenant_dna --pwfile="$root/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$root/initdb.log" 2>&1 || {
        cat "$root/initdb.log" >&2
        return 1
    }
    rm -f "$root/password"
    # In the configuration file, not on pg_ctl's command line: a plain
    # "pg_ctl start" (the restart test's) must find the same port and socket.
    printf '%s\n' "port = $port" "listen_addresses = '127.0.0.1'" \
        "unix_socket_directories = '$root'" "max_connections = 200" \
        >>"$root/data/postgresql.conf"
    "${as_owner[@]}" pg_ctl -D "$root/data" -l "$root/server.log" -w -t 60 \
        start >/dev/null || {
        cat "$root/server.log" >&2
        return 1
    }
    TENANT_DNA_TEST_POSTGRES_ROOT=$root
    export TENANT_DNA_TEST_POSTGRES_URL="postgresql://tenant_dna:$password@127.0.0.1:$port/postgres"
    export TENANT_DNA_TEST_POSTGRES_DATA="$root/data"
    echo "PostgreSQL $("${as_owner[@]}" pg_ctl --version | awk '{print $3}') on 127.0.0.1:$port, data in $root/data"
}

tenant_dna_postgres_stop() {
    local root=${TENANT_DNA_TEST_POSTGRES_ROOT:-} as_owner=()
    [ -n "$root" ] || return 0
    [ "$(id -u)" != 0 ] || as_owner=(runuser -u postgres --)
    "${as_owner[@]}" pg_ctl -D "$root/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    rm -rf "$root"
    unset TENANT_DNA_TEST_POSTGRES_ROOT TENANT_DNA_TEST_POSTGRES_URL TENANT_DNA_TEST_POSTGRES_DATA
}
