"""Hypothesis strategies for valid and invalid session metrics and profiles."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from hypothesis import strategies as st

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
names = st.text(min_size=1, max_size=12)
tiers = st.sampled_from(["orchestrator", "worker"])
hours = st.integers(min_value=0, max_value=23)
tokens = st.integers(min_value=0, max_value=10**12)
alphas = st.one_of(
    st.floats(min_value=-10.0, max_value=10.0, allow_nan=False),
    st.integers(min_value=-5, max_value=5),
)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


session_metrics = st.fixed_dictionaries(
    {},
    optional={
        "task_complexity": _optional(unit),
        "model_tier": _optional(tiers),
        "tokens_used": _optional(tokens),
        "tools_used": _optional(
            st.dictionaries(names, st.integers(min_value=0, max_value=1000), max_size=8)
        ),
        "hour_utc": _optional(hours),
        "risk_score": _optional(unit),
        "intent": _optional(names),
        "unrelated": st.integers(),
    },
)

profiles = st.builds(
    dict,
    avg_task_complexity=unit,
    preferred_model_tier=tiers,
    avg_tokens_per_task=tokens,
    tool_usage_frequency=st.dictionaries(names, unit, max_size=50),
    peak_hours=st.lists(hours, unique=True, max_size=12),
    risk_profile=unit,
    common_intents=st.lists(names, unique=True, max_size=20),
    last_updated=st.floats(allow_nan=False, allow_infinity=False),
)
"""Valid ``to_dict()`` data."""

# Names the profiles strategy rarely draws: NULs (the separator of the common
# form), lone surrogates, the longest names, characters of every UTF-8 width.
awkward_names = st.one_of(
    st.text(alphabet=st.sampled_from("a\x00é€😀"), min_size=1, max_size=12),
    st.text(
        alphabet=st.characters(codec=None, categories=["Cs", "Ll"]),
        min_size=1,
        max_size=6,
    ),
    st.integers(min_value=1, max_value=200).map(lambda n: "\x00é😀"[n % 3] * n),
)
awkward_profiles: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    avg_task_complexity=st.sampled_from([0.0, -0.0, 1.0, 5e-324, 0.1]),
    preferred_model_tier=st.sampled_from(["orchestrator", "worker"]),
    avg_tokens_per_task=st.sampled_from([0, 1, 10**12]),
    tool_usage_frequency=st.dictionaries(
        awkward_names, st.sampled_from([0.0, -0.0, 1.0, 1e-300]), max_size=50
    ),
    peak_hours=st.lists(st.integers(0, 23), unique=True, max_size=12),
    risk_profile=st.floats(min_value=0.0, max_value=1.0),
    common_intents=st.lists(awkward_names, unique=True, max_size=20),
    last_updated=st.sampled_from([-1e308, -0.0, 0.0, 1.5e9, 1e308, 5e-324]),
)
"""Valid ``to_dict()`` data with the names, floats and sizes ``profiles`` rarely
draws: what a storage encoding must round-trip."""

_not_real = st.one_of(
    st.booleans(),
    st.text(max_size=3),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
_out_of_unit = st.one_of(
    st.floats(min_value=1.0, exclude_min=True, allow_infinity=False),
    st.floats(max_value=0.0, exclude_max=True, allow_infinity=False),
)
_not_int = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none().map(lambda _: "12"),
)
_bad_name = st.one_of(
    st.just(""),
    st.text(min_size=201, max_size=260),
    st.integers(),
    st.booleans(),
    st.binary(min_size=1, max_size=4),
)
_bad_tools = st.one_of(
    st.lists(names, max_size=3),
    st.text(max_size=3),
    st.integers(),
    st.dictionaries(
        _bad_name.filter(lambda v: isinstance(v, str)),
        st.just(1),
        min_size=1,
        max_size=2,
    ),
    st.dictionaries(
        names,
        st.one_of(st.integers(max_value=-1), st.booleans(), st.floats()),
        min_size=1,
        max_size=2,
    ),
    st.just({f"tool{i}": 1 for i in range(1001)}),
)

bad_metric = st.one_of(
    st.tuples(st.just("task_complexity"), st.one_of(_not_real, _out_of_unit)),
    st.tuples(st.just("risk_score"), st.one_of(_not_real, _out_of_unit)),
    st.tuples(
        st.just("model_tier"),
        st.one_of(
            st.text(max_size=12).filter(lambda t: t not in ("orchestrator", "worker")),
            st.integers(),
        ),
    ),
    st.tuples(
        st.just("tokens_used"),
        st.one_of(
            _not_int, st.integers(max_value=-1), st.integers(min_value=10**12 + 1)
        ),
    ),
    st.tuples(
        st.just("hour_utc"),
        st.one_of(_not_int, st.integers(max_value=-1), st.integers(min_value=24)),
    ),
    st.tuples(st.just("intent"), _bad_name),
    st.tuples(st.just("tools_used"), _bad_tools),
)
"""A ``(key, value)`` pair that the rules must reject."""


# -- hostile values ------------------------------------------------------------
# Not malicious users: values from libraries and wrappers whose dunder methods
# do something other than the plain type's. The rules must judge them by their
# data and report them clearly.


class Boom(Exception):
    """What a hostile value raises, so a test can find it in ``__cause__``."""


class EqualsEverything(str):
    """A ``str`` that claims to equal anything (and to hash like ``"worker"``)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash("worker")


