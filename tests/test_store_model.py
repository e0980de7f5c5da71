"""The store behaves as a plain dict of profiles, whatever the calls' order.

A hypothesis state machine drives a store and a dict model side by side, and
compares every answer: in memory and on an SQLite file, with two actors and
two resident profiles, so most calls evict a tenant or read one back from
storage, and with a version check on every read.
"""

from __future__ import annotations

import tempfile
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from actors import TenantDNAStore
from dna import TenantDNA
from tests.conftest import learned
from tests.strategies import profiles, session_metrics

tenants = st.sampled_from(["acme", "globex", "initech", "umbrella", "hooli"])


class StoreAgainstADict(RuleBasedStateMachine):
    url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        url = None if self.url is None else f"sqlite:///{self.folder.name}/dna.db"
        self.store = TenantDNAStore(url, max_active=2, max_resident=2)
        self.model: dict[str, TenantDNA] = {}
        # Each acknowledged change is one commit, so the version grows by one;
        # fire-and-forget changes may share commits: then it is unknown.
        self.versions: dict[str, int] = {}
        self.unknown: set[str] = set()
        self.pending: list[Any] = []

    def _expected(self, tenant: str) -> TenantDNA:
        return self.model.setdefault(tenant, TenantDNA())

    def _written(self, tenant: str) -> None:
        self.versions[tenant] = self.versions.get(tenant, 0) + 1

    @rule(tenant=tenants, session=session_metrics, alpha=st.sampled_from([0.2, 1]))
    def update(self, tenant: str, session: dict[str, Any], alpha: float) -> None:
        self._expected(tenant).update_from_session(session, alpha)
        result = self.store.update_from_session(tenant, session, alpha)
        assert learned(result) == learned(self.model[tenant])
        self._written(tenant)

    @rule(tenant=tenants, session=session_metrics)
    def update_async(self, tenant: str, session: dict[str, Any]) -> None:
        self._expected(tenant).update_from_session(session)
        expected = learned(self.model[tenant])
        self.pending.append(
            (self.store.update_from_session_async(tenant, session), expected)
        )
        self.unknown.add(tenant)

    @rule(tenant=tenants, data=profiles)
    def save(self, tenant: str, data: dict[str, Any]) -> None:
        dna = TenantDNA.from_dict(data)
        self.model[tenant] = dna.copy()
        self.store.save(tenant, dna)
        self._written(tenant)

    @rule(tenant=tenants)
    def delete(self, tenant: str) -> None:
        self.model.pop(tenant, None)
        self.store.delete(tenant)
        self.versions[tenant] = 0
        self.unknown.discard(tenant)

    # Reads compare only once every fire-and-forget update has settled: until
    # then a reader may see the profile before or after each of them.
    @precondition(lambda self: not self.pending)
    @rule(tenant=tenants)
    def get(self, tenant: str) -> None:
        expected = self.model.get(tenant, TenantDNA())
        dna, version = self.store.get_versioned(tenant)
        assert learned(dna) == learned(expected)
        assert (version > 0) == (tenant in self.model)
        if tenant not in self.unknown:
            assert version == self.versions.get(tenant, 0)

    @precondition(lambda self: bool(self.pending))
    @rule()
    def settle(self) -> None:
        for future, expected in self.pending:
            assert learned(future.get(timeout=30)) == expected
        self.pending.clear()

    @invariant()
    def listing_matches(self) -> None:
        if self.pending:
            return
        assert self.store.list_tenants() == sorted(self.model)
        assert self.store.count == len(self.model)

    @invariant()
    def resident_profiles_stay_bounded(self) -> None:
        # Each of the two actors keeps at most one idle cell; busy ones wait.
        assert self.store.stats().resident <= 2 + len(self.pending)

    def teardown(self) -> None:
        self.store.close()
        for future, expected in self.pending:
            assert learned(future.get(timeout=30)) == expected
        self.folder.cleanup()


class StoreOnAFileAgainstADict(StoreAgainstADict):
    url = "sqlite"


StoreAgainstADict.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None
)
StoreOnAFileAgainstADict.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None
)
test_the_store_behaves_as_a_dict_of_profiles = StoreAgainstADict.TestCase
test_the_store_on_a_file_behaves_as_a_dict_of_profiles = (
    StoreOnAFileAgainstADict.TestCase
)
