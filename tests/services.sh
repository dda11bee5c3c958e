#!/bin/sh
# What the suite needs beyond Python packages, started or installed here so
# that `make test` works on a fresh machine. Each step says loudly what it
# could not do; the tests that need it then skip with the same reason.
set -u

# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`): start the
# machine's own server if it is installed but stopped.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "services: starting PostgreSQL" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "services: *** no PostgreSQL on 127.0.0.1:5432: the PostgreSQL tests will skip ***" >&2
fi

# Debian's Chromium for the dashboard's browser tests (Playwright drives it
# with executable_path; it never downloads a browser of its own).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "services: installing Debian's chromium for the browser tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
            || true
    fi
    [ -x /usr/bin/chromium ] || echo "services: *** no /usr/bin/chromium: the browser tests will skip ***" >&2
fi

# nftables for the partition tests (tests/cluster/partition.py cuts a node's
# Raft port on loopback; needs root).
if ! command -v nft >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "services: installing Debian's nftables for the partition tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null 2>&1; } \
            || true
    fi
    command -v nft >/dev/null 2>&1 || echo "services: *** no nft: the partition tests will skip ***" >&2
fi
exit 0
