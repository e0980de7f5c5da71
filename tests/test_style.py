"""The project's own rules about its code: lint, format, strict types, no locks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPED_PACKAGES = [
    name
    for name in ("dna", "storage", "actors")
    if (ROOT / name / "__init__.py").exists()
]
LOCK = re.compile(
    r"threading\.(R?Lock|Condition|Semaphore|BoundedSemaphore|Event)\("
    r"|from threading import .*\b(R?Lock|Condition|Semaphore|BoundedSemaphore|Event)\b"
)


def _run(*command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_passes() -> None:
    _run("ruff", "check", ".")


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    _run("ruff", "format", "--check", ".")


def test_mypy_strict_passes_on_the_library() -> None:
    _run("mypy", "--strict", *TYPED_PACKAGES)


@pytest.mark.parametrize("package", TYPED_PACKAGES)
def test_the_library_holds_no_locks(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if LOCK.search(line)
    ]
    assert offenders == []
