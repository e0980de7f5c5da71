"""Behaviour of the command and the rules no other test pinned down.

The ``ops`` tests run the installed ``tenant-dna`` command as a subprocess on
real SQLite files (some damaged on purpose, some locked by another
connection); the ``dna`` tests call the public API, with hypothesis for the
validation rules.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dna import InvalidSessionMetrics, TenantDNA, parse_session_metrics
from dna.insights import anomaly_report, capacity_by_hour
from storage.sqlite import _table
from tests.test_cli import (
    COMMAND,
    DAY,
    TIMEOUT,
    _rename_stored,
    fill,
    profile,
    records,
    run,
)

# -- helpers ---------------------------------------------------------------------------


def _damage(path: Path, tenant_id: str) -> None:
    """Overwrite the stored profile of ``tenant_id`` with two bytes of junk."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(
            f"UPDATE {_table(tenant_id)} SET dna = x'00ff' WHERE tenant_id = ?",
            (tenant_id,),
        )
    finally:
        db.close()


def _bad_line_import(tmp_path: Path, line: dict[str, object]) -> None:
    """One good line and ``line`` (line 2): bad line named, nothing imported."""
    good = {"tenant_id": "good", "version": 3, "incarnation": 9}
    good["dna"] = profile(1).to_dict()
    line = {"dna": profile(2).to_dict(), **line}
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    target = tmp_path / "target.db"
    result = run("import", source, url=target)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "in.jsonl line 2: " in result.stderr
    assert "nothing imported" in result.stderr
    assert not target.exists()


# -- import: every line is checked before anything is written (O06, O07, O08) ------


@pytest.mark.parametrize(
    "line",
    [
        {"tenant_id": "zero", "version": 0, "incarnation": 1},
        {"tenant_id": "flag", "version": True, "incarnation": 1},
        {"tenant_id": "huge", "version": 1, "incarnation": 2**63},
        {"tenant_id": "flag", "version": 1, "incarnation": True},
    ],
    ids=["version-0", "version-true", "incarnation-2**63", "incarnation-true"],
)
def test_import_names_an_out_of_range_version_or_incarnation(
    tmp_path: Path, line: dict[str, object]
) -> None:
    _bad_line_import(tmp_path, line)


# -- export: complete or not at all (O01, O02, O15) -----------------------------------


def test_an_export_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {f"tenant-{n:03d}": profile(n) for n in range(60)})
    _damage(path, "tenant-030")
    output = tmp_path / "out.jsonl"
    output.write_text("the previous export\n")
    result = run("export", "-o", output, url=path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "tenant-030" in result.stderr
    assert output.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "profiles.db"]


