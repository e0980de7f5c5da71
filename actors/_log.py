"""Events through the standard library's loggers, never through stdout.

The store emits structlog events on the stdlib loggers ``tenant_dna.<layer>``.
Nothing is configured globally: the level is asked of the stdlib logger at
every event, so ``logging.basicConfig(level=logging.DEBUG)`` shows the events
even when called after the store was created. An application that formats
records with ``structlog.stdlib.ProcessorFormatter`` receives the event dict;
any other formatter prints ``event key=value ...``.

An event is a side effect: a handler or a value that raises while one is
emitted is swallowed here, so logging can never change an answer or stop an
actor.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog


class _Event(dict[str, Any]):
    """An event dict whose ``str`` is a one-line rendering, for plain formatters."""

    def __str__(self) -> str:
        fields = " ".join(
            f"{key}={value!r}" for key, value in self.items() if key != "event"
        )
        return f"{self.get('event', '')} {fields}".rstrip()


def _render(_: Any, __: str, event_dict: Any) -> tuple[tuple[Any], dict[str, Any]]:
    # What ProcessorFormatter.wrap_for_formatter does, with a readable dict.
    logger = event_dict.pop("_stdlib_logger")
    name = event_dict.pop("_method")
    return (_Event(event_dict),), {"extra": {"_logger": logger, "_name": name}}


def _keep_method(logger: Any, method: str, event_dict: Any) -> Any:
    event_dict["_stdlib_logger"] = logger
    event_dict["_method"] = method
    return event_dict


class Events:
    """The events of one layer: ``debug``, ``info``, ``warning``, ``error``.

    Each call is cheap when its level is disabled and never raises.
    """

    __slots__ = ("_logger", "_stdlib")

    def __init__(self, layer: str) -> None:
        self._stdlib = logging.getLogger(f"tenant_dna.{layer}")
        self._logger = structlog.wrap_logger(
            self._stdlib,
            processors=[_keep_method, _render],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def enabled(self, level: int) -> bool:
        """Whether an event at ``level`` would be handled now."""
        try:
            return self._stdlib.isEnabledFor(level)
        except Exception:
            return False

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        try:
            if self._stdlib.isEnabledFor(level):
                method = logging.getLevelName(level).lower()
                getattr(self._logger, method)(event, **fields)
        except Exception:  # an event must never fail its caller
            pass

    def debug(self, event: str, **fields: Any) -> None:
        """A routine step (activation, an update applied)."""
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Something an operator may want to know (an erasure)."""
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Something went wrong for one caller (a rejected input)."""
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Something went wrong for the store (a failed commit, a lost actor)."""
        self._emit(logging.ERROR, event, fields)
