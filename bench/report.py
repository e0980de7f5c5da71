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
* ``target`` — for the store's rows, ``{"ratio_to_lock", "ratio_to_naive",
  "met"}``, else ``None``. ``met`` judges the ratios as the table prints them
  (:func:`printed`: 0.5954 prints as 0.60 and meets 0.60), and is ``None`` when
  the run gives no verdicts: a ``--quick`` or one-round run has no median to
  judge, so it prints figures only.
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

TARGETS: dict[tuple[str, str], tuple[float, float]] = {
    ("finalise", "store-ack"): (0.30, 3.0),
    ("finalise", "store-async"): (0.60, 3.0),
    ("routing", "store-ack"): (0.80, 20.0),
    ("routing", "store-async"): (0.80, 20.0),
    ("hot-tenant", "store-ack"): (0.30, 3.0),
    ("hot-tenant", "store-async"): (0.30, 3.0),
}
"""What the store is measured against: (ratio to lock, ratio to naive-actors)."""

REFERENCE = "lock"
NAIVE = "naive-actors"

LOCK_DIGITS = 2
NAIVE_DIGITS = 1
"""Decimals the table prints ``x lock`` and ``x naive`` with; verdicts use them."""

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
    target but ``met`` is ``None``.
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
        ratio_to_lock = None if lock is None else ops_per_s / lock
        ratio_to_naive = None if naive is None else ops_per_s / naive
        target = TARGETS.get((scenario, contender))
        result.append(
            {
                "scenario": scenario,
                "contender": contender,
                "storage": runs[0].storage,
                "ops_per_s": ops_per_s,
                "ratio_to_lock": ratio_to_lock,
                "ratio_to_naive": ratio_to_naive,
                "p50_us": statistics.median(m.p50_us for m in runs),
                "p99_us": statistics.median(m.p99_us for m in runs),
                "lost_updates": sum(m.lost_updates for m in runs),
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
                "target": None
                if target is None
                else {
                    "ratio_to_lock": target[0],
                    "ratio_to_naive": target[1],
                    "met": (
                        met(ratio_to_lock, target[0], LOCK_DIGITS)
                        and met(ratio_to_naive, target[1], NAIVE_DIGITS)
                    )
                    if verdicts
                    else None,
                },
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


def table(result: Sequence[dict[str, Any]]) -> str:
    """The rows as a fixed-width table, then the targets, for the terminal.

    The targets block gives a verdict per targeted row; a run without verdicts
    (``met`` is ``None``) gets one line saying so instead.
    """
    width = max([13, *(len(row["contender"]) for row in result)])
    header = (
        f"{'scenario':<11} {'contender':<{width}} {'storage':<9} {'ops/s':>9} "
        f"{'x lock':>7} {'x naive':>7} {'p50 us':>8} {'p99 us':>9} {'threads':>7} "
        f"{'RSS/tenant':>10} {'lost':>5}"
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
            f"{row['lost_updates']:>5}"
        )
    targeted = [row for row in result if row["target"] is not None]
    judged = [row for row in targeted if row["target"]["met"] is not None]
    if targeted and not judged:
        lines += ["", "targets: no verdicts from a quick or one-round run"]
    elif judged:
        lines += ["", "targets (reported, not asserted):"]
        for row in judged:
            target = row["target"]
            lines.append(
                f"  {row['scenario']:<11} {row['contender']:<{width}} "
                f"x lock {_number(row['ratio_to_lock'], LOCK_DIGITS):>5} "
                f">= {target['ratio_to_lock']:.2f}   "
                f"x naive {_number(row['ratio_to_naive'], NAIVE_DIGITS):>6} "
                f">= {target['ratio_to_naive']:.0f}   "
                f"{'met' if target['met'] else 'MISSED'}"
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
    for index, contender in enumerate(contenders):
        hatch = HATCHES.get(storage[contender], "..")
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
        )
        ratio.bar(
            [x for x, _ in present],
            [row["ratio_to_lock"] or 0.0 for _, row in present],
            width,
            label=label,
            hatch=hatch,
        )
        targets = [(x, row["target"]) for x, row in present if row["target"]]
        if targets:
            ratio.scatter(
                [x for x, _ in targets],
                [target["ratio_to_lock"] for _, target in targets],
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
