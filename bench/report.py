"""From measurements to figures: rows, a terminal table, results.json, a chart.

One row per scenario and contender, over all rounds:

* ``ops_per_s`` — median operations per second over the rounds;
* ``ratio_to_lock`` / ``ratio_to_naive`` — that median divided by the median of
  ``lock`` / ``naive-actors`` on the same scenario in the same run;
* ``p50_us`` / ``p99_us`` — median over the rounds of each run's latency
  percentiles for one call, in microseconds;
* ``threads_peak`` — the most OS threads seen in any round;
* ``rss_per_tenant_bytes`` — resident-memory growth of a run divided by the
  tenants it touched, the largest over the rounds (later runs reuse memory
  freed by earlier ones, so smaller values understate);
* ``lost_updates`` — probe sessions sent minus applied, summed over the rounds:
  0 for every contender but the racy ``seed-pattern``;
* ``storage`` — where the contender keeps profiles: ``memory``, ``sqlite`` or
  ``diskcache``;
* ``loop_stall_ms`` — for the contenders driven by coroutines (the ``asyncio``
  scenario), the median over the rounds of each run's worst event-loop stall
  (the longest gap of a 1 ms ticker), and ``loop_stall_ms_max`` the worst of
  them; ``None`` for threads;
* ``commits_per_update`` — for the store's contenders, storage transactions
  committed during the timed region (``stats().commits``) per update of the
  run, median over the rounds (a store on SQLite groups many updates, of many
  tenants, into one commit; ``lock-sqlite`` commits once per update);
  ``None`` for the others;
* ``target`` — for the rows in :data:`TARGETS` or :data:`LIMITS`, ``{"ratios":
  [...], "limits": [...], "met"}``, else ``None``. Each ratio is ``{"reference",
  "at_least", "measured", "met"}`` — ``measured`` is this row's ops/s divided
  by the reference's, in the same run — and each limit ``{"column", "at_most",
  "measured", "met"}``. ``met`` judges the figure as the table prints it
  (:func:`printed`: 0.5954 prints as 0.60 and meets 0.60); it is ``None`` for
  a reference that was not run, and everywhere when the run gives no verdicts:
  a ``--quick`` or one-round run has no median to judge, so it prints figures
  only. The row's ``met`` is false if any check missed, true if every check
  that could be judged was met.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import Measurement

TARGETS: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("finalise", "store-ack"): (("lock", 0.30), ("naive-actors", 3.0)),
    ("finalise", "store-async"): (("lock", 0.60), ("naive-actors", 3.0)),
    ("routing", "store-ack"): (("lock", 0.80), ("naive-actors", 20.0)),
    ("routing", "store-async"): (("lock", 0.80), ("naive-actors", 20.0)),
    ("hot-tenant", "store-ack"): (("lock", 0.30), ("naive-actors", 3.0)),
    ("hot-tenant", "store-async"): (("lock", 0.30), ("naive-actors", 3.0)),
    # Durable profiles (issue 10): group commit against a commit per change;
    # write-behind near the in-memory store; reads never touch the file. And
    # against diskcache, what a user would pick instead (issue 14).
    ("finalise", "store-sqlite"): (("lock-sqlite", 5.0), ("diskcache", 3.0)),
    ("finalise", "store-sqlite-async"): (("lock-sqlite", 5.0), ("diskcache", 3.0)),
    ("finalise", "store-sqlite-buffered"): (("store-async", 0.8),),
    ("routing", "store-sqlite"): (("store-ack", 0.8), ("diskcache", 5.0)),
    ("routing", "store-sqlite-async"): (("store-async", 0.8), ("diskcache", 5.0)),
    ("routing", "store-sqlite-buffered"): (("store-async", 0.8), ("diskcache", 5.0)),
    # asyncio (issue 9): 1,000 coroutines against 16 threads firing and
    # forgetting, on the same storage, in the same run.
    ("asyncio", "store-asyncio"): (("finalise/store-async", 0.5),),
    ("asyncio", "store-sqlite-asyncio"): (("finalise/store-sqlite-async", 0.5),),
}
"""What the store is measured against: per row, ``(reference, ratio)`` pairs,
each met when the row's ops/s is at least ``ratio`` times the reference's in
the same run. A reference is a contender of the same scenario, or
``"scenario/contender"`` for another scenario's row."""

