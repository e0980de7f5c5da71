"""Every program in examples/ runs as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


def run(example: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_the_example_runs(example: Path) -> None:
    result = run(example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_the_profile_example_prints_what_it_learned() -> None:
    result = run(EXAMPLES[0].parent / "profile_example.py")
    assert result.stdout.splitlines()[:3] == [
        "Complexity: 0.568",
        "Preferred tier: orchestrator",
        "Avg tokens: 2680",
    ]
