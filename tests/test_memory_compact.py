"""MemoryStorage's compact records: exact round-trips, the same rules as
``check_profile``, nothing left of an erased tenant, and the memory it takes.

The semantics every backend shares are in ``test_storage.py``; these are the
promises of the encoding (``storage._packed``, which SQLite stores too).
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import storage._packed
import storage._records
from dna import InvalidDNA, TenantDNA, check_profile
from storage import Change, Committed, MemoryStorage, Record, StorageError
from tests.strategies import HOSTILE_STR_TYPES, awkward_profiles, profiles

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT = 300.0
MAX_BYTES_PER_TENANT = 600


def _bits(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every float as its IEEE bytes (so -0.0 differs from 0.0)."""

    def bits(value: Any) -> Any:
        if isinstance(value, float):
            return struct.pack("<d", value)
        if isinstance(value, dict):
            return {key: bits(item) for key, item in value.items()}
        return value

    return {key: bits(value) for key, value in data.items()}


def _stored(storage_: MemoryStorage) -> dict[str, bytes]:
    return storage_._db.records


# -- round trips -------------------------------------------------------------


@given(st.one_of(profiles, awkward_profiles))
def test_a_stored_profile_loads_back_exactly(data: dict[str, Any]) -> None:
    dna = TenantDNA.from_dict(data)
    opened = MemoryStorage()
    (outcome,) = opened.commit([Change("acme", dna, 0, 0)])
    assert isinstance(outcome, Committed)
    record = opened.load("acme")
    assert record == Record(dna, 1, outcome.incarnation)
    assert _bits(record.dna.to_dict()) == _bits(dna.to_dict())
    assert list(record.dna.tool_usage_frequency) == list(dna.tool_usage_frequency)
    assert TenantDNA.from_dict(record.dna.to_dict()) == dna
    assert record.dna is not dna
    assert opened.load("acme") == record
    assert opened.load("acme").dna is not record.dna  # type: ignore[union-attr]
    assert opened.check() == []


@given(
    st.lists(st.one_of(profiles, awkward_profiles), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=2**63 - 1),
    st.integers(min_value=1, max_value=2**63 - 1),
)
def test_restored_records_scan_back_exactly(
    datas: list[dict[str, Any]], version: int, incarnation: int
) -> None:
    records = [
        (f"tenant-{n}", Record(TenantDNA.from_dict(data), version, incarnation))
        for n, data in enumerate(datas)
    ]
    opened = MemoryStorage()
    opened.restore(records)
    scanned = list(opened.scan(batch=1))
    assert scanned == records
    assert [_bits(r.dna.to_dict()) for _, r in scanned] == [
        _bits(r.dna.to_dict()) for _, r in records
    ]
    assert opened.check() == []


def test_versions_and_incarnations_follow_the_record_through_writes() -> None:
    opened = MemoryStorage()
    opened.restore([("acme", Record(TenantDNA(last_updated=1.0), 2**63 - 1, 5))])
    (outcome,) = opened.commit(
        [Change("acme", TenantDNA(last_updated=2.0), 2**63 - 1, 5)]
    )
    assert outcome == Committed(2**63, 5)
    assert opened.load("acme") == Record(TenantDNA(last_updated=2.0), 2**63, 5)
    assert opened.check() == []


def test_a_version_beyond_64_bits_is_refused_by_restore() -> None:
    opened = MemoryStorage()
    with pytest.raises(ValueError, match=r"'acme'.*version"):
        opened.restore([("acme", Record(TenantDNA(), 2**63, 5))])
    assert opened.count() == 0


# -- the rules of check_profile ----------------------------------------------

_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=30),
    st.integers(min_value=10**12 - 1, max_value=10**12 + 1),
    st.floats(),
    st.text(max_size=3),
    st.sampled_from(["worker", "orchestrator", "x" * 200, "x" * 201]),
    st.builds(lambda kind: kind("worker"), st.sampled_from(HOSTILE_STR_TYPES)),
    st.lists(
        st.one_of(st.integers(-1, 25), st.booleans(), st.text(max_size=2)), max_size=4
    ),
    st.lists(st.integers(0, 23), max_size=14).map(tuple),
    st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers()),
        st.one_of(st.floats(), st.integers(-1, 2), st.booleans()),
        max_size=3,
    ),
)


@given(profiles, st.sampled_from(sorted(TenantDNA().to_dict())), _any_value)
def test_commit_accepts_and_refuses_exactly_what_check_profile_does(
    data: dict[str, Any], field: str, value: Any
) -> None:
    dna = TenantDNA.from_dict(data)
    setattr(dna, field, value)
    opened = MemoryStorage()
    refused: str | None = None
    try:
        expected = check_profile(dna)
    except InvalidDNA as error:
        refused = error.field
    if refused is not None:
        with pytest.raises(InvalidDNA, match="'acme'") as raised:
            opened.commit([Change("acme", dna, 0, 0)])
        assert raised.value.field == refused
        assert opened.count() == 0
        return
    opened.commit([Change("acme", dna, 0, 0)])
    record = opened.load("acme")
    assert record is not None
    assert record.dna == expected
    assert _bits(record.dna.to_dict()) == _bits(expected.to_dict())
    assert type(record.dna.preferred_model_tier) is str
    assert all(type(name) is str for name in record.dna.common_intents)
    assert opened.check() == []


def test_a_canonical_profile_is_checked_by_packing_it_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(profile: Any) -> TenantDNA:
        raise AssertionError("check_profile called for a canonical profile")

    monkeypatch.setattr(storage._records, "check_profile", refuse)
    dna = TenantDNA(
        tool_usage_frequency={"web_search": 0.5, "sql\x00query": 0.25},
        peak_hours=[9, 10],
        common_intents=["debugging"],
        last_updated=1.0,
    )
    opened = MemoryStorage()
    opened.commit([Change("acme", dna, 0, 0)])
    assert opened.load("acme") == Record(dna, 1, opened.load("acme").incarnation)  # type: ignore[union-attr]


