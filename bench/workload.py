"""A seeded, reproducible workload: Zipf tenants with coherent sessions.

Every tenant has a latent profile (its own mean complexity, preferred tier,
token median, a few favourite tools, a time zone, habitual intents and a risk
level), so its sessions look like one customer's and not like noise. Tenant ids
are drawn Zipf (s = 1.1): a few tenants are very busy, most are rarely seen.

Operations are generated up front, one list per thread, so generation never
runs inside the timed region. The same seed gives the same operations.

**Probes.** Lost updates are counted, not guessed: a few dedicated probe
tenants (outside the Zipf population) receive only sessions with
``task_complexity = 1.0`` at ``alpha = 0.01``. From the default 0.5, ``n``
such sessions leave ``1 - 0.5 * 0.99**n``, so ``n`` is recovered exactly from
the profile (:func:`applied_sessions`) and compared with the number sent.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

TOOLS = (
    "web_search",
    "code_interpreter",
    "file_reader",
    "file_writer",
    "sql_query",
    "http_request",
    "calendar",
    "email_send",
    "email_search",
    "slack_post",
    "jira_ticket",
    "github_pr",
    "github_search",
    "shell",
    "browser",
    "image_gen",
    "image_caption",
    "pdf_extract",
    "spreadsheet",
    "translate",
    "summariser",
    "vector_search",
    "crm_lookup",
    "invoice_parse",
    "payment_refund",
    "weather",
    "maps",
    "calculator",
    "ocr",
    "speech_to_text",
)
"""The tool catalogue (30 tools); each tenant uses 2 to 6 of them."""

INTENTS = (
    "code_generation",
    "code_review",
    "debugging",
    "data_analysis",
    "summarisation",
    "translation",
    "customer_support",
    "research",
    "report_writing",
    "scheduling",
    "billing",
    "content_creation",
)
"""The intent categories (12); each tenant has 1 to 4 habitual ones."""

ZIPF_S = 1.1
"""The Zipf exponent of tenant popularity."""

PROBE_COMPLEXITY = 1.0
PROBE_ALPHA = 0.01
SESSION_ALPHA = 0.2
"""``alpha`` of ordinary sessions: the store's default."""

PROBE_EVERY = 10
"""One update in ten of each thread (or coroutine) goes to a probe tenant."""

MAX_PROBE_SESSIONS = 2000
"""Sessions per probe tenant per run. Recovery is exact to about 2,970; beyond
that the complexity is within a few ulps of 1.0 and ``n`` is lost."""


class Op(NamedTuple):
    """One operation: a read (``get``) or a session update of one tenant."""

    update: bool
    tenant: str
    metrics: Mapping[str, Any]
    alpha: float


