"""The ``tenant-dna`` command line: subcommands, options, exit statuses.

Built on the standard library's ``argparse``: subcommands, per-command help
and exit status 2 on bad usage are all it needs, and it adds no dependency to
a library that services embed.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ops._erasure import erase, idle_days, purge
from ops._errors import BAD_USAGE, FAILED, CommandFailed
from ops._inspect import check, list_, show, stats
from ops._output import PROG, say
from ops._target import ENVIRONMENT
from ops._transfer import export, import_
from storage import StorageError

_DESCRIPTION = "Look at and act on stored tenant profiles (tenant DNA)."
_EPILOG = f"""\
The database is named by --url or the {ENVIRONMENT} environment variable:
an SQLite file path, sqlite:///relative/path.db, sqlite:////absolute/path.db,
or postgresql://user:password@host/database. Every command but import
refuses an SQLite file that does not exist.

Data goes to stdout (tables, or JSON with --json); messages and progress go
to stderr. Exit status: 0 success, 1 failure (a tenant not found, a damaged
or foreign file, bad lines in an import), 2 bad usage.
"""

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, with bad usage reported in one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            BAD_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n"
        )


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand; a subcommand's parser must not
    # reset what was given before it, hence SUPPRESS there.
    parser.add_argument(
        "--url",
        default=None if top else argparse.SUPPRESS,
        help=f"the database (default: ${ENVIRONMENT})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON for scripts instead of tables",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line."""
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, top=True)
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )

    def command(
        name: str, run: Command, summary: str, details: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=f"{summary} {details}".strip()
        )
        _global_options(sub, top=False)
        sub.set_defaults(run=run)
        return sub

    command("stats", stats, "How many profiles are stored; bytes on disk.")
    command("list", list_, "Every stored tenant, its version and last update.")
    sub = command("show", show, "One tenant's profile.", "Exit 1 if not stored.")
    sub.add_argument("tenant", metavar="TENANT")
    sub = command(
        "export",
        export,
        "Write profiles as JSON Lines.",
        "A line is {tenant_id, version, incarnation, dna}; import gives back the "
        "same records.",
    )
    sub.add_argument(
        "tenants",
        metavar="TENANT",
        nargs="*",
        help="only these tenants (exit 1 if one is not stored); default: all",
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE (mode 0600, complete or not at all); default: stdout",
    )
    sub = command(
        "import",
        import_,
        "Read profiles from an export.",
        "Versions and incarnations are kept, unless that would take a stored "
        "tenant back to a version it had or bring an erased one back: that "
        "record is stored as a new life (a new incarnation). A tenant already "
        "stored is replaced. "
        "Every line is checked first and bad ones are named by number; by "
        "default nothing is imported if one is bad. All in one transaction.",
    )
    sub.add_argument("file", metavar="FILE", help="JSON Lines, or - for stdin")
    sub.add_argument(
        "--skip-bad",
        action="store_true",
        help="import the good lines even if some are bad (still exit 1)",
    )
    sub = command(
        "erase",
        erase,
        "Erase tenants (GDPR).",
        "No byte of their profiles is left in the database or beside it; exit 1 "
        "naming any tenant that is not stored (the others are erased).",
    )
    sub.add_argument("tenants", metavar="TENANT", nargs="+")
    sub = command(
        "purge",
        purge,
        "Erase profiles not updated for N days.",
        "Idle: last_updated older than N days. A profile updated while the "
        "purge runs is kept.",
    )
    sub.add_argument(
        "--idle-days", metavar="N", type=idle_days, required=True, help="days, > 0"
    )
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be erased, erase nothing",
    )
    command(
        "check",
        check,
        "Check the database's integrity.",
        "Lists the problems found; exit 1 if there are any.",
    )
    return parser


def _drop_stdout() -> None:
    """Send stdout to /dev/null: what it still holds would fail again, loudly,
    when Python flushes it at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A tenant id the terminal's encoding cannot show is escaped, not fatal.
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or bad usage already reported
        return exit_.code if isinstance(exit_.code, int) else BAD_USAGE
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except CommandFailed as error:
        say(str(error))
        return error.status
    except BrokenPipeError:
        # The reader (head, a closed pager) left: stop quietly.
        _drop_stdout()
        return FAILED
    except (StorageError, OSError) as error:
        if isinstance(error, OSError):  # a full disk, a folder named as a file
            say(f"{error.filename or 'output'}: {error.strerror or error}")
            _drop_stdout()
        else:
            say(str(error))
        return FAILED
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return status
