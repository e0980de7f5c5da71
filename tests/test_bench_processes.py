"""``python -m bench.processes``: a real ``--quick`` run on a PostgreSQL server.

Skipped without a server (failed in CI without one, see tests/postgres.py).
Only structure and correctness are checked, never a timing: the figures of a
shared machine are noise, the lost-update count is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from bench.processes import CONTENDERS, REFERENCE
from tests.postgres import server_url

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def _databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        rows = connection.execute("SELECT datname FROM pg_database").fetchall()
    return {row[0] for row in rows}


def test_a_quick_run_reports_every_contender_and_loses_nothing(
    tmp_path: Path,
) -> None:
    url = server_url()
    before = _databases(url)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.processes",
            "--quick",
            "--url",
            url,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ops/s" in result.stdout
    assert "staleness" in result.stdout
    report: dict[str, Any] = json.loads((tmp_path / "processes.json").read_text())

    settings = report["settings"]
    assert settings["processes"] == 4
    assert settings["threads_per_process"] == 4
    assert settings["quick"] is True
    assert isinstance(report["server"], str)
    assert isinstance(report["machine"], dict)

    rows = {row["contender"]: row for row in report["rows"]}
    assert set(rows) == set(CONTENDERS)
    for name, row in rows.items():
        assert row["storage"] == "postgres"
        assert row["ops_per_s"] > 0
        assert row["p99_us"] >= row["p50_us"] >= 0
        assert row["probe_sessions"] > 0
        assert row["lost_updates"] == 0, name
        assert len(row["runs"]) == settings["rounds"]
        if name == REFERENCE:
            assert row["ratio_to_lock_postgres"] == 1.0
            assert row["commits_per_update"] is None
        else:
            assert row["ratio_to_lock_postgres"] > 0
            assert row["commits_per_update"] > 0
            assert row["version_conflicts"] >= 0

    staleness = report["staleness"]
    assert staleness["seen"] == staleness["writes"] == settings["writes"]
    assert staleness["max_ms"] >= staleness["p99_ms"] >= staleness["p50_ms"] >= 0

    targets = report["targets"]
    assert targets["lost_updates"] == {"at_most": 0, "measured": 0, "met": True}
    # A quick run is too small to judge a ratio or a percentile.
    assert targets["store_over_lock_postgres"]["met"] is None
    assert targets["staleness_p99_ms"]["met"] is None

    # The bench's own database is gone; nothing else was created.
    assert _databases(url) == before
