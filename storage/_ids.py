"""Tenant ids: which ``str`` names a tenant, for every layer that stores one."""

from __future__ import annotations

import unicodedata
from typing import Any, Final

from dna._rules import describe, plain_str

MAX_TENANT_ID_LENGTH = 256
# Characters that are invisible or that move text around: ids holding them
# print like other ids ("acme" and "acme\u202e"), so they are refused.
# Cc: controls; Cf: format (bidi overrides, zero-width, BOM); Zl, Zp: line
# and paragraph separators; Cs: lone surrogates, which no UTF-8 log or file
# can hold.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_EXPECTED: Final = (
    f"a str of 1 to {MAX_TENANT_ID_LENGTH} characters, not beginning or ending "
    "with whitespace, without control, format (bidi, zero-width, BOM), "
    "line or paragraph separator characters"
)


class InvalidTenantId(ValueError):
    """A tenant id that could be confused with another, or is not an id at all.

    A tenant id is a ``str`` (a subclass is judged by its plain characters) of
    1 to 256 characters that neither begins nor ends with whitespace and holds
    no control characters (Unicode Cc), format characters (Cf: bidi overrides
    such as U+202E, zero-width U+200B, the BOM U+FEFF), line or paragraph
    separators (U+2028, U+2029) or lone surrogates. The message names the
    value and what was expected.
    """


def check_tenant_id(tenant_id: Any) -> str:
    """Return ``tenant_id`` as a plain ``str`` if it is a valid id.

    Raises :class:`InvalidTenantId` (see there for the rules) otherwise::

        >>> check_tenant_id("acme")
        'acme'
    """
    plain = plain_str(tenant_id)
    if plain is None:
        raise _invalid(tenant_id, "not a str")
    if not 0 < len(plain) <= MAX_TENANT_ID_LENGTH:
        raise _invalid(plain, f"{len(plain)} characters")
    if plain.strip() != plain:
        raise _invalid(plain, "whitespace at an end")
    # isprintable() is False for every refused category (and for a few allowed
    # ones, such as U+00A0), so the common id costs one C-speed scan.
    if not plain.isprintable():
        for index, character in enumerate(plain):
            if unicodedata.category(character) in _REFUSED_CATEGORIES:
                raise _invalid(plain, f"U+{ord(character):04X} at index {index}")
    return plain


def _invalid(tenant_id: Any, reason: str) -> InvalidTenantId:
    return InvalidTenantId(
        f"tenant_id: expected {_EXPECTED}, got {describe(tenant_id)} ({reason})"
    )