class ClaimsOneCharacter(str):
    """A ``str`` whose ``len`` is always 1."""

    def __len__(self) -> int:
        return 1


class StrSaysWorker(str):
    """A ``str`` whose ``__str__`` (and slicing) says ``"worker"``."""

    def __str__(self) -> str:
        return "worker"

    def __getitem__(self, index: Any) -> str:
        return "worker"


class RaisingRepr(str):
    """A ``str`` whose ``repr`` raises."""

    def __repr__(self) -> str:
        raise Boom("repr")


class AllOfThem(EqualsEverything, ClaimsOneCharacter, StrSaysWorker, RaisingRepr):
    """Every override at once."""


HOSTILE_STR_TYPES: tuple[type[str], ...] = (
    EqualsEverything,
    ClaimsOneCharacter,
    StrSaysWorker,
    RaisingRepr,
    AllOfThem,
)


def hostile_strs(plain: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Instances of the hostile ``str`` subclasses holding ``plain`` text."""
    return st.builds(
        lambda kind, text: kind(text), st.sampled_from(HOSTILE_STR_TYPES), plain
    )


class ObjectWithRaisingRepr:
    """Not a number nor a string, and its ``repr`` raises."""

    def __repr__(self) -> str:
        raise Boom("repr")


class ReprReturnsNonStr:
    """``repr`` of it raises ``TypeError`` (``__repr__`` returns an ``int``)."""

    def __repr__(self) -> Any:
        return 42


MAPPING_METHODS = ("__getitem__", "get", "items", "keys", "__iter__", "__len__")


class HostileMapping(Mapping[Any, Any]):
    """A mapping over ``data`` whose chosen methods raise :class:`Boom`.

    ``poison``: a key whose reading raises (``None``: every read raises, if
    ``__getitem__`` or ``get`` is in ``raising``). ``length`` overrides what
    ``len`` says; ``endless`` makes ``items()``/``keys()`` go on for ever.
    """

    def __init__(
        self,
        data: dict[Any, Any],
        raising: frozenset[str] = frozenset(),
        *,
        poison: Any = None,
        length: int | None = None,
        endless: bool = False,
    ) -> None:
        self._data = data
        self._raising = raising
        self._poison = poison
        self._length = length
        self._endless = endless

    def _check(self, method: str, key: Any = None) -> None:
        if method in self._raising and (self._poison is None or key == self._poison):
            raise Boom(method)

    def __getitem__(self, key: Any) -> Any:
        self._check("__getitem__", key)
        return self._data[key]

    def get(self, key: Any, default: Any = None) -> Any:
        self._check("get", key)
        try:
            return self[key]
        except KeyError:
            return default

    def _pairs(self) -> Iterator[tuple[Any, Any]]:
        if self._endless:
            return ((f"tool{i}", 1) for i in itertools.count())
        return iter(list(self._data.items()))

    def items(self) -> Any:
        self._check("items")
        return self._pairs()

    def keys(self) -> Any:
        self._check("keys")
        return (key for key, _ in self._pairs())

    def __iter__(self) -> Iterator[Any]:
        self._check("__iter__")
        return (key for key, _ in self._pairs())

    def __len__(self) -> int:
        self._check("__len__")
        return len(self._data) if self._length is None else self._length

    def __repr__(self) -> str:
        raise Boom("repr")


raising_methods = st.frozensets(st.sampled_from(MAPPING_METHODS), min_size=1)


def hostile_mappings(
    data: st.SearchStrategy[dict[Any, Any]],
) -> st.SearchStrategy[HostileMapping]:
    """Mappings over ``data`` where some methods raise, for every key."""
    return st.builds(HostileMapping, data, raising_methods)


huge_tools = st.one_of(
    # Says it is small, goes on for ever.
    st.builds(lambda: HostileMapping({"a": 1}, length=1, endless=True)),
    # Says it is huge, and is.
    st.builds(lambda: HostileMapping({}, length=10**9, endless=True)),
    st.just({f"tool{i}": 1 for i in range(10**4)}),
)
"""``tools_used`` values far above the 1,000-tool limit, honest or not."""