_READ: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LatentProfile:
    """What a tenant is really like; its sessions scatter around it."""

    complexity: float
    tier: str
    tier_loyalty: float
    token_median: float
    tools: tuple[str, ...]
    tool_weights: tuple[int, ...]
    peak_hour: int
    intents: tuple[str, ...]
    intent_weights: tuple[int, ...]
    risk: float

    @classmethod
    def draw(cls, rng: random.Random) -> LatentProfile:
        """A random tenant: complex tenants tend to prefer the orchestrator."""
        complexity = rng.betavariate(2.0, 2.5)
        tools = tuple(rng.sample(TOOLS, rng.randint(2, 6)))
        intents = tuple(rng.sample(INTENTS, rng.randint(1, 4)))
        return cls(
            complexity=complexity,
            tier="orchestrator" if rng.random() < complexity else "worker",
            tier_loyalty=rng.uniform(0.7, 0.95),
            token_median=math.exp(rng.uniform(math.log(300), math.log(30_000))),
            tools=tools,
            tool_weights=tuple(rng.randint(1, 10) for _ in tools),
            peak_hour=rng.randrange(24),
            intents=intents,
            intent_weights=tuple(rng.randint(1, 10) for _ in intents),
            risk=rng.betavariate(2.0, 5.0),
        )

    def session(self, rng: random.Random) -> dict[str, Any]:
        """One session's metrics, valid for ``dna.parse_session_metrics``."""
        other_tier = "worker" if self.tier == "orchestrator" else "orchestrator"
        used = rng.randint(1, len(self.tools))
        picked = rng.choices(self.tools, weights=self.tool_weights, k=used)
        return {
            "task_complexity": _unit(rng.gauss(self.complexity, 0.12)),
            "model_tier": self.tier if rng.random() < self.tier_loyalty else other_tier,
            "tokens_used": max(
                1, round(rng.lognormvariate(0.0, 0.6) * self.token_median)
            ),
            "tools_used": {tool: rng.randint(1, 8) for tool in picked},
            "hour_utc": round(rng.gauss(self.peak_hour, 2.5)) % 24,
            "risk_score": _unit(rng.gauss(self.risk, 0.08)),
            "intent": rng.choices(self.intents, weights=self.intent_weights)[0],
        }

    def probe_session(self, rng: random.Random) -> dict[str, Any]:
        """A session like :meth:`session`, its complexity pinned to 1.0."""
        return self.session(rng) | {"task_complexity": PROBE_COMPLEXITY}


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def applied_sessions(complexity: float) -> int:
    """How many probe sessions a probe profile has applied.

    Inverts ``complexity = 1 - 0.5 * 0.99**n`` (from the default 0.5); exact
    up to :data:`MAX_PROBE_SESSIONS` and beyond. Raises ``ValueError`` for a
    complexity that no number of probe sessions gives.
    """
    if not 0.5 <= complexity < 1.0:
        raise ValueError(f"not a probe profile: complexity {complexity!r}")
    return round(math.log((1.0 - complexity) / 0.5) / math.log(1.0 - PROBE_ALPHA))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A pattern of traffic: ``threads`` workers, a share of reads, or one tenant."""

    name: str
    description: str
    threads: int
    read_share: float = 0.0
    hot: bool = False
    scale: int = 1
    """Operations per run, as a multiple of the base count (reads are cheap)."""
    coroutines: int = 0
    """Coroutines in one event loop that share the operations instead of the
    threads (``threads`` is then the loop's one); 0 for a threaded scenario."""

    @property
    def lanes(self) -> int:
        """The operation lists of a phase: one per coroutine, or per thread."""
        return self.coroutines or self.threads


SCENARIOS = (
    Scenario("finalise", "16 threads finishing sessions (updates only)", 16),
    Scenario(
        "routing", "16 threads, 95 % get / 5 % update", 16, read_share=0.95, scale=4
    ),
    Scenario("hot-tenant", "16 threads finishing sessions of one tenant", 16, hot=True),
    Scenario(
        "asyncio",
        "1,000 coroutines in one event loop finishing sessions (updates only)",
        1,
        coroutines=1000,
    ),
)
"""Every scenario, in table order. ``asyncio`` is run only by the contenders
that drive coroutines (``ContenderSpec.coroutines``), the others only by the
contenders that drive threads."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The operations of one run of a scenario, identical for every contender.

    ``phases[p][t]`` is thread (or coroutine) ``t``'s list in phase ``p``;
    phases run one after another (a barrier between them, outside the clock). Only
    ``hot-tenant`` has more than one: each phase has its own hot tenant, so no
    probe exceeds :data:`MAX_PROBE_SESSIONS`. ``probes`` maps each probe tenant
    to the sessions sent to it. ``warm`` gives every other tenant the run
    touches one ordinary session before the clock starts, so reads find stored
    profiles as they would in a running service.
    """

    scenario: Scenario
    phases: tuple[tuple[tuple[Op, ...], ...], ...]
    probes: dict[str, int]
    warm: tuple[Op, ...]

    @property
    def ops(self) -> int:
        """Operations in the timed region, all threads and phases together."""
        return sum(len(ops) for phase in self.phases for ops in phase)

    @property
    def updates(self) -> int:
        """How many of :attr:`ops` are updates."""
        return sum(op.update for phase in self.phases for ops in phase for op in ops)

    @property
    def tenants(self) -> int:
        """Distinct tenants the run touches, probes included."""
        return len(self.warm) + len(self.probes)

    def head(self, ops: int) -> Plan:
        """The same plan cut to about ``ops`` operations: the first ones of
        every thread in every phase, with the probe counts and warm-up to match.
        """
        if ops >= self.ops:
            return self
        fraction = ops / self.ops
        phases = tuple(
            tuple(ops_[: max(1, round(len(ops_) * fraction))] for ops_ in phase)
            for phase in self.phases
        )
        touched = {op.tenant for phase in phases for ops_ in phase for op in ops_}
        warm = tuple(op for op in self.warm if op.tenant in touched)
        return _plan(self.scenario, phases, warm)


class Workload:
    """The tenant population and its traffic, from one seed.

    ``Workload(tenants=10_000, seed=1)`` draws a latent profile per tenant; the
    tenant of Zipf rank ``k`` (0 = busiest) is ``tenant-{k:05d}``.
    """

    def __init__(self, tenants: int = 10_000, seed: int = 1) -> None:
        if tenants < 1:
            raise ValueError(f"tenants: expected at least 1, got {tenants}")
        self.seed = seed
        rng = random.Random(f"{seed}:population")
        self.tenant_ids = tuple(f"tenant-{rank:05d}" for rank in range(tenants))
        self.profiles = {tenant: LatentProfile.draw(rng) for tenant in self.tenant_ids}
        self._cum_weights = tuple(
            itertools.accumulate(1.0 / (rank + 1) ** ZIPF_S for rank in range(tenants))
        )

    def draw_tenants(self, rng: random.Random, count: int) -> list[str]:
        """``count`` tenant ids drawn Zipf (s = 1.1) over the population."""
        return rng.choices(self.tenant_ids, cum_weights=self._cum_weights, k=count)

    def plan(self, scenario: Scenario, ops: int) -> Plan:
        """About ``ops * scenario.scale`` operations, split evenly over the
        threads (or coroutines: :attr:`Scenario.lanes`)."""
        lanes = scenario.lanes
        per_thread = max(1, ops * scenario.scale // lanes)
        if scenario.hot:
            return self._hot_plan(scenario, per_thread)
        probe_updates = math.ceil(per_thread / PROBE_EVERY) * lanes
        probe_ids = tuple(
            f"probe-{index:02d}"
            for index in range(max(8, math.ceil(probe_updates / MAX_PROBE_SESSIONS)))
        )
        probe_rng = random.Random(f"{self.seed}:probes")
        probe_profiles = [LatentProfile.draw(probe_rng) for _ in probe_ids]
        threads: list[tuple[Op, ...]] = []
        for thread in range(lanes):
            rng = random.Random(f"{self.seed}:{scenario.name}:{thread}")
            tenants = self.draw_tenants(rng, per_thread)
            ops_of_thread: list[Op] = []
            updates = 0
            for tenant in tenants:
                if rng.random() < scenario.read_share:
                    ops_of_thread.append(Op(False, tenant, _READ, 0.0))
                    continue
                # Offset by the lane, so that lists shorter than PROBE_EVERY
                # (1,000 coroutines, a quick run) still send one update in ten
                # to a probe, not their first one each.
                if (updates + thread) % PROBE_EVERY == 0:
                    index = (thread + updates // PROBE_EVERY) % len(probe_ids)
                    session = probe_profiles[index].probe_session(rng)
                    ops_of_thread.append(
                        Op(True, probe_ids[index], session, PROBE_ALPHA)
                    )
                else:
                    session = self.profiles[tenant].session(rng)
                    ops_of_thread.append(Op(True, tenant, session, SESSION_ALPHA))
                updates += 1
            threads.append(tuple(ops_of_thread))
        warm_rng = random.Random(f"{self.seed}:{scenario.name}:warm")
        warm = tuple(
            Op(True, tenant, self.profiles[tenant].session(warm_rng), SESSION_ALPHA)
            for tenant in sorted(
                {op.tenant for ops in threads for op in ops} - set(probe_ids)
            )
        )
        return _plan(scenario, (tuple(threads),), warm)

    def _hot_plan(self, scenario: Scenario, per_thread: int) -> Plan:
        count = math.ceil(per_thread / (MAX_PROBE_SESSIONS // scenario.threads))
        per_phase = math.ceil(per_thread / count)
        rng = random.Random(f"{self.seed}:{scenario.name}")
        phases = []
        for index in range(count):
            tenant = f"hot-{index:02d}"
            profile = LatentProfile.draw(rng)
            phases.append(
                tuple(
                    tuple(
                        Op(True, tenant, profile.probe_session(rng), PROBE_ALPHA)
                        for _ in range(per_phase)
                    )
                    for _ in range(scenario.lanes)
                )
            )
        return _plan(scenario, tuple(phases), ())


def _plan(
    scenario: Scenario,
    phases: tuple[tuple[tuple[Op, ...], ...], ...],
    warm: tuple[Op, ...],
) -> Plan:
    # Probe sessions are the only ones sent with PROBE_ALPHA.
    sent = Counter(
        op.tenant
        for phase in phases
        for ops in phase
        for op in ops
        if op.update and op.alpha == PROBE_ALPHA
    )
    return Plan(scenario, phases, dict(sorted(sent.items())), warm)
