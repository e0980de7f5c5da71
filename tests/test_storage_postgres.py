"""PostgreSQL storage: the whole shared suite, then PostgreSQL's own promises.

Every test of ``tests/test_storage.py`` that takes the ``backend`` fixture runs
here against a real server, through this module's ``backend``. Without a
server the module is skipped (failed in CI): see ``tests/postgres.py``.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import storage._packed
import storage.postgres
import tests.test_storage as shared
from dna import TenantDNA
from storage import (
    Announced,
    Change,
    Committed,
    Conflict,
    MemoryStorage,
    PostgresStorage,
    Record,
    StorageError,
    open_storage,
)
from tests.conftest import run_threads
from tests.postgres import (
    TIMEOUT,
    child,
    connect_raw,
    pg_ctl,
    postgres_storage,
    postgres_url,
    reset,
    wait_for_lock_waiter,
)
from tests.test_storage import create, erase, profile, write

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["postgres_storage", "postgres_url"]  # fixtures, used by name

# -- the shared suite ----------------------------------------------------------

SHARED_TESTS = {
    name: test
    for name, test in vars(shared).items()
    if name.startswith("test_")
    and callable(test)
    and "backend" in inspect.signature(test).parameters
}
globals().update(SHARED_TESTS)


@pytest.fixture
def backend(postgres_storage: PostgresStorage) -> PostgresStorage:
    """The shared suite's storage: PostgreSQL, on empty tables."""
    return postgres_storage


def test_a_cursor_older_than_the_erasure_log_is_incomplete(
    backend: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.postgres, "ERASURE_LOG", 3)
    shared.test_a_cursor_older_than_the_erasure_log_is_incomplete(backend, monkeypatch)


def test_the_shared_suite_is_all_here() -> None:
    assert len(SHARED_TESTS) >= 25
    assert all(globals()[name] is not None for name in SHARED_TESTS)


# -- opening -------------------------------------------------------------------


