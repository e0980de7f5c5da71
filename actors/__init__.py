"""The tenant DNA store: one pykka actor per tenant, a registry, no locks."""

from actors._errors import InvalidTenantId, StoreClosed, check_tenant_id
from actors._store import DEFAULT_MAX_ACTIVE, TenantDNAStore

__all__ = [
    "DEFAULT_MAX_ACTIVE",
    "InvalidTenantId",
    "StoreClosed",
    "TenantDNAStore",
    "check_tenant_id",
]
