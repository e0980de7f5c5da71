"""The seed's import path for the tenant profile and its store: re-exports only."""

from actors import InvalidTenantId, StoreClosed, TenantDNAStore
from dna import InvalidDNA, InvalidSessionMetrics, TenantDNA

__all__ = [
    "InvalidDNA",
    "InvalidSessionMetrics",
    "InvalidTenantId",
    "StoreClosed",
    "TenantDNA",
    "TenantDNAStore",
]