def test_open_storage_gives_postgres_named_without_the_password(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    password = psycopg.conninfo.conninfo_to_dict(postgres_url).get("password")
    for url in (postgres_url, postgres_url.replace("postgresql", "postgresql+psycopg")):
        opened = open_storage(url)
        try:
            assert isinstance(opened, PostgresStorage)
            assert opened.name.startswith("postgresql://")
            assert not password or str(password) not in opened.name
        finally:
            opened.close()


def test_an_unreachable_server_is_a_storage_error_naming_the_url_not_the_password() -> (
    None
):
    url = "postgresql://someone:hunter2-secret@127.0.0.1:1/profiles"
    with pytest.raises(StorageError, match=r"postgresql://someone@127\.0\.0\.1:1/"):
        open_storage(url)
    with pytest.raises(StorageError) as raised:
        PostgresStorage(url + "?password=hunter2-secret", connect_timeout=1.0)
    assert "hunter2-secret" not in str(raised.value)


def open_together(url: str, count: int, opened: list[PostgresStorage]) -> None:
    """Open ``count`` storages on ``url`` from threads released together, into
    ``opened`` (the caller closes them); the first failure is raised."""
    run_threads(count, lambda _: opened.append(PostgresStorage(url)), TIMEOUT)
    assert len(opened) == count


def test_the_tables_are_created_once_by_processes_starting_together(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    opened: list[PostgresStorage] = []
    try:
        open_together(postgres_url, 6, opened)
        create(opened[0], "acme")
        assert all(each.tenants() == ["acme"] for each in opened)
    finally:
        for each in opened:
            each.close()


def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, and the profile table's columns."""
    with connect_raw(url) as raw:
        tables = sorted(
            name
            for (name,) in raw.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        )
        contents = {
            table: sorted(raw.execute(f"SELECT t::text FROM {table} AS t").fetchall())
            for table in tables
        }
        contents["columns"] = raw.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull "
            "FROM pg_attribute WHERE attrelid = 'tenant_dna_profiles'::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ).fetchall()
    return contents


@pytest.mark.parametrize(
    ("version", "refusal"),
    [(3, r"version 3.*version 2"), (7, r"version 7.*version 2"), (0, "damaged")],
)
def test_a_database_of_a_newer_or_impossible_schema_is_refused_and_left_unchanged(
    postgres_storage: PostgresStorage, postgres_url: str, version: int, refusal: str
) -> None:
    create(postgres_storage, "acme")
    with connect_raw(postgres_url) as raw:
        raw.execute("UPDATE tenant_dna_schema SET version = %s", (version,))
    before = _contents(postgres_url)
    with pytest.raises(StorageError, match=refusal) as raised:
        PostgresStorage(postgres_url)
    assert postgres_storage.name in str(raised.value)
    assert _contents(postgres_url) == before
    assert before["tenant_dna_schema"] == [(f"({version})",)]


# Schema 1, as tenant-dna created it before profiles were packed: the test's
# own copy, for what was written then does not change with the code.
_SCHEMA_1 = (
    "CREATE TABLE tenant_dna_schema (version integer NOT NULL)",
    "INSERT INTO tenant_dna_schema (version) VALUES (1)",
    "CREATE TABLE tenant_dna_meta (key text PRIMARY KEY, value bigint NOT NULL)",
    "INSERT INTO tenant_dna_meta (key, value) VALUES ('erasure_floor', 0)",
    "CREATE TABLE tenant_dna_profiles ("
    'tenant_id text COLLATE "C" PRIMARY KEY, '
    "version bigint NOT NULL CHECK (version >= 1), "
    "incarnation bigint NOT NULL CHECK (incarnation >= 1), "
    "xid bigint NOT NULL, "
    "dna text NOT NULL)",
    "CREATE INDEX tenant_dna_profiles_xid ON tenant_dna_profiles (xid)",
    "CREATE TABLE tenant_dna_erasures (id bigserial PRIMARY KEY, "
    "xid bigint NOT NULL, incarnation bigint NOT NULL)",
    "CREATE INDEX tenant_dna_erasures_xid ON tenant_dna_erasures (xid)",
)


def _schema_1_database(url: str, rows: dict[str, tuple[int, int, str]]) -> None:
    """A fresh database of schema 1 holding ``rows``: version, incarnation, text."""
    reset(url)
    with connect_raw(url) as raw, raw.transaction():
        for statement in _SCHEMA_1:
            raw.execute(statement)
        for tenant_id, (version, incarnation, text) in rows.items():
            raw.execute(
                "INSERT INTO tenant_dna_profiles "
                "(tenant_id, version, incarnation, xid, dna) "
                "VALUES (%s, %s, %s, pg_current_xact_id()::text::bigint, %s)",
                (tenant_id, version, incarnation, text),
            )


def _as_json(dna: TenantDNA) -> str:
    # As schema 1 stored a profile: ASCII JSON of to_dict().
    return json.dumps(dna.to_dict(), separators=(",", ":"), allow_nan=False)


def _schema_1_records() -> dict[str, Record]:
    awkward = {
        "web\x00search": 0.25,
        "sql\x00query": -0.0,
        "\ud800 lone": 1.0,
        "😀 é €": 5e-324,
    }
    # "acme ": an id the store refuses now, which schema 1 may hold.
    return {
        ("acme " if n == 39 else f"tenant-{n:03d}"): Record(
            profile(
                n,
                avg_task_complexity=n / 40,
                tool_usage_frequency={f"tool-{n}": 0.5, **(awkward if n % 7 else {})},
                peak_hours=[n % 24, 23 - n % 12],
                # Not a surrogate pair: JSON would give back one character.
                common_intents=[f"intent-{n}", "\udfff\ud800"],
            ),
            n + 1,
            2**63 - 1 - n,
        )
        for n in range(40)
    }


def test_a_schema_1_database_is_read_exactly_and_upgraded_to_schema_2_on_opening(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.postgres, "_UPGRADE_BATCH", 7)  # several batches
    old = _schema_1_records()
    _schema_1_database(
        postgres_url,
        {t: (r.version, r.incarnation, _as_json(r.dna)) for t, r in old.items()},
    )
    opened = PostgresStorage(postgres_url)
    try:
        contents = _contents(postgres_url)
        assert contents["tenant_dna_schema"] == [("(2)",)]
        assert ("dna", "bytea", True) in contents["columns"]
        for tenant_id, record in old.items():
            assert repr(opened.load(tenant_id)) == repr(record)
        assert {t: repr(r) for t, r in opened.scan(batch=3)} == {
            t: repr(r) for t, r in old.items()
        }
        assert opened.check() == []
        assert opened.count() == len(old)
        # A commit: an update, a new tenant, an erasure.
        updated = profile(99, common_intents=["\ud800\udc00"])
        outcomes = opened.commit(
            [
                Change("tenant-001", updated, 2, old["tenant-001"].incarnation),
                Change("tenant-new", profile(1), 0, 0),
                Change("tenant-002", None, 3, old["tenant-002"].incarnation),
            ]
        )
        assert outcomes[0] == Committed(3, old["tenant-001"].incarnation)
        assert outcomes[2] == Committed(0, 0)
    finally:
        opened.close()
    again = PostgresStorage(postgres_url)
    try:
        assert _contents(postgres_url)["tenant_dna_schema"] == [("(2)",)]
        assert again.load("tenant-001") == Record(
            updated, 3, old["tenant-001"].incarnation
        )
        assert again.load("tenant-002") is None
        for tenant_id in set(old) - {"tenant-001", "tenant-002"}:
            assert repr(again.load(tenant_id)) == repr(old[tenant_id])
        assert again.count() == len(old)
        assert again.check() == []
    finally:
        again.close()


def test_a_schema_1_database_is_upgraded_once_by_processes_starting_together(
    postgres_url: str,
) -> None:
    old = _schema_1_records()
    _schema_1_database(
        postgres_url,
        {t: (r.version, r.incarnation, _as_json(r.dna)) for t, r in old.items()},
    )
    opened: list[PostgresStorage] = []
    try:
        open_together(postgres_url, 4, opened)
        for each in opened:
            assert {t: repr(r) for t, r in each.scan()} == {
                t: repr(r) for t, r in old.items()
            }
    finally:
        for each in opened:
            each.close()


def test_a_schema_1_row_that_does_not_read_stops_the_upgrade_naming_the_tenant(
    postgres_url: str,
) -> None:
    rows = {
        "acme": (1, 7, _as_json(profile(1))),
        "globex": (1, 8, '{"peak_hours": [99]}'),
    }
    _schema_1_database(postgres_url, rows)
    before = _contents(postgres_url)
    with pytest.raises(StorageError, match=r"'globex'.*peak_hours.*schema 1"):
        PostgresStorage(postgres_url)
    assert _contents(postgres_url) == before
    assert ("dna", "text", True) in before["columns"]


def test_a_table_named_like_ours_that_is_not_ours_is_refused_and_left_alone(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    with connect_raw(postgres_url) as raw:
        raw.execute("CREATE TABLE tenant_dna_profiles (id int)")
        raw.execute("INSERT INTO tenant_dna_profiles VALUES (42)")
    with pytest.raises(StorageError, match=r"tenant_dna_profiles.*did not create"):
        PostgresStorage(postgres_url)
    with connect_raw(postgres_url) as raw:
        assert raw.execute("SELECT * FROM tenant_dna_profiles").fetchall() == [(42,)]
        assert raw.execute("SELECT to_regclass('tenant_dna_schema')").fetchone() == (
            None,
        )


def test_other_tables_of_the_database_are_left_alone(postgres_url: str) -> None:
    reset(postgres_url)
    with connect_raw(postgres_url) as raw:
        raw.execute("CREATE TABLE invoices (id int)")
    opened = PostgresStorage(postgres_url)
    try:
        create(opened, "acme")
        assert opened.check() == []
    finally:
        opened.close()


_BODY = storage._packed._BODY.size  # where the tools' frequencies begin


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda value: value[:10], "too short"),
        # The first peak hour (after two frequencies) made 99.
        (lambda value: value[: _BODY + 16] + b"\x63" + value[_BODY + 17 :], "peak"),
        (lambda value: value.replace(b"cd", b"ab"), "round-trip"),  # a tool twice
        (lambda value: value.replace(b"ab", b"\xff\xfe"), "utf-8"),
    ],
)
def test_a_damaged_stored_profile_is_reported_naming_the_tenant(
    postgres_storage: PostgresStorage,
    postgres_url: str,
    damage: Callable[[bytes], bytes],
    named: str,
) -> None:
    tools = {"ab": 0.5, "cd": 0.25}
    create(
        postgres_storage, "acme", profile(tool_usage_frequency=tools, peak_hours=[9])
    )
    globex = create(postgres_storage, "globex", profile(tool_usage_frequency=tools))
    with connect_raw(postgres_url) as raw:
        ((value,),) = raw.execute(
            "SELECT dna FROM tenant_dna_profiles WHERE tenant_id = 'acme'"
        ).fetchall()
        assert type(value) is bytes
        raw.execute(
            "UPDATE tenant_dna_profiles SET dna = %s WHERE tenant_id = 'acme'",
            (damage(value),),
        )
    with pytest.raises(StorageError, match=rf"'acme'.*{named}") as raised:
        postgres_storage.load("acme")
    assert postgres_storage.name in str(raised.value)
    with pytest.raises(StorageError, match="'acme'"):
        list(postgres_storage.scan())
    assert postgres_storage.load("globex") == Record(
        profile(tool_usage_frequency=tools), 1, globex.incarnation
    )
    (problem,) = postgres_storage.check()
    assert "'acme'" in problem


