"""The benchmark harness: its workload, and a real ``--quick`` run's output.

Only structure and correctness are checked here, never a timing: the figures
of a shared machine are noise, the lost-update count is not.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import actors
from bench.asyncio_run import StallMeter, run_once_in_loop
from bench.contenders import (
    CONTENDERS,
    FRESH_SQLITE,
    AsyncStoreContender,
    DiskCache,
    LockedSQLite,
    StoreContender,
)
from bench.report import TARGETS, met, table, within
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
ASYNCIO = next(scenario for scenario in SCENARIOS if scenario.coroutines)
SQLITE_STORES = ("store-sqlite", "store-sqlite-async", "store-sqlite-buffered")
REQUIRED = {
    "scenario": str,
    "contender": str,
    "storage": str,
    "ops_per_s": float,
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
    expected = {(s.name, c.name) for s in SCENARIOS for c in CONTENDERS if c.runs(s)}
    assert set(pairs) == expected
    assert all(count == 1 for count in pairs.values())
    for scenario in ("finalise", "routing", "hot-tenant"):
        for contender in SQLITE_STORES:
            assert (scenario, contender) in pairs
    coroutines = {c.name for c in CONTENDERS if c.coroutines}
    assert coroutines == {"store-asyncio", "store-sqlite-asyncio"}
    assert {c for s, c in pairs if s == "asyncio"} == coroutines


def test_the_asyncio_scenario_drives_1000_coroutines_in_one_thread() -> None:
    assert ASYNCIO.name == "asyncio"
    assert ASYNCIO.coroutines == 1000
    assert ASYNCIO.threads == 1
    plan = Workload(tenants=200, seed=1).plan(ASYNCIO, 1600)
    assert [len(phase) for phase in plan.phases] == [1000]
    assert all(op.update for phase in plan.phases for ops in phase for op in ops)
    # One update in ten reaches a probe, even with one or two per coroutine.
    assert 0.09 <= sum(plan.probes.values()) / plan.updates <= 0.11


def test_slow_contenders_run_their_share_of_every_scenario_s_operations(
    rows: list[dict[str, Any]],
) -> None:
    # routing's plans are four times the base count: a share of the base
    # count gave them a sixteenth and an eighth instead of a quarter and a half.
    ops = {(row["scenario"], row["contender"]): row["ops"] for row in rows}
    for spec in CONTENDERS:
        if spec.ops_share == 1 or spec.coroutines:
            continue
        for scenario in ("finalise", "routing"):
            share = ops[scenario, spec.name] / ops[scenario, "lock"]
            assert share == pytest.approx(spec.ops_share, rel=0.1), (scenario, spec)


def test_an_asyncio_run_leaves_the_harness_frozen_for_the_runs_after_it() -> None:
    # run_all freezes the plans for every run; the asyncio runner unfroze
    # them all when it was done, so every threaded run after it paid for
    # collections over them.
    plan = Workload(tenants=200, seed=1).plan(ASYNCIO, 1600)
    spec = next(c for c in CONTENDERS if c.name == "store-asyncio")
    gc.collect()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run_once_in_loop(spec, plan)
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


def test_lock_comes_first_and_the_storage_baselines_take_part(
    rows: list[dict[str, Any]],
) -> None:
    assert CONTENDERS[0].name == "lock"
    storage = {row["contender"]: row["storage"] for row in rows}
    assert storage["lock"] == "memory"
    assert storage["lock-sqlite"] == "sqlite"
    assert storage["diskcache"] == "diskcache"
    for name in (*SQLITE_STORES, "store-sqlite-asyncio"):
        assert storage[name] == "sqlite"
    assert storage["store-asyncio"] == "memory"
    assert storage == {spec.name: spec.storage for spec in CONTENDERS}


def test_a_quick_run_gives_figures_but_no_verdicts(
    quick_run: Path, rows: list[dict[str, Any]]
) -> None:
    targeted = [row for row in rows if row["target"] is not None]
    assert targeted
    for row in targeted:
        target = row["target"]
        assert target["met"] is None
        assert all(
            check["met"] is None for check in (*target["ratios"], *target["limits"])
        )
    printed = (quick_run / "stdout.txt").read_text()
    assert "targets (reported" not in printed
    assert "MISSED" not in printed
    assert "no verdicts" in printed


def test_every_row_has_the_required_figures(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for key, kind in REQUIRED.items():
            assert isinstance(row[key], kind), (row["contender"], key, row[key])
        figures = ["ops_per_s", "p50_us", "p99_us", "seconds"]
        # The asyncio scenario has no lock: its rows compare through targets.
        if row["scenario"] != "asyncio":
            figures.append("ratio_to_lock")
        for key in figures:
            assert isinstance(row[key], float), (key, row[key])
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


def test_the_loop_stall_is_a_column_of_the_asyncio_rows_only(
    quick_run: Path, rows: list[dict[str, Any]]
) -> None:
    for row in rows:
        if row["scenario"] == "asyncio":
            # A gap between two wake-ups of a 1 ms ticker: never less than 1 ms.
            assert isinstance(row["loop_stall_ms"], float)
            assert row["loop_stall_ms"] >= 1.0
            assert row["loop_stall_ms_max"] >= row["loop_stall_ms"]
            assert row["threads"] == 1
        else:
            assert row["loop_stall_ms"] is None
            assert row["loop_stall_ms_max"] is None
    header = (quick_run / "stdout.txt").read_text().splitlines()[0]
    assert header.split()[-3:] == ["stall", "ms", "commits/upd"]


def test_store_rows_count_their_commits(rows: list[dict[str, Any]]) -> None:
    stores = {spec.name for spec in CONTENDERS if spec.name.startswith("store-")}
    for row in rows:
        per_update = row["commits_per_update"]
        if row["contender"] not in stores:
            assert per_update is None, row["contender"]
        elif row["storage"] == "sqlite":
            # Group commit: a commit writes one change or more, never less.
            assert 0 < per_update <= 1, (row["scenario"], row["contender"])


def test_the_quick_run_measures_every_target_s_figure(
    rows: list[dict[str, Any]],
) -> None:
    by_key = {(row["scenario"], row["contender"]): row for row in rows}
    for key, pairs in TARGETS.items():
        target = by_key[key]["target"]
        assert [(c["reference"], c["at_least"]) for c in target["ratios"]] == list(
            pairs
        )
        for check in target["ratios"]:
            scenario, _, reference = check["reference"].rpartition("/")
            base = by_key[scenario or key[0], reference]["ops_per_s"]
            assert check["measured"] == pytest.approx(by_key[key]["ops_per_s"] / base)
    for contender in ("store-asyncio", "store-sqlite-asyncio"):
        row = by_key["asyncio", contender]
        limits = {c["column"]: c for c in row["target"]["limits"]}
        assert limits["loop_stall_ms"]["at_most"] == 20.0
        assert limits["loop_stall_ms"]["measured"] == row["loop_stall_ms"]
        assert limits["lost_updates"] == {
            "column": "lost_updates",
            "at_most": 0,
            "measured": 0,
            "met": None,
        }


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


def _measurement(
    contender: str,
    ops_per_s: float,
    scenario: str = "finalise",
    loop_stall_ms: float | None = None,
) -> Measurement:
    return Measurement(
        scenario=scenario,
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
        loop_stall_ms=loop_stall_ms,
    )


def _target_line(result: list[dict[str, Any]], start: str) -> str:
    return next(line for line in table(result).splitlines() if line.startswith(start))


def _targets_block(result: list[dict[str, Any]]) -> list[str]:
    """The targets block's lines, runs of spaces as one."""
    lines = table(result).split("\n\n", 1)[1].splitlines()
    return [" ".join(line.split()) for line in lines]


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
    lock, naive = store["target"]["ratios"]
    assert lock["reference"] == "lock"
    assert lock["met"] is (verdict == "met")
    assert naive["met"] is (naive["measured"] >= 3.0)
    line = _target_line(result, "  finalise    store-async   x lock ")
    assert f" {shown} >= 0.6 " in line
    assert line.endswith(verdict)


