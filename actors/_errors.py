"""The mistakes a caller can make with the store, one class per kind."""

from __future__ import annotations

from storage._ids import MAX_TENANT_ID_LENGTH, InvalidTenantId, check_tenant_id

__all__ = ["MAX_TENANT_ID_LENGTH", "InvalidTenantId", "StoreClosed", "check_tenant_id"]


class StoreClosed(RuntimeError):
    """The store was closed; it serves no further calls."""