LIMITS: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("asyncio", "store-asyncio"): (("loop_stall_ms", 20.0), ("lost_updates", 0)),
    ("asyncio", "store-sqlite-asyncio"): (
        ("loop_stall_ms", 20.0),
        ("lost_updates", 0),
    ),
}
"""Ceilings on a row's own figures: per row, ``(column, at most)`` pairs."""

REFERENCE = "lock"
NAIVE = "naive-actors"

LOCK_DIGITS = 2
NAIVE_DIGITS = 1
RATIO_DIGITS = 2
"""Decimals the table prints ``x lock`` and ``x naive`` with, and the targets
block every other ratio with; verdicts use them."""

COLUMN_DIGITS = {"loop_stall_ms": 1, "lost_updates": 0}
"""Decimals the table prints a limited column with; verdicts use them."""

COLUMN_LABELS = {"loop_stall_ms": "loop stall ms", "lost_updates": "lost updates"}

HATCHES = {"memory": "", "sqlite": "//", "diskcache": "xx"}
"""How the chart tells storage apart; unknown storage gets dots."""


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pykka": version("pykka"),
        "structlog": version("structlog"),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def printed(value: float, digits: int) -> float:
    """``value`` as the table shows it with ``digits`` decimals, as a number."""
    return float(f"{value:.{digits}f}")


def met(ratio: float | None, target: float, digits: int) -> bool:
    """Whether ``ratio``, printed with ``digits`` decimals, reaches ``target``.

    The one rule for every verdict, so the table never prints ``0.60 >= 0.60``
    beside ``MISSED``: ``met(0.5954, 0.60, 2)`` is true, ``met(0.594, 0.60, 2)``
    false. A missing ratio meets nothing.
    """
    return ratio is not None and printed(ratio, digits) >= target


def within(value: float | None, limit: float, digits: int) -> bool:
    """Whether ``value``, printed with ``digits`` decimals, is at most ``limit``.

    The same rule as :func:`met`, for ceilings: ``within(20.04, 20.0, 1)`` is
    true (it prints ``20.0``). A missing value is within nothing.
    """
    return value is not None and printed(value, digits) <= limit


def ratio_digits(reference: str) -> int:
    """Decimals a ratio to ``reference`` is printed, and judged, with."""
    return {REFERENCE: LOCK_DIGITS, NAIVE: NAIVE_DIGITS}.get(reference, RATIO_DIGITS)


def _reference_key(scenario: str, reference: str) -> tuple[str, str]:
    """``(scenario, contender)`` of a target's reference."""
    other, _, contender = reference.rpartition("/")
    return (other or scenario, contender)


def _target(
    scenario: str,
    contender: str,
    *,
    ops_per_s: float,
    figures: dict[str, Any],
    medians: dict[tuple[str, str], float],
    verdicts: bool,
) -> dict[str, Any] | None:
    """The row's ``target`` field (see the module's docstring), or ``None``."""
    key = (scenario, contender)
    if key not in TARGETS and key not in LIMITS:
        return None
    ratios = []
    for reference, at_least in TARGETS.get(key, ()):
        base = medians.get(_reference_key(scenario, reference))
        measured = None if base is None else ops_per_s / base
        ratios.append(
            {
                "reference": reference,
                "at_least": at_least,
                "measured": measured,
                "met": met(measured, at_least, ratio_digits(reference))
                if verdicts and measured is not None
                else None,
            }
        )
    limits = []
    for column, at_most in LIMITS.get(key, ()):
        value = figures.get(column)
        limits.append(
            {
                "column": column,
                "at_most": at_most,
                "measured": value,
                "met": within(value, at_most, COLUMN_DIGITS.get(column, 2))
                if verdicts
                else None,
            }
        )
    judged = [check["met"] for check in (*ratios, *limits) if check["met"] is not None]
    return {
        "ratios": ratios,
        "limits": limits,
        "met": all(judged) if judged else None,
    }