def test_targets_against_any_contender_judge_the_ratio_as_printed() -> None:
    measured = [
        _measurement("lock-sqlite", 1_000.0),
        _measurement("diskcache", 2_000.0),
        _measurement("store-sqlite", 4_996.0),  # 5.00 x lock-sqlite, 2.50 x diskcache
    ]
    result = report_rows(measured, racy=[], settings={}, verdicts=True)
    store = next(row for row in result if row["contender"] == "store-sqlite")
    checks = {check["reference"]: check for check in store["target"]["ratios"]}
    assert checks["lock-sqlite"]["met"] is True
    assert checks["diskcache"]["met"] is False
    assert store["target"]["met"] is False
    assert _targets_block(result)[1:] == [
        "finalise store-sqlite x lock-sqlite 5.00 >= 5 met",
        "finalise store-sqlite x diskcache 2.50 >= 3 MISSED",
    ]


def test_an_asyncio_row_is_judged_against_another_scenario_and_its_stall() -> None:
    measured = [
        _measurement("store-async", 10_000.0),
        _measurement("store-asyncio", 4_996.0, "asyncio", loop_stall_ms=20.04),
    ]
    result = report_rows(measured, racy=[], settings={}, verdicts=True)
    row = next(row for row in result if row["contender"] == "store-asyncio")
    assert row["loop_stall_ms"] == 20.04
    (ratio,) = row["target"]["ratios"]
    assert ratio["reference"] == "finalise/store-async"
    assert ratio["measured"] == pytest.approx(0.4996)
    assert ratio["met"] is True  # printed 0.50
    stall, lost = row["target"]["limits"]
    assert (stall["column"], stall["met"]) == ("loop_stall_ms", True)  # 20.0
    assert (lost["column"], lost["met"]) == ("lost_updates", True)
    assert row["target"]["met"] is True
    assert _targets_block(result)[1:] == [
        "finalise store-async x lock - >= 0.6 not run",
        "finalise store-async x naive-actors - >= 3 not run",
        "asyncio store-asyncio x store-async (finalise) 0.50 >= 0.5 met",
        "asyncio store-asyncio loop stall ms 20.0 <= 20 met",
        "asyncio store-asyncio lost updates 0 <= 0 met",
    ]
    slower = report_rows(
        [measured[0], _measurement("store-asyncio", 4_996.0, "asyncio", 20.06)],
        racy=[],
        settings={},
        verdicts=True,
    )
    assert slower[1]["target"]["limits"][0]["met"] is False  # printed 20.1
    assert slower[1]["target"]["met"] is False