def test_an_export_file_is_synced_before_it_is_renamed_into_place(
    tmp_path: Path,
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("no strace here")
    path = tmp_path / "profiles.db"
    fill(path, {f"tenant-{n:02d}": profile(n) for n in range(5)})
    output = tmp_path / "out.jsonl"
    trace = tmp_path / "trace.txt"
    environment = {k: v for k, v in os.environ.items() if k != "TENANT_DNA_URL"}
    result = subprocess.run(
        [
            strace,
            "-f",
            "-y",
            "-o",
            str(trace),
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            str(COMMAND),
            "--url",
            str(path),
            "export",
            "-o",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        check=False,
    )
    if result.returncode != 0 and not trace.exists():
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    calls = trace.read_text().splitlines()
    synced = [
        n
        for n, c in enumerate(calls)
        if re.search(r"sync\(\d+<[^>]*\.tenant-dna-export-", c)
    ]
    renamed = [n for n, c in enumerate(calls) if "rename" in c and str(output) in c]
    assert synced, calls
    assert renamed, calls
    assert synced[-1] < renamed[0]
    assert output.read_text().count("\n") == 5


# -- erase (O21, O22, O26) ------------------------------------------------------------


def test_erase_of_a_tenant_named_twice_erases_it_once(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"acme": profile(1), "other": profile(2)})
    result = run("erase", "acme", "acme", url=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["acme"]
    assert "erased 1 tenant(s)" in result.stderr
    fill(path, {"acme": profile(1)})
    as_json = run("--json", "erase", "acme", "acme", url=path)
    assert json.loads(as_json.stdout)["erased"] == ["acme"]
    assert [tenant for tenant, _ in records(path)] == ["other"]


def test_erase_removes_a_profile_too_damaged_to_read(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"acme": profile(1), "other": profile(2)})
    _damage(path, "acme")
    assert run("show", "acme", url=path).returncode == 1
    result = run("erase", "acme", url=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["acme"]
    assert [tenant for tenant, _ in records(path)] == ["other"]
    assert run("check", url=path).returncode == 0


def test_erase_removes_a_damaged_profile_stored_under_an_id_the_store_refuses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"acme": profile(1), "other": profile(2)})
    _rename_stored(path, "acme", "acme ")
    _damage(path, "acme ")
    result = run("erase", "acme ", url=path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "acme "
    assert run("check", url=path).returncode == 0


# -- purge (O18, O19, O23, O25) -------------------------------------------------------


def test_purge_of_more_idle_profiles_than_one_batch_erases_them_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    idle = time.time() - 100 * DAY
    fill(path, {f"t{n:05d}": TenantDNA(last_updated=idle) for n in range(5003)})
    fill(path, {"fresh": TenantDNA()})
    result = run("--json", "purge", "--idle-days", "30", url=path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["erased"]) == 5003
    assert report["updated_meanwhile"] == []
    assert [tenant for tenant, _ in records(path)] == ["fresh"]


def _read_terminal_until(controller: int, pattern: bytes, deadline: float) -> bytes:
    shown = b""
    while not re.search(pattern, shown):
        assert time.monotonic() < deadline, shown
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    return shown


def test_purge_keeps_a_profile_updated_between_its_scan_and_its_erasure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    now = time.time()
    fill(
        path,
        {
            "ancient": profile(1, last_updated=now - 400 * DAY),
            "stale": profile(2, last_updated=now - 100 * DAY),
            "fresh": profile(3, last_updated=now),
        },
    )
    # Hold the write lock: the purge scans (WAL readers are not blocked), then
    # waits for the lock (busy timeout 5 s) to commit its erasures.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "TENANT_DNA_URL"}
    purge = subprocess.Popen(
        [str(COMMAND), "--json", "purge", "--idle-days", "30", "--url", str(path)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=environment,
    )
    try:
        os.close(terminal)
        # The scan's progress line is drawn, then wiped when the scan is done.
        _read_terminal_until(
            controller, rb"scanning.*\r +\r", time.monotonic() + TIMEOUT
        )
        # "stale" is written again meanwhile, as storage writes it: a new
        # version, a new sequence, a profile updated today.
        meta = "tenant_dna_meta"
        stale, fresh = _table("stale"), _table("fresh")
        holder.execute(f"UPDATE {meta} SET value = value + 1 WHERE key = 'sequence'")
        holder.execute(
            f"UPDATE {stale} SET version = version + 1, "
            f"sequence = (SELECT value FROM {meta} WHERE key = 'sequence'), "
            f"dna = (SELECT dna FROM {fresh} WHERE tenant_id = 'fresh') "
            "WHERE tenant_id = 'stale'"
        )
        holder.execute("COMMIT")
        holder.close()
        out, _ = purge.communicate(timeout=TIMEOUT)
    finally:
        purge.kill()
        purge.wait(timeout=TIMEOUT)
        os.close(controller)
    assert purge.returncode == 0
    report = json.loads(out)
    assert sorted(entry["tenant_id"] for entry in report["idle"]) == [
        "ancient",
        "stale",
    ]
    assert report["erased"] == ["ancient"]
    assert report["updated_meanwhile"] == ["stale"]
    stored = dict(records(path))
    assert sorted(stored) == ["fresh", "stale"]
    assert stored["stale"].version == 2


@pytest.mark.parametrize("days", ["0", "0.0", "-0", "-1"])
def test_purge_of_zero_or_fewer_idle_days_is_bad_usage(
    tmp_path: Path, days: str
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"today": profile(1, last_updated=time.time() - 1)})
    result = run("purge", "--idle-days", days, url=path)
    assert result.returncode == 2
    assert "days > 0" in result.stderr
    assert [tenant for tenant, _ in records(path)] == ["today"]


def test_purge_says_so_and_fails_when_a_reader_keeps_the_old_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"old": profile(1, last_updated=time.time() - 100 * DAY)})
    fill(path, {"new": profile(2, last_updated=time.time())})
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
        result = run("purge", "--idle-days", "30", url=path)
    finally:
        reader.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "bytes" in result.stderr
    assert [tenant for tenant, _ in records(path)] == ["new"]


# -- check, show, list (O27, O30, O33) ------------------------------------------------


