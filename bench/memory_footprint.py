"""Resident memory per tenant stored in memory, at a given population.

Run it in a fresh process (it measures its own RSS)::

    python -m bench.memory_footprint --tenants 1000000
    python -m bench.memory_footprint --tenants 1000000 --store

It stores ``--tenants`` typical profiles (6 tools, 6 peak hours, 4 intents,
drawn from the benchmark's catalogue in ``bench.workload``), one commit per
tenant as the in-memory store does (``--store``: through ``TenantDNAStore()``
itself, ``save`` by ``save``, with its default ``max_resident`` of them held
as objects, or ``--max-resident``), and prints the growth of the process's
resident memory divided by the tenants stored: RSS read from
``/proc/self/statm`` before and after, each time after ``gc.collect()`` and
glibc's ``malloc_trim(0)``. The profiles are drawn one at a time, so only the
stored records remain when the second reading is taken. ``--json`` prints the
figures as one JSON object instead.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

from bench.workload import INTENTS, TOOLS
from dna import TenantDNA
from storage import Change, MemoryStorage

TOOLS_PER_TENANT = 6
HOURS_PER_TENANT = 6
INTENTS_PER_TENANT = 4


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one measurement found."""

    tenants: int
    rss_before: int
    rss_after: int
    seconds: float

    @property
    def bytes_per_tenant(self) -> float:
        """RSS growth divided by the tenants stored."""
        return (self.rss_after - self.rss_before) / self.tenants


def rss_bytes() -> int:
    """Resident memory now, after a full collection and a heap trim."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def typical_profile(rng: random.Random) -> TenantDNA:
    """A profile as a tenant's first weeks leave it: 6 tools, 6 hours, 4 intents."""
    return TenantDNA(
        avg_task_complexity=rng.random(),
        preferred_model_tier=rng.choice(("orchestrator", "worker")),
        avg_tokens_per_task=rng.randint(300, 30_000),
        tool_usage_frequency={
            tool: rng.random() for tool in rng.sample(TOOLS, TOOLS_PER_TENANT)
        },
        peak_hours=rng.sample(range(24), HOURS_PER_TENANT),
        risk_profile=rng.random(),
        common_intents=rng.sample(INTENTS, INTENTS_PER_TENANT),
        last_updated=1_700_000_000.0 + rng.random() * 30_000_000,
    )


def measure(
    tenants: int, seed: int = 1, *, store: bool = False, max_resident: int | None = None
) -> Footprint:
    """Store ``tenants`` typical profiles in a new ``MemoryStorage`` (or a new
    in-memory ``TenantDNAStore``, holding ``max_resident`` of them as objects,
    its default if ``None``); measure RSS."""
    if tenants < 1:
        msg = f"tenants: expected at least 1, got {tenants}"
        raise ValueError(msg)
    rng = random.Random(seed)
    if store:
        from actors import TenantDNAStore

        options = {} if max_resident is None else {"max_resident": max_resident}
        with TenantDNAStore(**options) as opened:
            before = rss_bytes()
            started = time.perf_counter()
            for rank in range(tenants):
                opened.save(f"tenant-{rank:05d}", typical_profile(rng))
            opened.flush()
            seconds = time.perf_counter() - started
            after = rss_bytes()
            stored = opened.stats().tenants
    else:
        storage = MemoryStorage()
        before = rss_bytes()
        started = time.perf_counter()
        for rank in range(tenants):
            storage.commit([Change(f"tenant-{rank:05d}", typical_profile(rng), 0, 0)])
        seconds = time.perf_counter() - started
        after = rss_bytes()
        stored = storage.count()
    if stored != tenants:  # pragma: no cover - a broken backend
        msg = f"stored {stored} tenants, expected {tenants}"
        raise AssertionError(msg)
    return Footprint(tenants, before, after, seconds)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, print."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory_footprint", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tenants", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store",
        action="store_true",
        help="store through TenantDNAStore() (default: MemoryStorage alone)",
    )
    parser.add_argument(
        "--max-resident",
        type=int,
        default=None,
        help="with --store: profiles held as objects (default: the store's)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args(argv)
    if arguments.tenants < 1:
        parser.error("--tenants: expected at least 1")
    footprint = measure(
        arguments.tenants,
        arguments.seed,
        store=arguments.store,
        max_resident=arguments.max_resident,
    )
    if arguments.json:
        print(
            json.dumps(
                {**asdict(footprint), "bytes_per_tenant": footprint.bytes_per_tenant}
            )
        )
    else:
        print(
            f"{footprint.tenants:,} tenants stored in {footprint.seconds:.1f} s: "
            f"RSS {footprint.rss_before / 2**20:,.1f} MiB -> "
            f"{footprint.rss_after / 2**20:,.1f} MiB, "
            f"{footprint.bytes_per_tenant:,.0f} bytes per tenant"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
