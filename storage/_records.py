"""What every backend checks and draws the same way: ids, incarnations, rows."""

from __future__ import annotations

import json
import os
import random
import secrets
from collections.abc import Callable, Container
from typing import Any, Final, TypeVar

from dna import InvalidDNA, TenantDNA, check_profile
from storage._base import Change, Record, StorageError

Encoded = TypeVar("Encoded")

MAX_INCARNATION: Final = 2**63 - 1
MAX_VERSION: Final = 2**63 - 1
"""The largest version ``restore`` takes (SQLite's and PostgreSQL's integers)."""


# Incarnations need to be unique, not secret: a generator seeded from the
# system's entropy draws one without a system call (secrets does one per
# draw), and is seeded afresh in every forked child, so processes never share
# a sequence. getrandbits is one call into C: threads may share it.
_incarnations = random.Random(secrets.randbits(256))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        after_in_child=lambda: _incarnations.seed(secrets.randbits(256))
    )


def new_incarnation() -> int:
    """A random positive 63-bit incarnation, as every backend draws them."""
    return _incarnations.getrandbits(63) or 1


def restored_incarnation(
    version: int,
    incarnation: int,
    stored: tuple[int, int] | None,
    erased: Container[int],
) -> int:
    """The incarnation a restored record is written with.

    Its own, unless that would bring back what a process may hold or have
    computed from: a version the stored life ``(version, incarnation)``
    already had (an older backup over a live tenant: a process holding the
    newer one would take the record for old news, and a change it computed
    would match it), or an erased life. Then a new one: the record is a new
    life, which every process reads afresh.
    """
    if incarnation in erased or (
        stored is not None and stored[1] == incarnation and version <= stored[0]
    ):
        return new_incarnation()
    return incarnation


def checked_copy(tenant_id: str, dna: TenantDNA) -> TenantDNA:
    """A checked copy of ``dna`` sharing nothing with it (``dna.check_profile``).

    Raises ``dna.InvalidDNA`` naming the field and the tenant, ``TypeError``
    for anything but a ``TenantDNA``.
    """
    try:
        return check_profile(dna)
    except InvalidDNA as error:
        detail = str(error).removeprefix(f"{error.field}: ")
        raise InvalidDNA(error.field, f"tenant {tenant_id!r}: {detail}") from error


def checked_ids(
    tenant_id: str, record: Record, max_version: int = MAX_VERSION
) -> tuple[int, int]:
    """A record's ``(version, incarnation)`` for ``restore``; ``ValueError`` if off."""
    version, incarnation = record.version, record.incarnation
    if not isinstance(version, int) or not 1 <= version <= max_version:
        msg = (
            f"tenant {tenant_id!r}: version: expected an int in 1 .. {max_version}, "
            f"got {version!r}"
        )
        raise ValueError(msg)
    if not isinstance(incarnation, int) or not 1 <= incarnation <= MAX_INCARNATION:
        msg = (
            f"tenant {tenant_id!r}: incarnation: expected an int in 1 .. 2**63 - 1, "
            f"got {incarnation!r}"
        )
        raise ValueError(msg)
    return int(version), int(incarnation)


def profile_from_json(tenant_id: str, text: Any) -> TenantDNA:
    """A profile stored as the JSON text of ``TenantDNA.to_dict()``.

    Raises ``ValueError`` (``dna.InvalidDNA`` naming the field) or
    ``TypeError`` if ``text`` is not such JSON. ``tenant_id`` goes unused: it
    is there for the signature :func:`parse_row` calls its readers with.
    """
    if not isinstance(text, str):
        msg = f"dna: expected JSON text, got {type(text).__name__}"
        raise ValueError(msg)
    return TenantDNA.from_dict(json.loads(text))


def parse_row(
    name: str,
    tenant_id: str,
    version: Any,
    incarnation: Any,
    stored: Any,
    *,
    profile: Callable[[str, Any], TenantDNA],
) -> Record:
    """A stored row as a record; ``StorageError`` naming the tenant if invalid.

    ``profile`` reads the stored profile (packed, or JSON text from schema
    1), raising ``ValueError`` or ``TypeError`` if it cannot. ``name`` is the
    database's, for the message.
    """
    try:
        if type(tenant_id) is not str:
            msg = "tenant_id: expected text (the file is damaged)"
            raise ValueError(msg)
        if not isinstance(version, int) or version < 1:
            msg = f"version: expected an int >= 1, got {version!r}"
            raise ValueError(msg)
        if not isinstance(incarnation, int) or not 1 <= incarnation <= MAX_INCARNATION:
            msg = f"incarnation: expected an int in 1 .. 2**63 - 1, got {incarnation!r}"
            raise ValueError(msg)
        dna = profile(tenant_id, stored)
    except (ValueError, TypeError, RecursionError) as error:
        msg = f"{name}: the stored profile of tenant {tenant_id!r} is invalid: {error}"
        raise StorageError(msg) from error
    return Record(dna, version, incarnation)


def rebased(
    change: Change,
    stored: Record | None,
    encode: Callable[[str, TenantDNA], Encoded],
) -> tuple[TenantDNA, Encoded] | None:
    """A conflicting change computed again on ``stored``, and its encoding.

    ``None`` when it cannot be: no ``rebase``, a forced change or an erasure,
    nothing stored, or the rebase (or the check of what it returned) raised.
    The rebase gets a copy: ``stored`` stays as it was, for a ``Conflict``.
    """
    rebase = change.rebase
    if rebase is None or change.force or change.dna is None or stored is None:
        return None
    try:
        dna = rebase(stored.dna.copy())
        return dna, encode(change.tenant_id, dna)
    except Exception:  # the change conflicts; its owner computes it again
        return None