@pytest.mark.parametrize("refused", [20, 21])
def test_check_names_twenty_refused_ids_then_counts_the_rest(
    tmp_path: Path, refused: int
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {f"t-{n:02d}": profile(n) for n in range(refused)})
    for n in range(refused):
        _rename_stored(path, f"t-{n:02d}", f"t-{n:02d} ")
    result = run("check", url=path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    named = [line for line in lines if "an id the store refuses" in line]
    assert len(named) == 20
    more = [line for line in lines if "more tenant(s)" in line]
    assert more == (
        []
        if refused == 20
        else [f"{refused - 20} more tenant(s) with ids the store refuses"]
    )
    assert len(lines) == len(named) + len(more)


def test_show_lists_tools_most_frequent_first_then_by_name(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    tools = {"alpha": 0.1, "delta": 0.9, "beta": 0.5, "gamma": 0.5}
    fill(path, {"acme": TenantDNA(tool_usage_frequency=tools, last_updated=0.0)})
    result = run("show", "acme", url=path)
    assert result.returncode == 0, result.stderr
    listed = [
        line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")
    ]
    assert listed == ["delta", "beta", "gamma", "alpha"]


def test_list_right_aligns_versions(tmp_path: Path) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {"a-tenant": profile(1)})
    fill(path, {"b-tenant": profile(2)}, writes=12)
    result = run("list", url=path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    end = header.index("VERSION") + len("VERSION")
    assert [row[:end].split()[-1] for row in rows] == ["1", "12"]
    assert [row[end - 2 : end] for row in rows] == [" 1", "12"]


# -- which database (O34, O36) --------------------------------------------------------


def test_url_wins_over_the_environment(tmp_path: Path) -> None:
    named, other = tmp_path / "named.db", tmp_path / "other.db"
    fill(named, {"in-named": profile(1)})
    fill(other, {"in-other": profile(2)})
    environment = dict(os.environ, TENANT_DNA_URL=str(other))
    result = subprocess.run(
        [str(COMMAND), "--json", "list", "--url", str(named)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [row["tenant_id"] for row in json.loads(result.stdout)] == ["in-named"]


@pytest.mark.parametrize("url", ["MEMORY://", "Memory://x"])
def test_a_memory_url_in_any_case_is_bad_usage(url: str) -> None:
    result = run("list", url=url)
    assert result.returncode == 2
    assert "memory://" in result.stderr
    assert result.stdout == ""


# -- a reader that leaves (O38) -------------------------------------------------------


def test_a_reader_that_leaves_early_ends_the_command_quietly_with_status_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.db"
    fill(path, {f"tenant-{n:04d}": profile(n) for n in range(3000)})
    environment = {k: v for k, v in os.environ.items() if k != "TENANT_DNA_URL"}
    command = subprocess.Popen(
        [str(COMMAND), "--url", str(path), "export"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert command.stdout is not None
    assert command.stderr is not None
    first = command.stdout.readline()
    command.stdout.close()  # like `head -1`
    errors = command.stderr.read()
    assert command.wait(timeout=TIMEOUT) == 1
    assert json.loads(first)["tenant_id"].startswith("tenant-")
    assert b"Traceback" not in errors
    assert b"exported" not in errors


# -- dna: names, anomaly reasons, capacity (D15, D29, D31) --------------------------


@given(st.integers(min_value=1, max_value=260))
@example(199)
@example(200)
@example(201)
def test_a_name_of_up_to_200_characters_is_accepted_and_no_longer(
    length: int,
) -> None:
    name = "x" * length
    metrics = {"intent": name, "tools_used": {name: 1}}
    if length <= 200:
        session = parse_session_metrics(metrics)
        assert session.intent == name
        profile_ = TenantDNA(last_updated=0.0)
        profile_.update_from_session(metrics)
        assert profile_.common_intents == [name]
        assert list(profile_.tool_usage_frequency) == [name]
        assert TenantDNA.from_dict(profile_.to_dict()) == profile_
    else:
        with pytest.raises(InvalidSessionMetrics):
            parse_session_metrics(metrics)


@pytest.mark.parametrize("unseen", [4, 5, 6])
def test_unseen_tools_are_listed_up_to_five_then_counted(unseen: int) -> None:
    known = TenantDNA(tool_usage_frequency={"known": 1.0}, last_updated=0.0)
    tools = {f"tool-{n}": 1 for n in range(unseen)}
    [reason] = anomaly_report(known, {"tools_used": tools}).reasons
    listed = ", ".join(repr(f"tool-{n}") for n in range(min(unseen, 5)))
    more = f" and {unseen - 5} more" if unseen > 5 else ""
    assert reason == f"tools never seen: {listed}{more}"


@given(
    st.lists(st.integers(0, 23), min_size=1, max_size=60),
    st.integers(0, 10**12),
)
def test_capacity_counts_a_repeated_peak_hour_once(
    hours: list[int], tokens: int
) -> None:
    # A TenantDNA is a plain dataclass: built directly, its list may repeat.
    tenant = TenantDNA(avg_tokens_per_task=tokens, peak_hours=hours, last_updated=0.0)
    distinct = set(hours)
    by_hour = capacity_by_hour([tenant])
    assert by_hour == capacity_by_hour(
        [
            TenantDNA(
                avg_tokens_per_task=tokens,
                peak_hours=sorted(distinct),
                last_updated=0.0,
            )
        ]
    )
    for hour in range(24):
        expected = tokens / len(distinct) if hour in distinct else 0.0
        assert by_hour[hour] == pytest.approx(expected, rel=1e-12)
