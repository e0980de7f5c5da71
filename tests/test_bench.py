"""The benchmark harness: its workload, and a real ``--quick`` run's output.

Only structure and correctness are checked here, never a timing: the figures
of a shared machine are noise, the lost-update count is not.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import actors
from bench.contenders import (
    CONTENDERS,
    FRESH_SQLITE,
    DiskCache,
    LockedSQLite,
    StoreContender,
)
from bench.report import met, table
from bench.report import rows as report_rows
from bench.run import Measurement
from bench.workload import (
    PROBE_ALPHA,
    SCENARIOS,
    LatentProfile,
    Workload,
    applied_sessions,
)
from dna import TenantDNA, parse_session_metrics

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {
    "scenario": str,
    "contender": str,
    "storage": str,
    "ops_per_s": float,
    "ratio_to_lock": float,
    "p50_us": float,
    "p99_us": float,
    "lost_updates": int,
    "threads_peak": int,
    "tenants": int,
    "threads": int,
    "ops": int,
    "seconds": float,
    "machine": dict,
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ops/s" in result.stdout
    (out / "stdout.txt").write_text(result.stdout)
    return out


@pytest.fixture(scope="module")
def rows(quick_run: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((quick_run / "results.json").read_text())
    return loaded


def test_quick_run_has_a_row_for_every_scenario_and_contender(
    rows: list[dict[str, Any]],
) -> None:
    pairs = Counter((row["scenario"], row["contender"]) for row in rows)
    expected = {(s.name, c.name) for s in SCENARIOS for c in CONTENDERS}
    assert set(pairs) == expected
    assert all(count == 1 for count in pairs.values())


def test_lock_comes_first_and_the_storage_baselines_take_part(
    rows: list[dict[str, Any]],
) -> None:
    assert CONTENDERS[0].name == "lock"
    storage = {row["contender"]: row["storage"] for row in rows}
    assert storage["lock"] == "memory"
    assert storage["lock-sqlite"] == "sqlite"
    assert storage["diskcache"] == "diskcache"
    assert storage == {spec.name: spec.storage for spec in CONTENDERS}


def test_a_quick_run_gives_figures_but_no_verdicts(
    quick_run: Path, rows: list[dict[str, Any]]
) -> None:
    targeted = [row for row in rows if row["target"] is not None]
    assert targeted
    assert all(row["target"]["met"] is None for row in targeted)
    printed = (quick_run / "stdout.txt").read_text()
    assert "targets (reported" not in printed
    assert "MISSED" not in printed
    assert "no verdicts" in printed


def test_every_row_has_the_required_figures(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for key, kind in REQUIRED.items():
            assert isinstance(row[key], kind), (row["contender"], key, row[key])
        for key in ("ops_per_s", "ratio_to_lock", "p50_us", "p99_us", "seconds"):
            assert math.isfinite(row[key]), (key, row[key])
            assert row[key] > 0, (key, row[key])
        assert row["threads_peak"] >= row["threads"]
        assert row["ops"] > 0
        assert row["rss_per_tenant_bytes"] is None or row["rss_per_tenant_bytes"] >= 0
        machine = row["machine"]
        assert machine["cores"] >= 1
        assert machine["python"]
        assert machine["pykka"]


def test_lock_is_its_own_reference(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["contender"] == "lock":
            assert row["ratio_to_lock"] == 1.0


def test_no_contender_but_the_seed_pattern_loses_an_update(
    rows: list[dict[str, Any]],
) -> None:
    racy = {spec.name for spec in CONTENDERS if spec.racy}
    assert racy == {"seed-pattern"}
    for row in rows:
        assert row["probe_sessions"] > 0, row["scenario"]
        if row["contender"] not in racy:
            assert row["lost_updates"] == 0, (row["scenario"], row["contender"])


def test_quick_run_writes_a_png_chart(quick_run: Path) -> None:
    assert (quick_run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_seed_gives_the_same_operations() -> None:
    for scenario in SCENARIOS:
        first = Workload(tenants=300, seed=7).plan(scenario, 800)
        second = Workload(tenants=300, seed=7).plan(scenario, 800)
        assert first == second


def test_another_seed_gives_other_operations() -> None:
    scenario = SCENARIOS[0]
    first = Workload(tenants=300, seed=7).plan(scenario, 800)
    other = Workload(tenants=300, seed=8).plan(scenario, 800)
    assert first.phases != other.phases


def test_tenants_are_drawn_zipf() -> None:
    workload = Workload(tenants=1000, seed=3)
    drawn = Counter(workload.draw_tenants(random.Random(3), 50_000))
    busiest = drawn[workload.tenant_ids[0]]
    median = drawn[workload.tenant_ids[len(workload.tenant_ids) // 2]]
    # With s = 1.1 rank 1 is drawn 500**1.1 (about 930) times as often as rank 501.
    assert busiest > 100 * max(1, median)
    assert drawn.most_common(1)[0][0] == workload.tenant_ids[0]


def test_sessions_are_valid_metrics() -> None:
    workload = Workload(tenants=200, seed=5)
    for scenario in SCENARIOS:
        plan = workload.plan(scenario, 1600)
        ops = [op for phase in plan.phases for thread in phase for op in thread]
        ops += plan.warm
        for op in ops:
            if op.update:
                parse_session_metrics(op.metrics)


def test_a_tenant_s_sessions_are_coherent() -> None:
    rng = random.Random(11)
    profile = LatentProfile.draw(rng)
    sessions = [profile.session(rng) for _ in range(300)]
    assert all(set(s["tools_used"]) <= set(profile.tools) for s in sessions)
    assert all(s["intent"] in profile.intents for s in sessions)
    assert 2 <= len(profile.tools) <= 6
    mean = sum(s["task_complexity"] for s in sessions) / len(sessions)
    assert abs(mean - profile.complexity) < 0.1


def test_probe_sessions_are_counted_back_from_the_profile() -> None:
    dna = TenantDNA()
    rng = random.Random(2)
    profile = LatentProfile.draw(rng)
    for sent in range(1, 2001):
        dna.update_from_session(profile.probe_session(rng), alpha=PROBE_ALPHA)
        if sent in (1, 2, 10, 999, 2000):
            assert applied_sessions(dna.avg_task_complexity) == sent
    assert applied_sessions(TenantDNA().avg_task_complexity) == 0


def test_every_probe_stays_within_the_recoverable_count() -> None:
    workload = Workload(tenants=500, seed=1)
    for scenario in SCENARIOS:
        plan = workload.plan(scenario, 24_000)
        assert plan.probes
        assert max(plan.probes.values()) <= 2000
        head = plan.head(4000)
        assert head.ops <= plan.ops
        assert sum(head.probes.values()) <= sum(plan.probes.values())


def _measurement(contender: str, ops_per_s: float) -> Measurement:
    return Measurement(
        scenario="finalise",
        contender=contender,
        storage="memory",
        round=0,
        threads=16,
        ops=round(ops_per_s * 1000),
        updates=round(ops_per_s * 1000),
        tenants=100,
        seconds=1000.0,
        p50_us=1.0,
        p99_us=2.0,
        threads_peak=17,
        rss_growth_bytes=None,
        probe_sessions=10,
        lost_updates=0,
    )


@pytest.mark.parametrize(
    ("store_ops_per_s", "shown", "verdict"),
    [(5954.0, "0.60", "met"), (5940.0, "0.59", "MISSED")],
)
def test_a_verdict_judges_the_ratio_as_printed(
    store_ops_per_s: float, shown: str, verdict: str
) -> None:
    measured = [
        _measurement("lock", 10_000.0),
        _measurement("naive-actors", 1_000.0),
        _measurement("store-async", store_ops_per_s),
    ]
    result = report_rows(measured, racy=[], settings={}, verdicts=True)
    store = next(row for row in result if row["contender"] == "store-async")
    assert store["target"]["met"] is (verdict == "met")
    line = next(
        line for line in table(result).splitlines() if line.startswith("  finalise")
    )
    assert f"x lock  {shown} >= 0.60" in line
    assert line.endswith(verdict)


def test_the_verdict_rule_rounds_to_the_printed_digits() -> None:
    assert met(0.5954, 0.60, 2)
    assert not met(0.594, 0.60, 2)
    assert met(2.96, 3.0, 1)
    assert not met(2.94, 3.0, 1)
    assert not met(None, 0.30, 2)


def test_without_verdicts_rows_keep_their_target_but_judge_nothing() -> None:
    measured = [_measurement("lock", 10_000.0), _measurement("store-ack", 9_000.0)]
    result = report_rows(measured, racy=[], settings={}, verdicts=False)
    store = next(row for row in result if row["contender"] == "store-ack")
    assert store["target"] == {
        "ratio_to_lock": 0.30,
        "ratio_to_naive": 3.0,
        "met": None,
    }
    assert "MISSED" not in table(result)


def test_lock_sqlite_commits_every_profile_to_its_file() -> None:
    contender = LockedSQLite()
    rng = random.Random(4)
    try:
        for index in range(20):
            tenant = f"tenant-{index % 5}"
            contender.update(tenant, LatentProfile.draw(rng).session(rng), 0.2)
        with sqlite3.connect(contender.path) as reader:
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            stored = dict(reader.execute("SELECT tenant_id, dna FROM profiles"))
        reader.close()
        assert sorted(stored) == [f"tenant-{index}" for index in range(5)]
        for tenant, text in stored.items():
            assert TenantDNA.from_dict(json.loads(text)) == contender.get(tenant)
    finally:
        contender.close()
    assert not contender.path.parent.exists()


def test_diskcache_keeps_its_default_synchronous_normal() -> None:
    contender = DiskCache()
    folder = Path(contender.cache.directory)
    try:
        assert contender.cache.sqlite_synchronous == 1  # NORMAL
        assert contender.cache.sqlite_journal_mode == "wal"
        rng = random.Random(6)
        dna = contender.update("t", LatentProfile.draw(rng).session(rng), 0.2)
        assert contender.get("t") == dna
    finally:
        contender.close()
    assert not folder.exists()


class _RecordingStore:
    def __init__(self, **options: Any) -> None:
        self.options = options
        url = options.get("url")
        self.folder_existed = (
            url is not None and Path(url.removeprefix("sqlite:///")).parent.is_dir()
        )

    def close(self) -> None:
        pass

    get = update_from_session = update_from_session_async = flush = close


def test_store_contender_passes_only_the_options_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actors, "TenantDNAStore", _RecordingStore)
    plain = StoreContender()
    assert plain._store.options == {}
    durable = StoreContender(url=FRESH_SQLITE, durability="commit")
    options = durable._store.options
    assert options["durability"] == "commit"
    assert options["url"].startswith("sqlite:////")
    assert options["url"].endswith("/dna.db")
    assert durable._store.folder_existed
    other = StoreContender(url=FRESH_SQLITE)
    assert other._store.options["url"] != options["url"]
    for contender in (plain, durable, other):
        contender.close()
    folder = Path(options["url"].removeprefix("sqlite:///")).parent
    assert not folder.exists()