def test_a_reference_that_was_not_run_judges_nothing() -> None:
    measured = [_measurement("lock-sqlite", 1_000.0), _measurement("store-sqlite", 6e3)]
    result = report_rows(measured, racy=[], settings={}, verdicts=True)
    target = result[1]["target"]
    lock_sqlite, diskcache = target["ratios"]
    assert lock_sqlite["met"] is True
    assert diskcache == {
        "reference": "diskcache",
        "at_least": 3.0,
        "measured": None,
        "met": None,
    }
    assert target["met"] is True
    assert table(result).splitlines()[-1].endswith("not run")


def test_the_verdict_rule_rounds_to_the_printed_digits() -> None:
    assert met(0.5954, 0.60, 2)
    assert not met(0.594, 0.60, 2)
    assert met(2.96, 3.0, 1)
    assert not met(2.94, 3.0, 1)
    assert not met(None, 0.30, 2)
    assert within(20.04, 20.0, 1)
    assert not within(20.05, 20.0, 1)
    assert within(0, 0, 0)
    assert not within(None, 20.0, 1)


def test_without_verdicts_rows_keep_their_target_but_judge_nothing() -> None:
    measured = [_measurement("lock", 10_000.0), _measurement("store-ack", 9_000.0)]
    result = report_rows(measured, racy=[], settings={}, verdicts=False)
    store = next(row for row in result if row["contender"] == "store-ack")
    assert store["target"] == {
        "ratios": [
            {"reference": "lock", "at_least": 0.30, "measured": 0.9, "met": None},
            {
                "reference": "naive-actors",
                "at_least": 3.0,
                "measured": None,
                "met": None,
            },
        ],
        "limits": [],
        "met": None,
    }
    assert "MISSED" not in table(result)
    assert "no verdicts" in table(result)


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

    get = update_from_session = update_from_session_async = flush = stats = close


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


