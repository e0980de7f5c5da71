"""The installed ``tenant-dna`` command, run as a subprocess on real SQLite files."""

from __future__ import annotations

import json
import os
import pty
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dna import TenantDNA
from storage import Change, Record, SQLiteStorage

COMMAND = Path(sys.executable).parent / "tenant-dna"
TIMEOUT = 60
DAY = 86_400.0
SUBCOMMANDS = ["stats", "list", "show", "export", "import", "erase", "purge", "check"]


def run(
    *args: str | Path, url: Path | str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command with ``args`` (and ``--url url``), environment without a URL."""
    environment = {k: v for k, v in os.environ.items() if k != "TENANT_DNA_URL"}
    command = [str(COMMAND), *map(str, args)]
    if url is not None:
        command += ["--url", str(url)]
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        check=False,
    )


def records(path: Path) -> list[tuple[str, Record]]:
    storage = SQLiteStorage(path)
    try:
        return list(storage.scan())
    finally:
        storage.close()


def fill(path: Path, profiles: dict[str, TenantDNA], *, writes: int = 1) -> None:
    """Store each profile, written ``writes`` times (version ``writes``)."""
    storage = SQLiteStorage(path)
    try:
        for _ in range(writes):
            storage.commit(
                [
                    Change(tenant, profile, 0, 0, force=True)
                    for tenant, profile in profiles.items()
                ]
            )
    finally:
        storage.close()


def profile(number: int, *, last_updated: float | None = None) -> TenantDNA:
    return TenantDNA(
        avg_task_complexity=number % 100 / 100,
        avg_tokens_per_task=1000 + number,
        tool_usage_frequency={f"tool-{number}": 0.5, "web_search": 0.25},
        peak_hours=[number % 24],
        common_intents=[f"intent-{number}", "refund"],
        last_updated=1_700_000_000.0 + number if last_updated is None else last_updated,
    )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Twelve tenants, at versions 1 to 3, one with a non-ASCII id."""
    path = tmp_path / "profiles.db"
    tenants = {f"tenant-{n:02d}": profile(n) for n in range(10)}
    fill(path, tenants)
    fill(path, {"café-δ": profile(10)}, writes=2)
    fill(path, {"tenant-03": profile(33)}, writes=2)
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("tenant-dna")


# -- usage ---------------------------------------------------------------------


@pytest.mark.parametrize("subcommand", ["", *SUBCOMMANDS])
def test_help_of_the_command_and_every_subcommand_exits_0(subcommand: str) -> None:
    result = run(*([subcommand] if subcommand else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: tenant-dna" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["show"],
        ["erase"],
        ["purge"],
        ["purge", "--idle-days", "soon"],
        ["purge", "--idle-days", "-3"],
        ["purge", "--idle-days", "nan"],
        ["purge", "--idle-days", "1e305"],  # seconds past any float
        ["stats", "--bogus"],
        ["show", " padded "],
        ["show", "tab\there"],
    ],
)
def test_bad_usage_exits_2_with_one_line(database: Path, args: list[str]) -> None:
    result = run(*args, url=database)
    assert result.returncode == 2, result
    assert_one_line_error(result)
    assert result.stdout == ""


@pytest.mark.parametrize("url", [None, "ftp://host/x.db", "memory://", "sqlite://x"])
def test_a_missing_or_unusable_url_is_bad_usage(url: str | None) -> None:
    result = run("stats", url=url)
    assert result.returncode == 2
    assert_one_line_error(result)


def test_an_sqlite_url_with_a_query_is_bad_usage_even_for_a_file_that_is_there(
    database: Path,
) -> None:
    # It was looked for as a file named with the query: "no such file", exit 1.
    for args in (["stats"], ["check", "--json"]):
        result = run(*args, url=f"sqlite:///{database}?mode=ro")
        assert result.returncode == 2, result
        assert_one_line_error(result)
        assert "no query" in result.stderr


def test_the_url_may_come_from_the_environment_or_an_sqlite_url(
    database: Path,
) -> None:
    environment = dict(os.environ, TENANT_DNA_URL=str(database))
    by_environment = subprocess.run(
        [str(COMMAND), "--json", "stats"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        check=False,
    )
    assert by_environment.returncode == 0, by_environment.stderr
    assert json.loads(by_environment.stdout)["tenants"] == 11
    by_url = run("stats", "--json", url=f"sqlite:///{database}")
    assert json.loads(by_url.stdout)["tenants"] == 11


def test_a_missing_file_is_reported_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (["stats"], ["erase", "acme"], ["check"]):
        result = run(*args, url=missing)
        assert result.returncode == 1
        assert_one_line_error(result)
        assert "no such file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_dangling_link_or_an_empty_file_is_reported_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "gone.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    for url, said in ((link, "no such file"), (empty, "an empty file")):
        for args in (["stats"], ["check"], ["list"]):
            result = run(*args, url=url)
            assert result.returncode == 1
            assert_one_line_error(result)
            assert said in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.db", "link.db"]
    assert empty.stat().st_size == 0


# -- reading -------------------------------------------------------------------


def test_stats_list_and_show_print_tables(database: Path) -> None:
    stats = run("stats", url=database)
    assert stats.returncode == 0
    assert "tenants" in stats.stdout
    assert "11" in stats.stdout
    listed = run("list", url=database)
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["TENANT", "VERSION"]
    assert [line.split()[0] for line in lines[1:]] == sorted(
        [f"tenant-{n:02d}" for n in range(10)] + ["café-δ"]
    )
    shown = run("show", "tenant-03", url=database)
    assert shown.returncode == 0
    assert "intent-33" in shown.stdout
    assert "tool-33" in shown.stdout
    assert shown.stderr == ""


def test_json_outputs_parse(database: Path, tmp_path: Path) -> None:
    stats = json.loads(run("--json", "stats", url=database).stdout)
    assert stats["tenants"] == 11
    assert stats["bytes"]["file"] > 0
    listed = json.loads(run("list", "--json", url=database).stdout)
    assert {row["tenant_id"]: row["version"] for row in listed}["tenant-03"] == 3
    shown = json.loads(run("show", "café-δ", "--json", url=database).stdout)
    assert shown["version"] == 2
    assert TenantDNA.from_dict(shown["dna"]) == profile(10)
    checked = json.loads(run("check", "--json", url=database).stdout)
    assert checked["ok"] is True
    assert checked["problems"] == []
    purged = json.loads(
        run("purge", "--idle-days", "1", "--dry-run", "--json", url=database).stdout
    )
    assert purged["dry_run"] is True
    assert len(purged["idle"]) == 11
    exported = tmp_path / "export.jsonl"
    run("export", "-o", exported, url=database)
    imported = json.loads(
        run("import", exported, "--json", url=tmp_path / "copy.db").stdout
    )
    assert imported["imported"] == 11
    assert imported["bad_lines"] == []
    erased = json.loads(
        run("erase", "tenant-01", "nobody", "--json", url=database).stdout
    )
    assert erased["erased"] == ["tenant-01"]
    assert erased["not_found"] == ["nobody"]


def test_show_of_an_unknown_tenant_exits_1_naming_it(database: Path) -> None:
    result = run("show", "nobody-here", url=database)
    assert result.returncode == 1
    assert "'nobody-here'" in result.stderr
    assert_one_line_error(result)
    assert result.stdout == ""


# -- export and import -----------------------------------------------------------


def test_export_then_import_gives_the_same_records(
    database: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "export.jsonl"
    result = run("export", "-o", exported, url=database)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert exported.stat().st_mode & 0o077 == 0  # personal data: owner only
    to_stdout = run("export", url=database)
    assert to_stdout.stdout == exported.read_text(encoding="utf-8")
    copy = tmp_path / "copy.db"
    imported = run("import", exported, url=copy)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == ""
    original = records(database)
    assert len(original) == 11
    assert records(copy) == original  # profiles, versions and incarnations


def test_import_from_stdin_replaces_stored_tenants(
    database: Path, tmp_path: Path
) -> None:
    lines = run("export", "tenant-05", url=database).stdout
    target = tmp_path / "target.db"
    fill(target, {"tenant-05": profile(99), "other": profile(1)}, writes=4)
    result = run("import", "-", url=target, stdin=lines)
    assert result.returncode == 0, result.stderr
    assert "1 replaced" in result.stderr
    stored = dict(records(target))
    assert stored["tenant-05"] == dict(records(database))["tenant-05"]
    assert stored["other"].version == 4


def test_export_of_an_unknown_tenant_exits_1_and_writes_nothing(
    database: Path, tmp_path: Path
) -> None:
    output = tmp_path / "access-request.jsonl"
    result = run("export", "tenant-01", "nobody", "-o", output, url=database)
    assert result.returncode == 1
    assert "'nobody'" in result.stderr
    assert not output.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["profiles.db"]


def test_export_onto_the_database_itself_is_refused_and_changes_nothing(
    database: Path, tmp_path: Path
) -> None:
    before = records(database)
    link = tmp_path / "link.jsonl"
    link.symlink_to(database)
    for output in (database, link, Path(f"{database}-wal")):
        result = run("export", "-o", output, url=database)
        assert result.returncode == 1
        assert_one_line_error(result)
        assert "the database being exported" in result.stderr
    assert records(database) == before
    assert link.is_symlink()


def test_export_writes_through_a_link_and_into_a_pipe(
    database: Path, tmp_path: Path
) -> None:
    expected = run("export", url=database).stdout
    target = tmp_path / "target.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert run("export", "-o", link, url=database).returncode == 0
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == expected
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    try:
        result = run("export", "-o", fifo, url=database)
        out, _ = reader.communicate(timeout=TIMEOUT)
    finally:
        reader.kill()
        reader.wait(timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert out == expected
    assert fifo.is_fifo()


def test_export_to_a_folder_or_a_full_disk_fails_with_one_line(
    database: Path, tmp_path: Path
) -> None:
    folder = run("export", "-o", tmp_path, url=database)
    assert folder.returncode == 1
    assert_one_line_error(folder)
    if not os.path.exists("/dev/full"):
        return  # no device that is always full here (not Linux)
    full = subprocess.run(
        f"{COMMAND} --url {database} export > /dev/full",
        shell=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert full.returncode == 1
    assert_one_line_error(full)
    assert "No space left" in full.stderr


def test_import_with_bad_lines_names_them_and_imports_nothing(
    database: Path, tmp_path: Path
) -> None:
    good = run("export", url=database).stdout.splitlines()
    lines = [
        good[0],
        "{not json",
        json.dumps({"tenant_id": "x", "version": 1, "dna": {"peak_hours": [99]}}),
        good[1],
        json.dumps({"tenant_id": "y", "dna": {}}),
        good[0],  # the same tenant again
        "",
        json.dumps({"tenant_id": "z", "version": 2, "dna": {}, "incarnation": 0}),
        json.dumps(["a", "list"]),
        json.dumps({"tenant_id": "bad\u202eid", "version": 1, "dna": {}}),
        json.dumps({"tenant_id": "v", "version": 2**63, "dna": {}}),
    ]
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = tmp_path / "target.db"
    fill(target, {"kept": profile(7)})
    before = records(target)
    result = run("import", source, url=target)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for number in (2, 3, 5, 6, 8, 9, 10, 11):
        assert f"bad.jsonl line {number}: " in result.stderr
    for number in (1, 4, 7):
        assert f"line {number}:" not in result.stderr
    assert "peak_hours" in result.stderr
    assert "version: missing" in result.stderr
    assert "also on line 1" in result.stderr
    assert "nothing imported" in result.stderr
    assert records(target) == before
    fresh = tmp_path / "fresh.db"
    assert run("import", source, url=fresh).returncode == 1
    assert not fresh.exists()  # nothing to write: no file made either

    skipping = run("import", source, "--skip-bad", url=target)
    assert skipping.returncode == 1
    assert sorted(dict(records(target))) == sorted(
        ["kept", *(json.loads(line)["tenant_id"] for line in good[:2])]
    )


def test_import_without_incarnations_draws_them(tmp_path: Path) -> None:
    source = tmp_path / "other-tool.jsonl"
    source.write_text(
        json.dumps({"tenant_id": "acme", "version": 7, "dna": profile(1).to_dict()})
        + "\n",
        encoding="utf-8",
    )
    target = tmp_path / "target.db"
    assert run("import", source, url=target).returncode == 0
    [(tenant, record)] = records(target)
    assert (tenant, record.dna, record.version) == ("acme", profile(1), 7)
    assert record.incarnation >= 1


# -- erasure -----------------------------------------------------------------------


def _files_holding(folder: Path, needles: list[bytes]) -> list[tuple[str, bytes]]:
    return [
        (path.name, needle)
        for path in sorted(folder.iterdir())
        if path.is_file()
        for needle in needles
        if needle in path.read_bytes()
    ]


def test_erase_leaves_no_bytes_of_the_tenant(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    path = folder / "profiles.db"
    secret = TenantDNA(
        tool_usage_frequency={"tool-qz7w-ledger": 0.9, "tool-kv3p-payroll": 0.1},
        common_intents=["intent-xj4n-lawsuit", "intent-rm8c-merger"],
        last_updated=1_700_000_000.0,
    )
    fill(path, {f"tenant-{n:03d}": profile(n) for n in range(200)})
    fill(path, {"tenant-hq5y-secret": secret}, writes=3)
    needles = [
        b"tenant-hq5y-secret",
        b"tool-qz7w-ledger",
        b"tool-kv3p-payroll",
        b"intent-xj4n-lawsuit",
        b"intent-rm8c-merger",
    ]
    assert _files_holding(folder, needles)  # the scan sees them before
    result = run("erase", "tenant-hq5y-secret", url=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tenant-hq5y-secret"]
    assert _files_holding(folder, needles) == []
    assert len(records(path)) == 200
    assert run("show", "tenant-hq5y-secret", url=path).returncode == 1


def test_erase_says_so_when_a_reader_keeps_the_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {f"tenant-{n:03d}": profile(n) for n in range(20)})
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        # A long read transaction: the WAL cannot be emptied under it.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
        result = run("erase", "tenant-007", url=path)
    finally:
        reader.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "erasure is committed" in result.stderr
    assert "bytes" in result.stderr
    assert result.stdout.split() == ["tenant-007"]
    assert "tenant-007" not in dict(records(path))


def test_erase_of_an_unknown_tenant_exits_1_naming_it(database: Path) -> None:
    result = run("erase", "tenant-02", "ghost-tenant", url=database)
    assert result.returncode == 1
    assert "'ghost-tenant'" in result.stderr
    assert "Traceback" not in result.stderr
    stored = dict(records(database))
    assert "tenant-02" not in stored  # the known one is erased all the same
    assert len(stored) == 10


def _rename_stored(path: Path, tenant_id: str, new_id: str) -> None:
    """Store ``tenant_id``'s record as ``new_id``, as a file written before
    the store refused such ids would hold it (storage refuses to write it)."""
    from storage.sqlite import _table

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            f"INSERT INTO {_table(new_id)} SELECT ?, version, incarnation, "
            f"sequence, dna FROM {_table(tenant_id)} WHERE tenant_id = ?",
            (new_id, tenant_id),
        )
        db.execute(f"DELETE FROM {_table(tenant_id)} WHERE tenant_id = ?", (tenant_id,))
        db.execute("COMMIT")
    finally:
        db.close()


def test_a_stored_id_the_store_refuses_is_reported_and_can_be_erased(
    database: Path,
) -> None:
    # Such a tenant could be listed but not erased ("tenant-dna erase 'acme '"
    # was bad usage, and so was the store's delete): a GDPR request unmet.
    _rename_stored(database, "tenant-04", "acme ")
    _rename_stored(database, "tenant-05", "b\u202e")
    assert {"acme ", "b\u202e"} <= {tenant for tenant, _ in records(database)}
    checked = run("check", url=database)
    assert checked.returncode == 1
    assert "'acme '" in checked.stdout
    assert "'b\\u202e'" in checked.stdout
    shown = run("show", "--json", "acme ", url=database)
    assert json.loads(shown.stdout)["tenant_id"] == "acme "
    erased = run("erase", "acme ", "b\u202e", url=database)
    assert erased.returncode == 0, erased.stderr
    assert run("check", url=database).returncode == 0
    assert len(records(database)) == 9
    # An id the store refuses and nobody stored is still bad usage.
    assert run("erase", "ghost ", url=database).returncode == 2


def test_purge_erases_exactly_the_idle_profiles(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    now = time.time()
    ages = {"ancient": 400, "old": 31, "recent": 29, "today": 0, "yesterday": 1}
    fill(
        path,
        {
            tenant: profile(days, last_updated=now - days * DAY)
            for tenant, days in ages.items()
        },
    )
    before = records(path)
    dry = run("purge", "--idle-days", "30", "--dry-run", url=path)
    assert dry.returncode == 0, dry.stderr
    assert "would erase" in dry.stdout
    assert sorted(line.split()[0] for line in dry.stdout.splitlines()[1:]) == [
        "ancient",
        "old",
    ]
    assert records(path) == before
    result = run("purge", "--idle-days", "30", "--json", url=path)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["erased"]) == ["ancient", "old"]
    assert [tenant for tenant, _ in records(path)] == ["recent", "today", "yesterday"]
    again = run("purge", "--idle-days", "30", url=path)
    assert again.returncode == 0
    assert again.stdout == ""


# -- damaged and foreign files -------------------------------------------------------


def test_check_passes_a_sound_file(database: Path) -> None:
    result = run("check", url=database)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no problems" in result.stderr


def test_check_reports_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {f"tenant-{n:04d}": profile(n) for n in range(2000)})
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle + 100 : middle + 3000] = b"\xa5" * 2900
    path.write_bytes(bytes(data))
    result = run("check", url=path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()  # the problems, listed
    assert "problem(s) found" in result.stderr


def test_check_json_answers_for_a_file_damaged_past_opening(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"acme": profile(1)})
    data = bytearray(path.read_bytes())
    data[100:3100] = b"\xa5" * 3000  # the first page: header and schema
    path.write_bytes(bytes(data))
    result = run("--json", "check", url=path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["storage"] == str(path)
    assert len(report["problems"]) == 1
    assert str(path) in report["problems"][0]


def _text_file(path: Path) -> None:
    path.write_text("these are my notes, not a database\n")


def _other_sqlite(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    connection.commit()
    connection.close()


@pytest.fixture(params=[_text_file, _other_sqlite], ids=["text", "other-sqlite"])
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "foreign.db"
    request.param(path)
    return path


@pytest.mark.parametrize(
    "args", [["stats"], ["check"], ["erase", "acme"], ["export"]], ids=str
)
def test_a_foreign_file_is_refused_untouched(foreign: Path, args: list[str]) -> None:
    before = foreign.read_bytes()
    folder = sorted(path.name for path in foreign.parent.iterdir())
    result = run(*args, url=foreign)
    assert result.returncode == 1
    assert_one_line_error(result)
    assert str(foreign) in result.stderr
    assert result.stdout == ""
    assert foreign.read_bytes() == before
    assert sorted(path.name for path in foreign.parent.iterdir()) == folder


def test_import_into_a_foreign_file_is_refused_untouched(
    foreign: Path, database: Path
) -> None:
    lines = run("export", url=database).stdout
    before = foreign.read_bytes()
    result = run("import", "-", url=foreign, stdin=lines)
    assert result.returncode == 1
    assert_one_line_error(result)
    assert foreign.read_bytes() == before


# -- progress ------------------------------------------------------------------------


def test_progress_shows_only_on_a_terminal(database: Path, tmp_path: Path) -> None:
    piped = run("export", "-o", tmp_path / "piped.jsonl", url=database)
    assert "\r" not in piped.stderr
    assert len(piped.stderr.splitlines()) == 1
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [str(COMMAND), "export", "-o", tmp_path / "tty.jsonl", "--url", database],
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            timeout=TIMEOUT,
            check=False,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert b"\rexporting [" in shown


# -- PostgreSQL, when a server is available (.ci/postgres.sh) -------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    server = os.environ.get("TENANT_DNA_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("TENANT_DNA_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    import psycopg

    name = f"tenant_dna_cli_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_postgres_export_import_erase_purge_and_check(
    database: Path, tmp_path: Path, postgres_url: str
) -> None:
    exported = tmp_path / "export.jsonl"
    assert run("export", "-o", exported, url=database).returncode == 0
    imported = run("import", exported, url=postgres_url)
    assert imported.returncode == 0, imported.stderr
    assert run("export", url=postgres_url).stdout == exported.read_text("utf-8")
    password = postgres_url.split("@", maxsplit=1)[0].rsplit(":", 1)[-1]
    assert password not in imported.stderr  # the URL's password is never shown
    stats = json.loads(run("stats", "--json", url=postgres_url).stdout)
    assert stats["tenants"] == 11
    erased = run("erase", "tenant-04", "ghost", url=postgres_url)
    assert erased.returncode == 1
    assert "'ghost'" in erased.stderr
    assert run("show", "tenant-04", url=postgres_url).returncode == 1
    purged = json.loads(
        run("purge", "--idle-days", "1", "--json", url=postgres_url).stdout
    )
    assert len(purged["erased"]) == 10  # every fixture profile is from 2023
    assert run("check", url=postgres_url).returncode == 0


def test_an_unreachable_server_is_one_line_without_its_password() -> None:
    result = run("stats", url="postgresql://ops:hunter2-pw@127.0.0.1:1/profiles")
    assert result.returncode == 1
    assert_one_line_error(result)
    assert "hunter2-pw" not in result.stderr
