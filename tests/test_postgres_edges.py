"""PostgreSQL storage: edges the main suite left open (found by mutating it).

Every race is forced with Events or a lock held by a raw connection, never by
timing luck; every wait has a timeout. Needs the server of ``tests/postgres.py``.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import storage._packed
import storage.postgres
from storage import (
    Announced,
    Change,
    CommitOutcomeUnknown,
    Committed,
    Conflict,
    PostgresStorage,
    Record,
    StorageError,
)
from tests.postgres import (
    TIMEOUT,
    connect_raw,
    postgres_storage,
    postgres_url,
    reset,
    wait_for_lock_waiter,
)
from tests.test_storage import create, erase, profile

__all__ = ["postgres_storage", "postgres_url"]  # fixtures, used by name


class _Thread(threading.Thread):
    """A thread keeping what its target returned or raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._work = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as error:
            self.error = error


@pytest.fixture
def paused_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event, list[threading.Thread]]]:
    """Commits in the threads listed stop between their writes and COMMIT
    (transaction open, xid assigned) until ``release`` is set; ``inside`` is
    set when one gets there."""
    inside, release = threading.Event(), threading.Event()
    pausing: list[threading.Thread] = []
    original = PostgresStorage._write

    def write(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if threading.current_thread() in pausing:
            inside.set()
            assert release.wait(TIMEOUT), "never released"
        return result

    monkeypatch.setattr(PostgresStorage, "_write", staticmethod(write))
    try:
        yield inside, release, pausing
    finally:
        release.set()


# -- cursors and the erasure log ----------------------------------------------


def test_a_cursor_taken_while_a_commit_runs_misses_none_of_its_changes(
    postgres_storage: PostgresStorage,
    paused_commit: tuple[threading.Event, threading.Event, list[threading.Thread]],
) -> None:
    inside, release, pausing = paused_commit
    kept = create(postgres_storage, "kept")
    gone = create(postgres_storage, "gone")
    other = postgres_storage.clone()
    try:
        committer = _Thread(
            lambda: postgres_storage.commit(
                [
                    Change("kept", profile(1), 1, kept.incarnation),
                    Change("gone", None, 1, gone.incarnation),
                ]
            )
        )
        pausing.append(committer)
        committer.start()
        assert inside.wait(TIMEOUT), "the commit never reached its writes"
        # A later transaction ends first: the oldest one running (the paused
        # commit's) is now below the newest ended.
        later = create(other, "later")
        cursor = other.cursor()  # the commit is running: it is after the cursor
        release.set()
        committer.join(TIMEOUT)
        assert not committer.is_alive()
        assert committer.error is None
        assert committer.result == [Committed(2, kept.incarnation), Committed(0, 0)]
        changes = other.changes_since(cursor)
        assert ("kept", 2, kept.incarnation) in changes.updated
        assert ("later", 1, later.incarnation) in changes.updated  # repeated
        assert gone.incarnation in changes.erased
        assert changes.complete
    finally:
        other.close()


def test_an_erasure_pruned_from_the_log_is_never_missed_by_a_complete_answer(
    postgres_storage: PostgresStorage,
    paused_commit: tuple[threading.Event, threading.Event, list[threading.Thread]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage.postgres, "ERASURE_LOG", 1)
    inside, release, pausing = paused_commit
    first = create(postgres_storage, "first")
    create(postgres_storage, "second")
    eraser = _Thread(lambda: erase(postgres_storage, "first"))
    pausing.append(eraser)
    eraser.start()
    assert inside.wait(TIMEOUT), "the erasure never reached its writes"
    # The oldest transaction running is the erasure's: the cursor is its xid.
    cursor = postgres_storage.cursor()
    release.set()
    eraser.join(TIMEOUT)
    assert not eraser.is_alive()
    assert eraser.error is None
    erase(postgres_storage, "second")  # pushes the first erasure out of the log
    changes = postgres_storage.changes_since(cursor)
    assert not changes.complete or first.incarnation in changes.erased, changes


def test_the_erasure_log_keeps_exactly_the_last_erasures(
    postgres_storage: PostgresStorage,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage.postgres, "ERASURE_LOG", 3)
    lives = []
    for n in range(6):
        lives.append(create(postgres_storage, f"tenant-{n}").incarnation)
        erase(postgres_storage, f"tenant-{n}")
    with connect_raw(postgres_url) as raw:
        kept = raw.execute(
            "SELECT incarnation FROM tenant_dna_erasures ORDER BY id"
        ).fetchall()
    assert [incarnation for (incarnation,) in kept] == lives[-3:]


# -- a commit whose reply was lost ----------------------------------------------


def _killing_cursor(where: str) -> type[psycopg.ClientCursor[Any]]:
    """A ClientCursor whose backend kills itself ``where`` ("after" or
    "before") the COMMIT of the statement that ends a commit."""
    kill = "SELECT pg_terminate_backend(pg_backend_pid())"

    class Killing(psycopg.ClientCursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            if isinstance(query, str) and query.endswith("; COMMIT"):
                if where == "after":
                    query = f"{query}; {kill}"
                else:
                    query = f"{query[: -len('; COMMIT')]}; {kill}; COMMIT"
            return super().execute(query, params, **kwargs)

    return Killing


def test_a_commit_written_before_its_connection_died_is_reported_committed(
    postgres_storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = create(postgres_storage, "acme")
    monkeypatch.setattr(psycopg, "ClientCursor", _killing_cursor("after"))
    outcomes = postgres_storage.commit(
        [
            Change("acme", profile(1), 1, acme.incarnation),
            Change("globex", profile(2), 0, 0),
        ]
    )
    monkeypatch.undo()
    assert outcomes[0] == Committed(2, acme.incarnation)
    assert isinstance(outcomes[1], Committed)
    assert postgres_storage.load("acme") == Record(profile(1), 2, acme.incarnation)
    assert postgres_storage.load("globex") == Record(
        profile(2), 1, outcomes[1].incarnation
    )


def test_a_commit_rolled_back_when_its_connection_died_says_nothing_was_written(
    postgres_storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(psycopg, "ClientCursor", _killing_cursor("before"))
    with pytest.raises(StorageError, match="rolled it back") as raised:
        postgres_storage.commit([Change("acme", profile(), 0, 0)])
    monkeypatch.undo()
    assert not isinstance(raised.value, CommitOutcomeUnknown)
    assert postgres_storage.load("acme") is None
    create(postgres_storage, "acme")


def test_a_lost_commit_still_in_progress_is_unknown_after_connect_timeout(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    opened = PostgresStorage(postgres_url, connect_timeout=0.5)
    holder = connect_raw(postgres_url)
    try:
        holder.execute("BEGIN")
        ((xid,),) = holder.execute("SELECT pg_current_xact_id()::text").fetchall()
        lost = storage.postgres._CommitLost(xid, [Committed(1, 5)], OSError("lost"))
        settler = _Thread(lambda: opened._settle("the commit", lost))
        started = time.monotonic()
        settler.start()
        settler.join(10.0)
        assert not settler.is_alive(), "no answer after 10 s (connect_timeout 0.5 s)"
        assert time.monotonic() - started < 10.0
        assert isinstance(settler.error, CommitOutcomeUnknown), settler.result
        assert "in progress" in str(settler.error)
        assert xid in str(settler.error)
    finally:
        holder.execute("ROLLBACK")  # also ends a settler that would never stop
        holder.close()
        opened.close()


# -- locks and the pool -----------------------------------------------------------


def test_a_commit_waiting_too_long_for_a_lock_fails_and_its_connection_is_clean(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset(postgres_url)
    monkeypatch.setattr(storage.postgres, "LOCK_TIMEOUT", 0.3)
    opened = PostgresStorage(postgres_url, pool_size=1)
    holder = connect_raw(postgres_url)
    try:
        acme = create(opened, "acme")
        holder.execute("BEGIN")
        holder.execute(
            "SELECT * FROM tenant_dna_profiles WHERE tenant_id = 'acme' FOR UPDATE"
        )
        committer = _Thread(
            lambda: opened.commit(
                [
                    Change("globex", profile(), 0, 0),
                    Change("acme", profile(1), 1, acme.incarnation),
                ]
            )
        )
        committer.start()
        committer.join(10.0)
        assert not committer.is_alive(), "the commit waited for the lock for good"
        assert isinstance(committer.error, StorageError), committer.result
        assert "nothing was written" in str(committer.error)
        holder.execute("ROLLBACK")
        # The pooled connection was given back clean: no transaction left
        # open (no lock held, nothing aborted).
        assert opened.load("globex") is None
        with connect_raw(postgres_url) as other:
            other.execute(
                "SELECT * FROM tenant_dna_profiles FOR UPDATE NOWAIT"
            ).fetchall()
        (outcome,) = opened.commit([Change("acme", profile(2), 1, acme.incarnation)])
        assert outcome == Committed(2, acme.incarnation)
    finally:
        if not holder.closed:
            holder.execute("ROLLBACK")
            holder.close()
        opened.close()


def test_a_tenant_created_by_another_transaction_meanwhile_conflicts(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    theirs = profile(5)
    with connect_raw(postgres_url) as holder:
        holder.execute("BEGIN")
        holder.execute(
            "INSERT INTO tenant_dna_profiles (tenant_id, version, incarnation, xid, "
            "dna) VALUES ('acme', 1, 4242, pg_current_xact_id()::text::bigint, %s)",
            (storage._packed.encode("acme", theirs),),
        )
        committer = _Thread(
            lambda: postgres_storage.commit([Change("acme", profile(9), 0, 0)])
        )
        committer.start()
        try:
            wait_for_lock_waiter(postgres_url)  # its INSERT waits for ours
        finally:
            holder.execute("COMMIT")
        committer.join(TIMEOUT)
    assert not committer.is_alive()
    assert committer.error is None, committer.error
    assert committer.result == [Conflict(Record(theirs, 1, 4242))]
    assert postgres_storage.load("acme") == Record(theirs, 1, 4242)


def test_the_pool_keeps_at_most_pool_size_idle_connections(postgres_url: str) -> None:
    reset(postgres_url)
    opened = PostgresStorage(postgres_url, pool_size=2)
    try:
        shared = opened._open()
        borrowed = [opened._borrow(shared) for _ in range(4)]
        for connection in borrowed:
            opened._give_back(shared, connection)
        assert len(shared.idle) == 2
        assert sum(connection.closed for connection in borrowed) == 2
    finally:
        opened.close()


def test_a_connection_given_back_after_the_last_close_is_closed(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    opened = PostgresStorage(postgres_url)
    clone = opened.clone()
    shared = clone._open()
    in_use = clone._borrow(shared)  # an operation of a thread, under way
    opened.close()
    clone.close()
    clone._give_back(shared, in_use)  # ... ends after the last handle closed
    assert in_use.closed
    assert not shared.idle


def test_every_connection_has_our_settings_whatever_the_server_defaults(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    options = (
        "-c synchronous_commit=off -c default_transaction_isolation=serializable "
        "-c lock_timeout=0 -c idle_in_transaction_session_timeout=0"
    )
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}options={urllib.parse.quote(options)}"
    with connect_raw(url) as raw:  # the server's defaults for this session are others
        assert raw.execute("SHOW synchronous_commit").fetchall() == [("off",)]
    opened = PostgresStorage(url)
    try:
        shared = opened._open()
        connection = opened._borrow(shared)
        try:
            settings = {
                name: connection.execute(f"SHOW {name}").fetchall()[0][0]
                for name in (
                    "synchronous_commit",
                    "default_transaction_isolation",
                    "lock_timeout",
                    "idle_in_transaction_session_timeout",
                )
            }
        finally:
            opened._give_back(shared, connection)
        assert settings == {
            "synchronous_commit": "on",
            "default_transaction_isolation": "read committed",
            "lock_timeout": "10s",
            "idle_in_transaction_session_timeout": "1min",
        }
    finally:
        opened.close()


# -- announcements ------------------------------------------------------------------


def test_a_payload_of_8000_bytes_or_more_is_sent_as_stale(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    # PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more: such a
    # commit must still succeed, announced as STALE.
    names = [
        f"tenant-with-a-name-long-enough-to-fill-the-payload-{n:04d}"
        for n in range(100)
    ]
    with connect_raw(postgres_url) as raw:
        raw.execute(f"LISTEN {storage.postgres.CHANNEL}")
        outcomes = postgres_storage.commit(
            [Change(name, profile(), 0, 0) for name in names]
        )
        named = json.dumps(
            {
                "updated": [
                    [name, 1, outcome.incarnation]
                    for name, outcome in zip(names, outcomes, strict=True)
                    if isinstance(outcome, Committed)
                ],
                "erased": [],
            },
            separators=(",", ":"),
        )
        assert 8_000 <= len(named) < 9_000  # the size this test is about
        (notify,) = list(raw.notifies(timeout=TIMEOUT, stop_after=1))
    assert notify.payload == storage.postgres.STALE
    assert postgres_storage.count() == len(names)


def test_restore_is_announced(postgres_storage: PostgresStorage) -> None:
    listener = postgres_storage.clone()
    try:
        assert listener.wait_for_changes(0.0) == Announced([], [], complete=False)
        postgres_storage.restore([("acme", Record(profile(), 3, 77))])
        heard = listener.wait_for_changes(TIMEOUT)
        assert heard is not None, "restore was not announced"
        assert [(t, v) for t, v, _ in heard.updated] == [("acme", 3)]
    finally:
        listener.close()


# -- opening ------------------------------------------------------------------------


def test_a_database_missing_one_of_our_tables_is_refused_and_left_unchanged(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    create(postgres_storage, "acme")
    with connect_raw(postgres_url) as raw:
        raw.execute("DROP TABLE tenant_dna_erasures")
    with pytest.raises(StorageError, match=r"incomplete.*tenant_dna_erasures"):
        PostgresStorage(postgres_url)
    with connect_raw(postgres_url) as raw:
        assert raw.execute("SELECT to_regclass('tenant_dna_erasures')").fetchone() == (
            None,
        )
        assert raw.execute("SELECT tenant_id FROM tenant_dna_profiles").fetchall() == [
            ("acme",)
        ]


@pytest.mark.parametrize(
    "url",
    [
        # libpq repeats a malformed password in its error message: decoded,
        # or as written (it was hidden in its decoded form only) when an
        # escape in it is valid or a "+" stands for a space.
        "postgresql://someone:hunter2%ZZsecret@127.0.0.1:1/profiles",
        "postgresql://someone@127.0.0.1:1/profiles?password=hunter2%ZZsecret",
        "postgresql://someone:hunter2%41%ZZsecret@127.0.0.1:1/profiles",
        "postgresql://someone@127.0.0.1:1/profiles?password=hunter2+%ZZsecret",
    ],
)
def test_a_password_libpq_repeats_in_its_error_is_hidden(url: str) -> None:
    with pytest.raises(StorageError) as raised:
        PostgresStorage(url, connect_timeout=1.0)
    assert "hunter2" not in str(raised.value)
    assert "someone@127.0.0.1:1/profiles" in str(raised.value)


# -- a reply lost on the wire ---------------------------------------------------------


class _DroppingProxy:
    """A TCP proxy to the server that, once armed, forwards the next client
    message holding ``COMMIT`` and then cuts both sides before the server's
    reply reaches the client: the server commits, the client never hears."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listening = socket.create_server(("127.0.0.1", 0))
        port = self.listening.getsockname()[1]
        self.url = urllib.parse.urlunsplit(
            parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}")
        )
        self.armed = threading.Event()
        self.commit_sent = threading.Event()
        self.cut = threading.Event()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listening.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=TIMEOUT)
            threading.Thread(
                target=self._pipe, args=(client, server), daemon=True
            ).start()

    def _pipe(self, client: socket.socket, server: socket.socket) -> None:
        mine = False  # this connection carried the armed COMMIT
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], TIMEOUT)
                if not readable:
                    return
                for side in readable:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client:
                        if self.armed.is_set() and b"COMMIT" in data:
                            self.armed.clear()
                            mine = True
                            self.commit_sent.set()
                        server.sendall(data)
                    elif mine:
                        self.cut.set()  # the reply to COMMIT: dropped
                        return
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for each in (client, server):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                each.close()

    def close(self) -> None:
        self.closed = True
        self.listening.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[_DroppingProxy]:
    reset(postgres_url)
    dropping = _DroppingProxy(postgres_url)
    try:
        yield dropping
    finally:
        dropping.close()


def test_a_commit_whose_reply_is_lost_on_the_wire_is_reported_committed(
    proxy: _DroppingProxy,
) -> None:
    opened = PostgresStorage(proxy.url)
    try:
        acme = create(opened, "acme")
        proxy.armed.set()
        (outcome,) = opened.commit([Change("acme", profile(1), 1, acme.incarnation)])
        assert proxy.cut.is_set()
        assert outcome == Committed(2, acme.incarnation)
        assert opened.load("acme") == Record(profile(1), 2, acme.incarnation)
    finally:
        opened.close()


def test_a_restore_whose_reply_is_lost_on_the_wire_is_found_written(
    proxy: _DroppingProxy,
) -> None:
    # A restore did not ask the server what became of a COMMIT whose reply
    # was lost, as a commit does: it said "nothing was written" of records
    # that were written.
    opened = PostgresStorage(proxy.url)
    try:
        proxy.armed.set()
        opened.restore([("acme", Record(profile(), 3, 77))])
        assert proxy.cut.is_set()
        assert opened.load("acme") == Record(profile(), 3, 77)
    finally:
        opened.close()


def test_a_commit_whose_new_tenants_others_keep_creating_still_commits(
    postgres_storage: PostgresStorage,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each attempt finds its tenants absent, and before it inserts them
    # another process creates one: the attempt starts over, on one tenant
    # fewer to create. Ten races in a row (more than the eight attempts a
    # commit had) end in a commit, the raced tenants reported as conflicts.
    tenants = [f"new-{n:02d}" for n in range(12)]
    other = PostgresStorage(postgres_url)
    write = PostgresStorage._write
    raced: list[str] = []
    creating: list[bool] = []

    def racing(
        connection: Any,
        tenant_ids: list[str],
        initial: dict[str, Any],
        current: dict[str, Any],
        erased: list[int],
        *,
        payload: str,
    ) -> Any:
        if len(raced) < 10 and not creating:
            absent = [t for t in tenant_ids if t not in initial and current[t]]
            raced.append(absent[0])
            creating.append(True)  # the other's own commit is not raced
            create(other, absent[0], profile(1))
            creating.clear()
        return write(connection, tenant_ids, initial, current, erased, payload=payload)

    monkeypatch.setattr(PostgresStorage, "_write", staticmethod(racing))
    try:
        outcomes = postgres_storage.commit(
            [Change(tenant, profile(2), 0, 0) for tenant in tenants]
        )
    finally:
        other.close()
    assert len(set(raced)) == 10
    for tenant, outcome in zip(tenants, outcomes, strict=True):
        stored = postgres_storage.load(tenant)
        assert stored is not None
        if tenant in raced:
            assert isinstance(outcome, Conflict)
            assert outcome.current == stored
            assert stored.dna == profile(1)
        else:
            assert outcome == Committed(1, stored.incarnation)
            assert stored.dna == profile(2)
