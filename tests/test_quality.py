"""The tooling the house style asks for is part of the suite: mypy --strict and ruff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_mypy_strict() -> None:
    done = run("mypy")
    assert done.returncode == 0, done.stdout[-5000:]


def test_ruff() -> None:
    done = run("ruff", "check", "services", "tests", "bench", "eval")
    assert done.returncode == 0, done.stdout[-5000:]
