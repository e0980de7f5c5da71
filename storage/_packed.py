"""A profile packed into bytes: how every backend stores one.

:func:`encode` checks a profile as ``dna.check_profile`` does and packs it;
:func:`decode` unpacks one, checking only that the bytes have the shape of a
packed profile; :func:`check_round_trip` checks the values too, by packing the
profile again: only a valid profile packs, and only to the very bytes it came
from. Every valid profile round-trips exactly (every float bit, lone
surrogates, names holding NULs).
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Sequence
from typing import Final

from dna import TenantDNA
from dna._rules import (
    MAX_INTENTS,
    MAX_NAME_LENGTH,
    MAX_PEAK_HOURS,
    MAX_TOKENS,
    MAX_TOOLS,
    TIERS,
)
from storage._ids import check_tenant_id
from storage._records import checked_copy

# A packed profile, little-endian:
#
#   avg_task_complexity d, avg_tokens_per_task q, risk_profile d, last_updated d
#   form        B  the tier (its index in TIERS), plus _MEASURED (below)
#   counts      B  tools, hours, intents
#   the tools' frequencies, d each
#   the peak hours, B each
#   the tool names, then the intents, in UTF-8 ("surrogatepass": any str
#   round-trips), separated by NUL characters; or, in a profile with _MEASURED
#   (some name holds a NUL), the length of every name in characters (a byte
#   each: names are at most 200 characters), then the names back to back.
#
# Floats are IEEE doubles: a profile round-trips exactly. Names are their own
# UTF-8 bytes, so a search of the stored bytes for a name finds it.

_BODY: Final = struct.Struct("<dqddBBBB")
_MEASURED: Final = 0x80
_TIER_CODES: Final = {tier: code for code, tier in enumerate(TIERS)}
_FREQUENCIES: Final = tuple(struct.Struct(f"<{n}d") for n in range(256))


def _canonical_items(
    frequencies: Sequence[object], hours: Sequence[object], names: Sequence[object]
) -> bool:
    for frequency in frequencies:
        if type(frequency) is not float or not 0.0 <= frequency <= 1.0:
            return False
    for hour in hours:
        if type(hour) is not int or not 0 <= hour <= 23:
            return False
    for name in names:
        if type(name) is not str or not 0 < len(name) <= MAX_NAME_LENGTH:
            return False
    return True


def _pack(dna: TenantDNA) -> bytes | None:
    """``dna`` packed, or ``None`` if it is not a canonical profile.

    Checks what ``check_profile`` checks, for values already in their
    canonical types (exactly ``float``, ``int``, ``str``, ``dict``, ``list``).
    Each container is copied once, then checked and packed from the copy.
    """
    if type(dna) is not TenantDNA:
        return None
    complexity = dna.avg_task_complexity
    risk = dna.risk_profile
    updated = dna.last_updated
    tokens = dna.avg_tokens_per_task
    tier = dna.preferred_model_tier
    tools = dna.tool_usage_frequency
    hours = dna.peak_hours
    intents = dna.common_intents
    if not (
        type(complexity) is float
        and 0.0 <= complexity <= 1.0
        and type(risk) is float
        and 0.0 <= risk <= 1.0
        and type(updated) is float
        and math.isfinite(updated)
        and type(tokens) is int
        and 0 <= tokens <= MAX_TOKENS
        and type(tier) is str
        and type(tools) is dict
        and type(hours) is list
        and type(intents) is list
    ):
        return None
    form = _TIER_CODES.get(tier)
    frequencies = [*tools.values()]
    hours = [*hours]
    intents = [*intents]
    names = [*tools, *intents]  # the tools' names, then the intents
    if (
        form is None
        # Another thread changing the dict meanwhile: let check_profile judge.
        or len(names) != len(frequencies) + len(intents)
        or len(frequencies) > MAX_TOOLS
        or len(hours) > MAX_PEAK_HOURS
        or len(intents) > MAX_INTENTS
        or not _canonical_items(frequencies, hours, names)
        or len({*hours}) != len(hours)
        or len({*intents}) != len(intents)
    ):
        return None
    head = _BODY.pack(
        complexity,
        tokens,
        risk,
        updated,
        form,
        len(frequencies),
        len(hours),
        len(intents),
    )
    small = bytes(hours)
    text = "\0".join(names)
    if names and text.count("\0") != len(names) - 1:  # a name holds a NUL
        head = _BODY.pack(
            complexity,
            tokens,
            risk,
            updated,
            form | _MEASURED,
            len(frequencies),
            len(hours),
            len(intents),
        )
        small += bytes(map(len, names))
        text = "".join(names)
    return b"".join(
        (
            head,
            _FREQUENCIES[len(frequencies)].pack(*frequencies),
            small,
            text.encode("utf-8", "surrogatepass"),
        )
    )


def encode(tenant_id: str, dna: TenantDNA) -> bytes:
    """``dna`` packed to be written as ``tenant_id``'s, after the rules of
    ``dna.check_profile``.

    Raises ``InvalidTenantId`` for an id the store refuses (a record no store
    could read, change or erase by its id), ``dna.InvalidDNA`` naming the
    field and the tenant, ``TypeError`` for anything but a ``TenantDNA``.
    """
    check_tenant_id(tenant_id)
    return encode_stored(tenant_id, dna)


def encode_stored(tenant_id: str, dna: TenantDNA) -> bytes:
    """``dna`` packed as :func:`encode` packs it, for a tenant already stored
    (whatever its id: one stored before the id rule was as strict)."""
    packed = _pack(dna)
    if packed is None:
        # Not canonical: invalid (this raises), or valid in other types.
        packed = _pack(checked_copy(tenant_id, dna))
        if packed is None:  # pragma: no cover - check_profile gives canonical types
            msg = f"tenant {tenant_id!r}: a checked profile could not be packed"
            raise AssertionError(msg)
    return packed


def decode(value: bytes, at: int = 0) -> TenantDNA:
    """The profile packed in ``value`` from offset ``at`` to its end.

    Raises ``ValueError`` if the bytes do not have the shape of a packed
    profile. The values are not checked here (:func:`check_round_trip` does).
    """
    try:
        complexity, tokens, risk, updated, form, tools, hours, intents = (
            _BODY.unpack_from(value, at)
        )
        frequencies = _FREQUENCIES[tools].unpack_from(value, at + _BODY.size)
    except struct.error as error:
        msg = f"too short for a packed profile: {error}"
        raise ValueError(msg) from error
    tier = form & ~_MEASURED
    if tier >= len(TIERS):
        msg = f"no tier has the code {tier}"
        raise ValueError(msg)
    start = at + _BODY.size + 8 * tools
    end = start + hours
    if form & _MEASURED:
        lengths = value[end : end + tools + intents]
        text = value[end + tools + intents :].decode("utf-8", "surrogatepass")
        ends = list(itertools.accumulate(lengths))
        if len(lengths) != tools + intents or (ends[-1] if ends else 0) != len(text):
            msg = "the names' lengths do not add up"
            raise ValueError(msg)
        names = [
            text[first:stop] for first, stop in zip([0, *ends], ends, strict=False)
        ]
    elif tools + intents:
        names = value[end:].decode("utf-8", "surrogatepass").split("\0")
        if len(names) != tools + intents:
            msg = "the number of names is wrong"
            raise ValueError(msg)
    else:
        names = []
        if len(value) != end:
            msg = "unexpected bytes after the profile"
            raise ValueError(msg)
    return TenantDNA(
        complexity,
        TIERS[tier],
        tokens,
        dict(zip(names, frequencies, strict=False)),
        list(value[start:end]),
        risk,
        names[tools:],
        updated,
    )


def check_round_trip(tenant_id: str, dna: TenantDNA, value: bytes, at: int = 0) -> None:
    """Raise unless ``dna``, decoded from ``value[at:]``, packs to those bytes.

    ``dna.InvalidDNA`` naming the field and the tenant for a value
    ``check_profile`` refuses; ``ValueError`` naming the tenant for a valid
    profile packed otherwise (a duplicate tool name, bytes left over).
    """
    if encode_stored(tenant_id, dna) != value[at:]:
        msg = f"tenant {tenant_id!r}: the record does not round-trip"
        raise ValueError(msg)


def decode_checked(tenant_id: str, value: bytes) -> TenantDNA:
    """The profile packed in ``value``, its values checked (the two above);
    raises as they do."""
    dna = decode(value)
    check_round_trip(tenant_id, dna, value)
    return dna