def test_a_profile_in_other_types_is_stored_in_canonical_ones() -> None:
    dna = TenantDNA(
        avg_task_complexity=1,
        preferred_model_tier=HOSTILE_STR_TYPES[0]("worker"),
        avg_tokens_per_task=7,
        tool_usage_frequency={"search": 1},
        peak_hours=(3, 4),  # type: ignore[arg-type]
        risk_profile=0,
        common_intents=[HOSTILE_STR_TYPES[2]("chat")],
        last_updated=12,
    )
    opened = MemoryStorage()
    opened.commit([Change("acme", dna, 0, 0)])
    record = opened.load("acme")
    assert record is not None
    assert record.dna == check_profile(dna)
    assert type(record.dna.avg_task_complexity) is float
    assert type(record.dna.peak_hours) is list
    assert type(record.dna.common_intents[0]) is str


# -- erasure -----------------------------------------------------------------


def test_an_erased_tenant_leaves_nothing_in_the_storage_object() -> None:
    opened = MemoryStorage()
    other = opened.clone()
    secret = "tenant-wqzx"
    secrets = [secret, "tool-wqzx", "intent-wqzx", "other-intent-wqzx"]
    shared = TenantDNA(
        tool_usage_frequency={"web_search": 0.5},
        common_intents=["chat"],
        last_updated=1.0,
    )
    opened.commit([Change(f"neighbour-{n}", shared, 0, 0) for n in range(3)])
    (created,) = opened.commit(
        [
            Change(
                secret,
                TenantDNA(
                    tool_usage_frequency={"tool-wqzx": 0.25, "web_search": 0.5},
                    common_intents=["intent-wqzx", "chat", "other-intent-wqzx"],
                    last_updated=2.0,
                ),
                0,
                0,
            )
        ]
    )
    assert isinstance(created, Committed)
    assert any(b"tool-wqzx" in value for value in _stored(opened).values())
    other.commit([Change(secret, None, 0, 0, force=True)])
    db = opened._db
    assert secret not in db.records
    assert secret not in db.claims
    assert db.claims == {}
    for value in db.records.values():
        for text in secrets:
            assert text.encode() not in value
    # The erasure log keeps the erased incarnation, a bare int.
    assert [incarnation for _, incarnation in db.erased] == [created.incarnation]
    # Nothing else in the module or the database holds a tenant's data.
    assert all(
        isinstance(layout, struct.Struct) for layout in storage._packed._FREQUENCIES
    )
    assert set(db.__slots__) == {
        "claims",
        "clock",
        "erased",
        "erased_floor",
        "pruner",
        "records",
    }
    assert opened.tenants() == ["neighbour-0", "neighbour-1", "neighbour-2"]


# -- damage --------------------------------------------------------------------


def test_a_damaged_record_is_reported_naming_the_tenant() -> None:
    opened = MemoryStorage()
    opened.commit(
        [
            Change("acme", TenantDNA(peak_hours=[9], last_updated=1.0), 0, 0),
            Change("globex", TenantDNA(last_updated=1.0), 0, 0),
            Change("initech", TenantDNA(last_updated=1.0), 0, 0),
            Change(
                "umbrella",
                TenantDNA(
                    tool_usage_frequency={"ab": 0.5, "cd": 0.5}, last_updated=1.0
                ),
                0,
                0,
            ),
        ]
    )
    records = _stored(opened)
    good = records["acme"]
    records["acme"] = good.replace(bytes([9]), bytes([99]))  # hour 99
    records["globex"] = records["globex"][:10]  # truncated
    records["umbrella"] = records["umbrella"].replace(b"cd", b"ab")  # a duplicate
    with pytest.raises(StorageError, match="'globex'"):
        opened.load("globex")
    with pytest.raises(StorageError, match="'globex'"):
        list(opened.scan())
    problems = opened.check()
    assert len(problems) == 3, problems
    acme, globex, umbrella = sorted(problems, key=lambda p: p.split("'")[1])
    assert "'acme'" in acme
    assert "peak_hours" in acme
    assert "'globex'" in globex
    assert "'umbrella'" in umbrella
    assert opened.load("initech") is not None


# -- memory --------------------------------------------------------------------


def _footprint(*options: str) -> dict[str, Any]:
    """``python -m bench.memory_footprint`` on 50,000 tenants, in a fresh
    process; its figures."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.memory_footprint",
            "--tenants",
            "50000",
            *options,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    assert figures["tenants"] == 50_000
    return figures


def test_rss_per_tenant_of_the_in_memory_store_is_at_most_600_bytes() -> None:
    # The store itself, with a tenth of its tenants held as objects, as its
    # default max_resident holds at 1,000,000 (where it measures ~525 bytes
    # each: python -m bench.memory_footprint --store; 596 while a cell was a
    # deque, 928 bytes idle).
    figures = _footprint("--store", "--max-resident", "5000")
    assert 0 < figures["bytes_per_tenant"] <= MAX_BYTES_PER_TENANT, figures


def test_rss_per_stored_tenant_is_at_most_600_bytes() -> None:
    # 50,000 typical tenants in a fresh process; 1,000,000 take ~15 s and
    # measure ~370 bytes each (python -m bench.memory_footprint).
    figures = _footprint()
    assert 0 < figures["bytes_per_tenant"] <= MAX_BYTES_PER_TENANT, figures
    assert math.isfinite(figures["seconds"])
