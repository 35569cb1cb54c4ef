"""
The pytest fixture's tests (tests/kit_example_pytest.py, tests/kit_fixture_checks.py), each run in a
child pytest: under pytest-twisted (as this suite runs) and in plain pytest (-p no:twisted).

They run apart because, in one pytest-twisted session, a plain pytest function starts the reactor's
greenlet and the trial test cases after it could no longer run the reactor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent


def child_pytest(*args: str) -> subprocess.CompletedProcess:
    """``python -m pytest -q ARGS`` with this checkout on the path, in a scratch directory."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *args],
            capture_output=True, text=True, cwd=scratch, env=env, timeout=300,
        )


class FixtureRunsTests(unittest.TestCase):
    """The fixture works for blocking clients with and without pytest-twisted."""

    def check(self, expected: str, *args: str) -> None:
        result = child_pytest(*args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(expected, result.stdout)

    def test_example_under_pytest_twisted(self) -> None:
        """docs/testing.md's pytest example passes under pytest-twisted."""
        self.check("3 passed", str(ROOT / "tests" / "kit_example_pytest.py"))

    def test_example_in_plain_pytest(self) -> None:
        """The same example passes with pytest-twisted turned off."""
        self.check("3 passed", "-p", "no:twisted", str(ROOT / "tests" / "kit_example_pytest.py"))

    def test_fixture_checks_under_pytest_twisted(self) -> None:
        """The fixture's own checks (fresh per test, marker, start time, treq on the global reactor) pass."""
        self.check("7 passed", str(ROOT / "tests" / "kit_fixture_checks.py"))

    def test_fixture_checks_in_plain_pytest(self) -> None:
        """Without pytest-twisted too (but the treq test, which needs its reactor)."""
        self.check("6 passed", "-p", "no:twisted", "-k", "not treq", str(ROOT / "tests" / "kit_fixture_checks.py"))