def rows(
    measurements: Sequence[Measurement],
    racy: Sequence[str],
    settings: dict[str, Any],
    verdicts: bool = True,
) -> list[dict[str, Any]]:
    """One row per scenario and contender, in the order they were first run.

    ``racy`` names the contenders allowed to lose updates; ``settings`` (the
    population ``tenants``, ``seed``, ``rounds``) is copied into every row.
    With ``verdicts`` false (a quick or one-round run) targeted rows keep their
    targets and the measured figures, but every ``met`` is ``None``.
    """
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.scenario, measurement.contender), []).append(
            measurement
        )
    medians = {
        key: statistics.median(m.ops_per_s for m in runs)
        for key, runs in groups.items()
    }
    host = machine()
    result = []
    for (scenario, contender), runs in sorted(
        groups.items(), key=lambda item: _first_index(measurements, item[0])
    ):
        ops_per_s = medians[scenario, contender]
        lock = medians.get((scenario, REFERENCE))
        naive = medians.get((scenario, NAIVE))
        growth = [
            m.rss_growth_bytes / m.tenants
            for m in runs
            if m.rss_growth_bytes is not None
        ]
        stalls = [m.loop_stall_ms for m in runs if m.loop_stall_ms is not None]
        figures: dict[str, Any] = {
            "lost_updates": sum(m.lost_updates for m in runs),
            "loop_stall_ms": statistics.median(stalls) if stalls else None,
            "loop_stall_ms_max": max(stalls) if stalls else None,
        }
        per_update = [
            m.commits / m.updates for m in runs if m.commits is not None and m.updates
        ]
        result.append(
            {
                "scenario": scenario,
                "contender": contender,
                "storage": runs[0].storage,
                "ops_per_s": ops_per_s,
                "ratio_to_lock": None if lock is None else ops_per_s / lock,
                "ratio_to_naive": None if naive is None else ops_per_s / naive,
                "p50_us": statistics.median(m.p50_us for m in runs),
                "p99_us": statistics.median(m.p99_us for m in runs),
                **figures,
                "commits_per_update": statistics.median(per_update)
                if per_update
                else None,
                "probe_sessions": sum(m.probe_sessions for m in runs),
                "racy": contender in racy,
                "threads_peak": max(m.threads_peak for m in runs),
                "rss_per_tenant_bytes": max(growth) if growth else None,
                "threads": runs[0].threads,
                "ops": runs[0].ops,
                "updates": runs[0].updates,
                "tenants_touched": runs[0].tenants,
                "seconds": statistics.median(m.seconds for m in runs),
                "runs": len(runs),
                "target": _target(
                    scenario,
                    contender,
                    ops_per_s=ops_per_s,
                    figures=figures,
                    medians=medians,
                    verdicts=verdicts,
                ),
                **settings,
                "machine": host,
            }
        )
    return result


def _first_index(measurements: Sequence[Measurement], key: tuple[str, str]) -> int:
    return next(
        index
        for index, m in enumerate(measurements)
        if (m.scenario, m.contender) == key
    )


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _significant(value: float | None) -> str:
    """Three significant digits, for figures from 1 down to a few in 10,000."""
    return "-" if value is None else f"{value:.3g}"


def _reference_label(reference: str) -> str:
    other, _, contender = reference.rpartition("/")
    return f"x {contender}" + (f" ({other})" if other else "")


def _check_lines(check: dict[str, Any]) -> tuple[str, str, str]:
    """A check as (what, measured, bound) strings, figures as printed."""
    if "reference" in check:
        digits = ratio_digits(check["reference"])
        return (
            _reference_label(check["reference"]),
            _number(check["measured"], digits),
            f">= {check['at_least']:g}",
        )
    column = check["column"]
    return (
        COLUMN_LABELS.get(column, column),
        _number(check["measured"], COLUMN_DIGITS.get(column, 2)),
        f"<= {check['at_most']:g}",
    )


