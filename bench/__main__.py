"""``python -m bench``: measure every contender on every scenario, interleaved.

Prints a table, writes ``results.json`` and ``results.png`` to ``--out``
(default ``bench-results/``). The default run takes about two and a half
minutes on two cores; ``--quick`` takes seconds and is what the test suite
runs. Targets get a verdict only from a run of two rounds or more that is not
``--quick``: one run is a sample, not a median, and a quick run is too small to
judge.

``--url`` runs the store's durable contenders (``store-sqlite*``) on other
storage than a fresh SQLite file in a temporary folder: an SQLite path or
``sqlite:///`` URL (a fresh file of that name per run, in a new folder beside
it, removed at the end: the disk is chosen, no file of yours is touched) or a
``postgresql://`` URL (a database the bench creates on that server, emptied
before each run and dropped at the end; the role needs ``CREATEDB``). The
``processes`` benchmark is ``python -m bench.processes --url postgresql://…``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import structlog

from bench.contenders import CONTENDERS, ContenderSpec, contenders
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
    parser.add_argument(
        "--url",
        help="run the store-sqlite* contenders on this storage instead of a "
        "fresh temporary SQLite file: an SQLite path or sqlite:/// URL (fresh "
        "files of that name in a new folder beside it) or postgresql://... (a "
        "database the bench creates there and drops; the role needs CREATEDB)",
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


@contextlib.contextmanager
def durable_contenders(url: str | None) -> Iterator[tuple[ContenderSpec, ...]]:
    """:data:`CONTENDERS`, or with ``url`` the store's durable ones on it."""
    if url is None:
        yield CONTENDERS
        return
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from bench.processes import bench_database, empty

        with bench_database(url) as database:
            yield contenders(database, "postgres", lambda: empty(database))
        return
    if scheme not in ("", "sqlite"):
        raise SystemExit("--url: expected an SQLite path or URL or postgresql://...")
    path = Path(url[len("sqlite:///") :] if scheme else url)
    with tempfile.TemporaryDirectory(
        prefix="bench-store-", dir=path.parent.resolve()
    ) as folder:
        fresh_path = Path(folder) / path.name
        yield contenders(f"sqlite:///{fresh_path}", "sqlite", _remover(fresh_path))


def _remover(path: Path) -> Callable[[], None]:
    """Remove ``path`` and its SQLite companions (a file of the bench's own)."""

    def remove() -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")

    return remove


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    # The store logs events at debug level; the bench wants warnings only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    chosen = args.contenders.split(",")
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    workload = Workload(tenants=args.tenants, seed=args.seed)
    plans = [workload.plan(scenario, args.ops) for scenario in scenarios]
    with durable_contenders(args.url) as every:
        specs = [spec for spec in every if spec.name in chosen]
        measurements = run_all(plans, specs, args.rounds, Progress())
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
