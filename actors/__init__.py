"""The tenant DNA store: one pykka actor per tenant, a registry, no locks."""

from actors._async import AsyncTenantDNAStore
from actors._cell import Versioned
from actors._context import StoreStats
from actors._errors import InvalidTenantId, StoreClosed, check_tenant_id
from actors._store import (
    DEFAULT_MAX_ACTIVE,
    DEFAULT_MAX_QUEUED,
    DEFAULT_MAX_RESIDENT,
    MIN_DEFAULT_QUEUED,
    SERVER_MAX_ACTIVE,
    TenantDNAStore,
)
from storage import StorageError, VersionConflict

__all__ = [
    "DEFAULT_MAX_ACTIVE",
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_MAX_RESIDENT",
    "MIN_DEFAULT_QUEUED",
    "SERVER_MAX_ACTIVE",
    "AsyncTenantDNAStore",
    "InvalidTenantId",
    "StorageError",
    "StoreClosed",
    "StoreStats",
    "TenantDNAStore",
    "VersionConflict",
    "Versioned",
    "check_tenant_id",
]