def table(result: Sequence[dict[str, Any]]) -> str:
    """The rows as a fixed-width table, then the targets, for the terminal.

    The targets block gives one line per check of a targeted row, its figure
    as printed and its verdict (``not run`` for a reference missing from the
    run); a run without verdicts gets one line saying so instead.
    """
    width = max([13, *(len(row["contender"]) for row in result)])
    header = (
        f"{'scenario':<11} {'contender':<{width}} {'storage':<9} {'ops/s':>9} "
        f"{'x lock':>7} {'x naive':>7} {'p50 us':>8} {'p99 us':>9} {'threads':>7} "
        f"{'RSS/tenant':>10} {'lost':>5} {'stall ms':>8} {'commits/upd':>11}"
    )
    lines = [header, "-" * len(header)]
    for row in result:
        rss = row["rss_per_tenant_bytes"]
        lines.append(
            f"{row['scenario']:<11} {row['contender']:<{width}} "
            f"{row['storage']:<9} {_number(row['ops_per_s']):>9} "
            f"{_number(row['ratio_to_lock'], LOCK_DIGITS):>7} "
            f"{_number(row['ratio_to_naive'], NAIVE_DIGITS):>7} "
            f"{_number(row['p50_us'], 1):>8} {_number(row['p99_us'], 1):>9} "
            f"{row['threads_peak']:>7} "
            f"{'-' if rss is None else _number(rss) + ' B':>10} "
            f"{row['lost_updates']:>5} "
            f"{_number(row['loop_stall_ms'], COLUMN_DIGITS['loop_stall_ms']):>8} "
            f"{_significant(row['commits_per_update']):>11}"
        )
    checks = [
        (row, check)
        for row in result
        if row["target"] is not None
        for check in (*row["target"]["ratios"], *row["target"]["limits"])
    ]
    if not checks:
        pass
    elif all(check["met"] is None for _, check in checks):
        lines += ["", "targets: no verdicts from a quick or one-round run"]
    else:
        lines += ["", "targets (reported, not asserted):"]
        what = max(len(_check_lines(check)[0]) for _, check in checks)
        for row, check in checks:
            label, figure, bound = _check_lines(check)
            verdict = {True: "met", False: "MISSED", None: "not run"}[check["met"]]
            lines.append(
                f"  {row['scenario']:<11} {row['contender']:<{width}} "
                f"{label:<{what}} {figure:>7} {bound:<8} {verdict}"
            )
    return "\n".join(lines)


def write_json(result: Sequence[dict[str, Any]], path: Path) -> None:
    """``results.json``: the list of rows, indented."""
    path.write_text(json.dumps(list(result), indent=2) + "\n")


def write_chart(result: Sequence[dict[str, Any]], path: Path) -> None:
    """A PNG: ops/s (log scale) and ratio to ``lock``, grouped by scenario.

    Bars are hatched by storage (:data:`HATCHES`) and labelled
    ``contender (storage)`` for the contenders that keep profiles on disk
    (unless the name says it already).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(row["scenario"] for row in result))
    contenders = list(dict.fromkeys(row["contender"] for row in result))
    storage = {row["contender"]: row["storage"] for row in result}
    by_key = {(row["scenario"], row["contender"]): row for row in result}
    width = 0.8 / len(contenders)
    target_label: str | None = "target"
    figure, (speed, ratio) = plt.subplots(1, 2, figsize=(13, 4.8))
    # A colour each: matplotlib's default cycle has ten, there are twelve.
    palette = plt.get_cmap("tab20")
    for index, contender in enumerate(contenders):
        hatch = HATCHES.get(storage[contender], "..")
        colour = palette(index % 20)
        label = (
            contender
            if storage[contender] in ("memory", contender)
            else f"{contender} ({storage[contender]})"
        )
        xs = [
            position + (index - (len(contenders) - 1) / 2) * width
            for position in range(len(scenarios))
        ]
        present = [
            (x, by_key[scenario, contender])
            for x, scenario in zip(xs, scenarios, strict=True)
            if (scenario, contender) in by_key
        ]
        speed.bar(
            [x for x, _ in present],
            [row["ops_per_s"] for _, row in present],
            width,
            label=label,
            hatch=hatch,
            color=colour,
        )
        ratio.bar(
            [x for x, _ in present],
            [row["ratio_to_lock"] or 0.0 for _, row in present],
            width,
            label=label,
            hatch=hatch,
            color=colour,
        )
        targets = [
            (x, check["at_least"])
            for x, row in present
            if row["target"]
            for check in row["target"]["ratios"]
            if check["reference"] == REFERENCE
        ]
        if targets:
            ratio.scatter(
                [x for x, _ in targets],
                [at_least for _, at_least in targets],
                marker="_",
                s=300,
                color="black",
                zorder=3,
                label=target_label,
            )
            target_label = None
    for axes, title in (
        (speed, "operations per second (log scale)"),
        (ratio, "ratio to lock (same run)"),
    ):
        axes.set_xticks(range(len(scenarios)), scenarios)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
    speed.set_yscale("log")
    ratio.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ratio.legend(fontsize="small")
    host = result[0]["machine"] if result else {}
    figure.suptitle(
        f"tenant-dna bench: {host.get('cores')} cores, Python {host.get('python')}, "
        f"pykka {host.get('pykka')}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