def test_the_stall_meter_sees_a_blocked_loop_only_while_armed() -> None:
    async def scenario() -> tuple[int, int]:
        meter = StallMeter()
        ticker = asyncio.create_task(meter.tick())
        await asyncio.sleep(0.005)
        time.sleep(0.05)  # blocks the loop, the meter not armed yet
        await asyncio.sleep(0.005)
        unarmed = meter.worst_ns
        meter.arm()
        await asyncio.sleep(0.005)
        time.sleep(0.03)  # blocks the loop while armed
        await asyncio.sleep(0.005)
        meter.disarm()
        ticker.cancel()
        return unarmed, meter.worst_ns

    unarmed, armed = asyncio.run(scenario())
    assert unarmed == 0
    assert armed >= 30_000_000


def test_async_store_contender_serves_a_fresh_sqlite_file() -> None:
    async def scenario() -> tuple[Path, TenantDNA, TenantDNA, int]:
        contender = AsyncStoreContender(url=FRESH_SQLITE, durability="commit")
        assert contender._folder is not None
        folder = Path(contender._folder.name)
        rng = random.Random(8)
        session = LatentProfile.draw(rng).session(rng)
        updated = await contender.update("t", session, 0.2)
        await contender.flush()
        read = await contender.get("t")
        commits = contender.stats().commits
        await contender.close()
        return folder, updated, read, commits

    folder, updated, read, commits = asyncio.run(scenario())
    assert read == updated
    assert commits >= 1
    assert not folder.exists()


def test_population_quick_run_stores_every_tenant_and_reads_evicted_ones_back(
    tmp_path: Path,
) -> None:
    tenants = 3_000
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.population",
            "--quick",
            "--tenants",
            str(tenants),
            # Fire-and-forget on SQLite is out of the default runs (too slow
            # at a million); a small population still checks it.
            "--sqlite-writes",
            "async,ack",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "first touch" in result.stdout
    report = json.loads((tmp_path / "population.json").read_text())
    assert report["tenants"] == tenants
    assert report["threads"] == 16
    lock = report["lock"]
    for phase in ("first_touch", "read"):
        assert lock[phase]["ops_per_s"] > 0
    runs = report["runs"]
    assert set(runs) == {
        f"{storage}/store-{mode}"
        for storage in ("memory", "sqlite")
        for mode in ("async", "ack")
    }
    for label, run in runs.items():
        assert "error" not in run, f"{label}: {run.get('error')}"
        assert run["first_touch"]["ops"] == tenants
        assert run["first_touch"]["x_lock"] > 0
        assert isinstance(run["threads_peak"], int)
        assert run["threads_peak_net"] == run["threads_peak"] - 16
        assert isinstance(run["rss_growth_bytes"], int)
        # max_resident is a tenth of the population in a quick run.
        assert run["max_resident"] == tenants // 10
        for stats in (run["stats_after_first_touch"], run["stats_end"]):
            assert stats["tenants"] == tenants
            assert stats["resident"] <= run["max_resident"]
            assert stats["changes_queued"] == 0
            assert stats["storage_errors"] == 0
        correct = run["correctness"]
        assert correct["stored"] == tenants
        assert correct["stored_equals_n"]
        assert correct["lost_updates"] == 0
        assert correct["mismatched"] == 0
        sample = correct["evicted_sample"]
        assert sample["checked"] > 0
        assert sample["equal"] == sample["checked"]
        assert sample["evicted"] > 0
        assert sample["evicted_equal"] == sample["evicted"]
        assert set(run["targets"]) >= {
            "stored == N, 0 lost, 0 mismatched",
            "evicted sample read back equal",
        }
    for storage in ("memory", "sqlite"):
        assert "read" in runs[f"{storage}/store-async"]
        erase = runs[f"{storage}/store-async"]["erase"]
        assert erase["ops"] > 0
        assert erase["stored_after"] == tenants - erase["ops"]
        assert erase["still_readable"] == 0
        assert erase["stats_after"]["resident"] <= tenants // 10
