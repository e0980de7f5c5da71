"""The seed's import path for the tenant profile: re-exports only."""

from dna import InvalidDNA, InvalidSessionMetrics, TenantDNA

__all__ = ["InvalidDNA", "InvalidSessionMetrics", "TenantDNA"]
