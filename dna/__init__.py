"""The tenant's DNA: a learned usage profile and the rules that update it.

Pure Python: no threads, no I/O. ``actors`` serves these profiles concurrently.
"""

from dna._clock import Clock, now, set_clock
from dna._errors import InvalidDNA, InvalidSessionMetrics
from dna._metrics import KEYS as SESSION_METRIC_KEYS
from dna._metrics import SessionMetrics, parse_session_metrics
from dna._profile import TenantDNA, check_alpha, check_profile

__all__ = [
    "SESSION_METRIC_KEYS",
    "Clock",
    "InvalidDNA",
    "InvalidSessionMetrics",
    "SessionMetrics",
    "TenantDNA",
    "check_alpha",
    "check_profile",
    "now",
    "parse_session_metrics",
    "set_clock",
]
