"""How a subcommand ends early: the message for stderr and the exit status."""

from __future__ import annotations

from typing import Final

FAILED: Final = 1
"""Exit status: the work could not be done (a tenant not found, a bad file)."""

BAD_USAGE: Final = 2
"""Exit status: the command line itself is wrong."""


class CommandFailed(Exception):
    """The command stops; ``main`` prints the message and exits with ``status``."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


class BadUsage(CommandFailed):
    """The command line is wrong: exit 2 with a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(message, BAD_USAGE)
