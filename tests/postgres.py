"""A PostgreSQL server for the tests: a fresh database per run, clean tables per test.

The server comes from ``TENANT_DNA_TEST_POSTGRES_URL`` (a role that may
``CREATE DATABASE``); ``bash .ci/run`` starts a throwaway one and sets it (see
``.ci/postgres.sh``). Without it the PostgreSQL tests are skipped, saying how
to run them; in CI (``CI=true``) a missing server fails them instead.

Use the fixtures by importing them into a test module::

    from tests.postgres import postgres_storage, postgres_url

Also a child process for the tests across processes:
``python -m tests.postgres increment URL TENANTS TIMES THREADS``.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storage import Change, Committed, PostgresStorage

URL_VARIABLE = "TENANT_DNA_TEST_POSTGRES_URL"
DATA_VARIABLE = "TENANT_DNA_TEST_POSTGRES_DATA"
HOW = (
    f"set {URL_VARIABLE}=postgresql://user:password@host:port/db (a role that "
    "may CREATE DATABASE) or run bash .ci/run, which starts a throwaway server"
)
TIMEOUT = 30.0


def server_url() -> str:
    """The server's URL; skips the test (fails it in CI) when there is none."""
    url = os.environ.get(URL_VARIABLE, "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"CI must run the PostgreSQL tests, but {URL_VARIABLE} is not set: "
                ".ci/run starts the server and sets it",
                pytrace=False,
            )
        pytest.skip(f"PostgreSQL tests need a server: {HOW}")
    return url


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    parts = urllib.parse.urlsplit(url)
    path = "/" + urllib.parse.quote(database)
    return urllib.parse.urlunsplit(parts._replace(path=path))


def reset(url: str) -> None:
    """Empty the database: every table of the tests and of tenant-dna goes."""
    with connect_raw(url) as connection:
        connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def connect_raw(url: str) -> psycopg.Connection[Any]:
    """A plain connection of our own, in autocommit."""
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def wait_for_lock_waiter(url: str) -> None:
    """Until a session of this database waits for a lock.

    Asked on a connection of its own, outside any transaction: within one,
    PostgreSQL shows the same snapshot of pg_stat_activity throughout.
    """
    deadline = time.monotonic() + TIMEOUT
    with connect_raw(url) as watcher:
        while not watcher.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchall():
            assert time.monotonic() < deadline, "nobody ever waited for the lock"
            time.sleep(0.01)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test run (dropped at its end); its URL."""
    server = server_url()
    name = f"tenant_dna_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.fixture
def postgres_storage(postgres_url: str) -> Iterator[PostgresStorage]:
    """A storage on empty tables (the test's own), closed after the test."""
    reset(postgres_url)
    opened = PostgresStorage(postgres_url)
    try:
        yield opened
    finally:
        opened.close()


def pg_ctl(*arguments: str) -> None:
    """Run ``pg_ctl -D <data> ...`` on the test server, as the data's owner."""
    data = os.environ.get(DATA_VARIABLE, "")
    if not data:
        pytest.skip(f"needs the server's data folder in {DATA_VARIABLE}: {HOW}")
    command = ["pg_ctl", "-D", data, "-w", "-t", "60", *arguments]
    log = os.path.join(os.path.dirname(data), "server.log")  # .ci/postgres.sh's
    if "start" in arguments and os.path.exists(log):
        command += ["-l", log]
    if os.geteuid() == 0:  # pg_ctl refuses root: run it as the cluster's owner
        owner = pwd.getpwuid(os.stat(data).st_uid).pw_name
        command = ["runuser", "-u", owner, "--", *command]
    # Not a pipe: a server started here would hold it open for its lifetime.
    subprocess.run(
        command,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
    )


def child(*arguments: str) -> list[str]:
    """The command line of a child process running a job below."""
    return [sys.executable, "-m", "tests.postgres", *arguments]


def increment(url: str, tenants: int, times: int, threads: int, first: int) -> None:
    """``threads`` threads each add 1 to tenants' tokens ``times`` times.

    Thread ``n`` goes round the tenants ``tenant-0 .. tenant-<tenants - 1>``
    starting at ``first + n``; every change is a read-modify-write commit
    based on the version read, retried from the stored record on conflict.
    Prints ``{"commits": ..., "conflicts": ..., "errors": [...]}``.
    """
    storage = PostgresStorage(url)
    conflicts: list[int] = []
    errors: list[str] = []

    def work(n: int) -> None:
        own = storage.clone()
        try:
            lost = 0
            for step in range(times):
                tenant_id = f"tenant-{(first + n + step) % tenants}"
                record = own.load(tenant_id)
                assert record is not None
                while True:
                    dna = record.dna
                    dna.avg_tokens_per_task += 1
                    (outcome,) = own.commit(
                        [Change(tenant_id, dna, record.version, record.incarnation)]
                    )
                    if isinstance(outcome, Committed):
                        break
                    lost += 1
                    assert outcome.current is not None
                    record = outcome.current
            conflicts.append(lost)
        except BaseException as error:  # reported to the parent
            errors.append(repr(error))
        finally:
            own.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=TIMEOUT)
    storage.close()
    report = {
        "commits": threads * times,
        "conflicts": sum(conflicts),
        "errors": errors + ["a thread hung"] * sum(w.is_alive() for w in workers),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    job, *rest = sys.argv[1:]
    if job != "increment":
        sys.exit(f"unknown job {job!r}")
    url, tenants, times, threads, first = rest
    increment(url, int(tenants), int(times), int(threads), int(first))