def test_tenant_ids_postgresql_cannot_hold_are_refused_naming_them(
    backend: PostgresStorage,
) -> None:
    for tenant_id in ("nul\x00inside", "lone\udc80surrogate"):
        assert backend.load(tenant_id) is None
        with pytest.raises(StorageError, match="cannot be stored"):
            backend.commit([Change(tenant_id, profile(), 0, 0)])
    assert backend.count() == 0


# -- erasure -------------------------------------------------------------------


def test_erasure_leaves_no_row_and_the_log_keeps_no_tenant_id(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    def intents(name: str) -> list[str]:
        return [f"intent-of-{name}", f"ïntent-of-{name}-€"]

    secret = "tenant-to-forget-wqzx"
    old = create(postgres_storage, secret, profile(common_intents=intents(secret)))
    create(postgres_storage, "kept", profile(common_intents=intents("kept")))
    erase(postgres_storage, secret)
    with connect_raw(postgres_url) as raw:
        tables = [
            name
            for (name,) in raw.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        ]
        assert "tenant_dna_profiles" in tables

        # A row as text shows its bytea as hex: search for both forms.
        def found(name: str) -> set[str]:
            return {
                form
                for table in tables
                for (text,) in raw.execute(f"SELECT t::text FROM {table} AS t")
                for secret in (name, *intents(name))
                for form in (secret, secret.encode().hex())
                if form in text
            }

        assert found(secret) == set()
        # The search does find what is still stored.
        assert found("kept") >= {"kept", *(i.encode().hex() for i in intents("kept"))}
        assert raw.execute(
            "SELECT incarnation FROM tenant_dna_erasures"
        ).fetchall() == [(old.incarnation,)]


# -- NOTIFY ----------------------------------------------------------------------


def test_a_commit_wakes_wait_for_commit_on_another_connection(
    backend: PostgresStorage,
) -> None:
    listener = backend.clone()
    try:
        assert listener.wait_for_commit(0.0)  # first call: listening from now on
        started = time.monotonic()
        assert not listener.wait_for_commit(0.2)
        assert time.monotonic() - started >= 0.19
        woke: list[float] = []
        waiter = threading.Thread(
            target=lambda: (
                woke.append(time.monotonic())
                if listener.wait_for_commit(TIMEOUT)
                else None
            )
        )
        waiter.start()
        time.sleep(0.1)  # the waiter is in wait_for_commit
        create(backend, "acme")
        committed = time.monotonic()
        waiter.join(timeout=TIMEOUT)
        assert woke, "no notification within the timeout"
        assert woke[0] - committed < 1.0
        # Several commits before the next call: one wake-up, then quiet.
        for step in range(1, 4):
            write(backend, "acme", profile(step))
        time.sleep(0.2)
        assert listener.wait_for_commit(TIMEOUT)
        assert not listener.wait_for_commit(0.1)
    finally:
        listener.close()


def test_a_commit_that_writes_nothing_announces_nothing(
    backend: PostgresStorage,
) -> None:
    listener = backend.clone()
    try:
        assert listener.wait_for_commit(0.0)
        assert backend.commit([Change("acme", profile(), 3, 3)]) == [Conflict(None)]
        erase(backend, "absent")
        assert not listener.wait_for_commit(0.3)
    finally:
        listener.close()


def _notifications(url: str) -> psycopg.Connection[Any]:
    raw = connect_raw(url)
    raw.execute(f"LISTEN {storage.postgres.CHANNEL}")
    return raw


def _next_payload(raw: psycopg.Connection[Any]) -> str:
    (notify,) = list(raw.notifies(timeout=TIMEOUT, stop_after=1))
    return notify.payload


def test_the_payload_names_tenants_versions_and_erased_incarnations(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    with _notifications(postgres_url) as raw:
        first = create(postgres_storage, "acme")
        assert json.loads(_next_payload(raw)) == {
            "updated": [["acme", 1, first.incarnation]],
            "erased": [],
        }
        erase(postgres_storage, "acme")
        assert json.loads(_next_payload(raw)) == {
            "updated": [],
            "erased": [first.incarnation],
        }
        names = [f"tenant-with-a-rather-long-name-{n:04d}" for n in range(300)]
        postgres_storage.commit([Change(name, profile(), 0, 0) for name in names])
        assert _next_payload(raw) == storage.postgres.STALE


def test_wait_for_changes_names_what_the_commits_heard_changed(
    backend: PostgresStorage,
) -> None:
    listener = backend.clone()
    try:
        # First call: listening from now on, anything may have changed before.
        assert listener.wait_for_changes(0.0) == Announced([], [], complete=False)
        assert listener.wait_for_changes(0.1) is None
        acme = create(backend, "acme")
        globex = create(backend, "globex")
        write(backend, "acme", profile(2))
        erase(backend, "globex")
        deadline = time.monotonic() + TIMEOUT
        updated: list[tuple[str, int, int]] = []
        erased: list[int] = []
        while len(updated) + len(erased) < 4:
            assert time.monotonic() < deadline, (updated, erased)
            heard = listener.wait_for_changes(TIMEOUT)
            assert heard is not None
            assert heard.complete
            updated += heard.updated
            erased += heard.erased
        assert updated == [
            ("acme", 1, acme.incarnation),
            ("globex", 1, globex.incarnation),
            ("acme", 2, acme.incarnation),
        ]
        assert erased == [globex.incarnation]
        # Too many to name: the listener is told to ask changes_since.
        names = [f"tenant-with-a-rather-long-name-{n:04d}" for n in range(300)]
        backend.commit([Change(name, profile(), 0, 0) for name in names])
        heard = listener.wait_for_changes(TIMEOUT)
        assert heard is not None
        assert not heard.complete
    finally:
        listener.close()


def test_another_process_commit_wakes_the_listener(
    backend: PostgresStorage, postgres_url: str
) -> None:
    backend.commit([Change(f"tenant-{n}", profile(), 0, 0) for n in range(2)])
    listener = backend.clone()
    try:
        assert listener.wait_for_commit(0.0)
        cursor = listener.cursor()
        result = subprocess.run(
            child("increment", postgres_url, "2", "1", "1", "0"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert listener.wait_for_commit(TIMEOUT)
        changes = listener.changes_since(cursor)
        assert [(t, v) for t, v, _ in changes.updated] == [("tenant-0", 2)]
    finally:
        listener.close()


# -- failures --------------------------------------------------------------------


def test_a_commit_whose_connection_is_killed_fails_whole_and_the_next_succeeds(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    acme = create(postgres_storage, "acme", profile(1))
    results: list[object] = []
    with connect_raw(postgres_url) as holder:
        holder.execute("BEGIN")
        holder.execute(
            "SELECT * FROM tenant_dna_profiles WHERE tenant_id = 'acme' FOR UPDATE"
        )

        def commit() -> None:
            try:
                results.append(
                    postgres_storage.commit(
                        [
                            Change("globex", profile(2), 0, 0),
                            Change("acme", profile(2), 1, acme.incarnation),
                        ]
                    )
                )
            except StorageError as error:
                results.append(error)

        committer = threading.Thread(target=commit)
        committer.start()
        deadline = time.monotonic() + TIMEOUT
        waiting: list[tuple[int]] = []
        while not waiting:
            assert time.monotonic() < deadline, "the commit never waited for the lock"
            waiting = holder.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchall()
            time.sleep(0.01)
        holder.execute("SELECT pg_terminate_backend(%s)", waiting[0])
        committer.join(timeout=TIMEOUT)
        holder.execute("ROLLBACK")
    (error,) = results
    assert isinstance(error, StorageError)
    assert "nothing was written" in str(error)
    assert postgres_storage.name in str(error)
    assert postgres_storage.load("globex") is None
    assert write(postgres_storage, "acme", profile(3)) == Committed(2, acme.incarnation)


def test_a_rebase_runs_on_the_row_as_the_commit_holding_its_lock_left_it(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    acme = create(
        postgres_storage, "acme", profile(1, tool_usage_frequency={"a": 0.25})
    )
    newer = storage._packed.encode("acme", profile(2, tool_usage_frequency={"a": 0.5}))
    results: list[object] = []

    def more(dna: TenantDNA) -> TenantDNA:
        dna.tool_usage_frequency["a"] += 0.125
        return dna

    with connect_raw(postgres_url) as holder:
        # Another process's commit, between its write and its COMMIT.
        holder.execute("BEGIN")
        holder.execute(
            "UPDATE tenant_dna_profiles SET version = 2, dna = %s "
            "WHERE tenant_id = 'acme'",
            (newer,),
        )
        stale = profile(3, tool_usage_frequency={"a": 0.375})
        committer = threading.Thread(
            target=lambda: results.append(
                postgres_storage.commit(
                    [Change("acme", stale, 1, acme.incarnation, False, more)]
                )
            )
        )
        committer.start()
        wait_for_lock_waiter(postgres_url)
        holder.execute("COMMIT")
        committer.join(timeout=TIMEOUT)
    expected = profile(2, tool_usage_frequency={"a": 0.625})
    assert results == [[Committed(3, acme.incarnation, expected)]]
    assert postgres_storage.load("acme") == Record(expected, 3, acme.incarnation)


def test_a_commit_whose_reply_was_lost_is_settled_by_the_server(
    postgres_storage: PostgresStorage, postgres_url: str
) -> None:
    outcomes: list[Any] = [Committed(1, 5)]
    with connect_raw(postgres_url) as raw:
        with raw.transaction():
            raw.execute("CREATE TEMP TABLE t (x int)")
            ((kept,),) = raw.execute("SELECT pg_current_xact_id()::text").fetchall()
        raw.execute("BEGIN")
        raw.execute("CREATE TEMP TABLE u (x int)")
        ((dropped,),) = raw.execute("SELECT pg_current_xact_id()::text").fetchall()
        raw.execute("ROLLBACK")
    lost = storage.postgres._CommitLost(kept, outcomes, OSError("reply lost"))
    assert postgres_storage._settle("the commit", lost) == outcomes
    lost = storage.postgres._CommitLost(dropped, outcomes, OSError("reply lost"))
    with pytest.raises(StorageError, match="rolled it back"):
        postgres_storage._settle("the commit", lost)


def test_a_server_restart_loses_no_commit_and_the_same_objects_work_again(
    postgres_url: str,
) -> None:
    reset(postgres_url)
    opened = PostgresStorage(postgres_url, connect_timeout=1.0, pool_size=6)
    listener = opened.clone()
    try:
        # Six idle connections die with the server; none may be handed out
        # (psycopg_pool's back-off made its first call after a restart fail).
        shared = opened._open()
        borrowed = [opened._borrow(shared) for _ in range(6)]
        for connection in borrowed:
            opened._give_back(shared, connection)
        assert len(shared.idle) == 6
        assert listener.wait_for_commit(0.0)
        acked = {}
        for n in range(20):
            (outcome,) = opened.commit([Change(f"tenant-{n}", profile(n), 0, 0)])
            assert isinstance(outcome, Committed)
            acked[f"tenant-{n}"] = outcome
        pg_ctl("stop", "-m", "fast")
        try:
            with pytest.raises(StorageError) as raised:
                opened.commit([Change("while-down", profile(), 0, 0)])
            assert opened.name in str(raised.value)
            assert "Connection refused" in str(raised.value)
            assert not listener.wait_for_commit(0.2)
        finally:
            pg_ctl("start")
        started = time.monotonic()
        opened.commit([Change("after", profile(), 0, 0)])  # the first call works
        assert time.monotonic() - started < 1.0
        assert listener.wait_for_commit(TIMEOUT)  # reconnected: treat all as stale
        for tenant_id, outcome in acked.items():
            record = opened.load(tenant_id)
            assert record is not None
            assert (record.version, record.incarnation) == (1, outcome.incarnation)
        assert opened.load("while-down") is None
        create(opened, "later")
        assert listener.wait_for_commit(TIMEOUT)
    finally:
        listener.close()
        opened.close()


# -- many processes ----------------------------------------------------------------


def test_processes_and_threads_updating_shared_tenants_lose_nothing(
    backend: PostgresStorage, postgres_url: str
) -> None:
    tenants, processes, threads, times = 10, 4, 2, 40
    created = backend.commit(
        [
            Change(
                f"tenant-{n}", TenantDNA(avg_tokens_per_task=0, last_updated=1.0), 0, 0
            )
            for n in range(tenants)
        ]
    )
    listener = backend.clone()
    children: list[subprocess.Popen[str]] = []
    try:
        assert listener.wait_for_commit(0.0)
        cursor = listener.cursor()
        children = [
            subprocess.Popen(
                child(
                    "increment",
                    postgres_url,
                    str(tenants),
                    str(times),
                    str(threads),
                    str(p * threads),
                ),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in range(processes)
        ]
        reports = []
        for process in children:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, stderr
            reports.append(json.loads(stdout))
        assert listener.wait_for_commit(TIMEOUT)
        changes = listener.changes_since(cursor)
    finally:
        listener.close()
        for process in children:
            process.kill()
            process.wait(timeout=TIMEOUT)
    assert [report["errors"] for report in reports] == [[]] * processes
    total = processes * threads * times
    records = {
        tenant_id: record for tenant_id, record in backend.scan() if record is not None
    }
    assert sum(r.dna.avg_tokens_per_task for r in records.values()) == total
    for n, outcome in enumerate(created):
        record = records[f"tenant-{n}"]
        assert isinstance(outcome, Committed)
        assert record.incarnation == outcome.incarnation
        assert record.version == 1 + record.dna.avg_tokens_per_task
    assert changes.complete
    assert sorted(changes.updated) == sorted(
        (tenant_id, r.version, r.incarnation) for tenant_id, r in records.items()
    )


# -- the interface's default ----------------------------------------------------------


def test_a_backend_that_hears_no_commits_answers_false_at_once() -> None:
    started = time.monotonic()
    assert MemoryStorage().wait_for_commit(10.0) is False
    assert time.monotonic() - started < 1.0


def test_wait_for_commit_refuses_a_negative_timeout(backend: PostgresStorage) -> None:
    with pytest.raises(ValueError, match="timeout"):
        backend.wait_for_commit(-1.0)
    backend.close()
    with pytest.raises(StorageError, match="closed"):
        backend.wait_for_commit(0.0)
