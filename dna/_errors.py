"""The mistakes a caller can make with a profile, one class per kind."""

from __future__ import annotations


class InvalidSessionMetrics(ValueError):
    """Session metrics (or ``alpha``) that break the update rules.

    Raised before anything changes: the profile is left exactly as it was.
    ``key`` names the offending metric (``"alpha"`` for the smoothing factor,
    ``"session_metrics"`` when the whole argument is not a mapping).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class InvalidDNA(ValueError):
    """Serialised profile data that no valid ``TenantDNA`` could have produced.

    ``field`` names the offending field (``"data"`` when the whole argument is
    not a mapping).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
