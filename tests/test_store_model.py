"""The store behaves as a plain dict of profiles, whatever the calls' order.

A hypothesis state machine drives a store with two actors (so most calls
activate or passivate a tenant) and a dict model side by side, and compares
every answer.
"""

from __future__ import annotations

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
    def __init__(self) -> None:
        super().__init__()
        self.store = TenantDNAStore(max_active=2)
        self.model: dict[str, TenantDNA] = {}
        self.pending: list[Any] = []

    def _expected(self, tenant: str) -> TenantDNA:
        return self.model.setdefault(tenant, TenantDNA())

    @rule(tenant=tenants, session=session_metrics, alpha=st.sampled_from([0.2, 1]))
    def update(self, tenant: str, session: dict[str, Any], alpha: float) -> None:
        self._expected(tenant).update_from_session(session, alpha)
        result = self.store.update_from_session(tenant, session, alpha)
        assert learned(result) == learned(self.model[tenant])

    @rule(tenant=tenants, session=session_metrics)
    def update_async(self, tenant: str, session: dict[str, Any]) -> None:
        self._expected(tenant).update_from_session(session)
        expected = learned(self.model[tenant])
        self.pending.append(
            (self.store.update_from_session_async(tenant, session), expected)
        )

    @rule(tenant=tenants, data=profiles)
    def save(self, tenant: str, data: dict[str, Any]) -> None:
        dna = TenantDNA.from_dict(data)
        self.model[tenant] = dna.copy()
        self.store.save(tenant, dna)

    @rule(tenant=tenants)
    def delete(self, tenant: str) -> None:
        self.model.pop(tenant, None)
        self.store.delete(tenant)

    # Reads compare only once every fire-and-forget update has settled: until
    # then a reader may see the profile before or after each of them.
    @precondition(lambda self: not self.pending)
    @rule(tenant=tenants)
    def get(self, tenant: str) -> None:
        expected = self.model.get(tenant, TenantDNA())
        assert learned(self.store.get(tenant)) == learned(expected)

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

    def teardown(self) -> None:
        self.store.close()
        for future, expected in self.pending:
            assert learned(future.get(timeout=30)) == expected


StoreAgainstADict.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None
)
test_the_store_behaves_as_a_dict_of_profiles = StoreAgainstADict.TestCase
