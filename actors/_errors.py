"""The mistakes a caller can make with the store, one class per kind."""

from __future__ import annotations

import re
from typing import Any

from dna._rules import describe

MAX_TENANT_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidTenantId(ValueError):
    """A tenant id that is not a ``str`` of 1 to 256 characters without controls."""


class StoreClosed(RuntimeError):
    """The store was closed; it serves no further calls."""


def check_tenant_id(tenant_id: Any) -> str:
    """Return ``tenant_id`` if it is a valid id, else raise ``InvalidTenantId``."""
    if (
        not isinstance(tenant_id, str)
        or not 0 < len(tenant_id) <= MAX_TENANT_ID_LENGTH
        or _CONTROL.search(tenant_id)
    ):
        raise InvalidTenantId(
            f"tenant_id: expected a str of 1 to {MAX_TENANT_ID_LENGTH} characters "
            f"without control characters, got {describe(tenant_id)}"
        )
    return tenant_id
