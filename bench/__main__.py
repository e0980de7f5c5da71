"""``python -m bench``: measure every contender on every scenario, interleaved.

Prints a table, writes ``results.json`` and ``results.png`` to ``--out``
(default ``bench-results/``). The default run takes about two and a half
minutes on two cores; ``--quick`` takes seconds and is what the test suite
runs. Targets get a verdict only from a run of two rounds or more that is not
``--quick``: one run is a sample, not a median, and a quick run is too small to
judge.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import structlog

from bench.contenders import CONTENDERS
from bench.report import rows, table, write_chart, write_json
from bench.run import run_all
from bench.workload import SCENARIOS, Workload

DEFAULTS = {"tenants": 10_000, "ops": 16_000, "rounds": 3}
QUICK = {"tenants": 200, "ops": 1_600, "rounds": 1}


class Progress:
    """A one-line progress bar on a terminal, one line per step elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._tty = stream.isatty()
        self._began = time.monotonic()

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = self._width * done // max(1, total)
        line = (
            f"[{'#' * filled}{'.' * (self._width - filled)}] {done}/{total} "
            f"{time.monotonic() - self._began:5.0f}s {label}"
        )
        if self._tty:
            end = "\n" if done == total else ""
            self._stream.write(f"\r{line:<90}{end}")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` changes the defaults, explicit values win."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the tenant DNA store against a lock, naive actors "
        "and what a user would use for durable profiles (SQLite, diskcache).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a run of seconds: 200 tenants, 1 round"
    )
    parser.add_argument(
        "--tenants", type=int, help="tenant population (default 10,000; quick 200)"
    )
    parser.add_argument(
        "--ops",
        type=int,
        help="operations per run (default 16,000; quick 1,600); routing runs 4x, "
        "naive-actors and lock-sqlite a quarter, diskcache and store-sqlite half",
    )
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds (default 3; quick 1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument(
        "--contenders",
        default=",".join(spec.name for spec in CONTENDERS),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(scenario.name for scenario in SCENARIOS),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="output folder (default bench-results/)",
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("tenants", "ops", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for name, known in (
        ("contenders", [spec.name for spec in CONTENDERS]),
        ("scenarios", [scenario.name for scenario in SCENARIOS]),
    ):
        unknown = set(getattr(args, name).split(",")) - set(known)
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    # The store logs events at debug level; the bench wants warnings only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    chosen = args.contenders.split(",")
    specs = [spec for spec in CONTENDERS if spec.name in chosen]
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    workload = Workload(tenants=args.tenants, seed=args.seed)
    plans = [workload.plan(scenario, args.ops) for scenario in scenarios]
    measurements = run_all(plans, specs, args.rounds, args.ops, Progress())
    result = rows(
        measurements,
        racy=[spec.name for spec in specs if spec.racy],
        settings={"tenants": args.tenants, "seed": args.seed, "rounds": args.rounds},
        verdicts=not args.quick and args.rounds > 1,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out / "results.json")
    write_chart(result, args.out / "results.png")
    print(table(result))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
