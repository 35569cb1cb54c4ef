"""
``bench/run.py`` keeps working: its quickest mode, on tiny sizes, prints the table and writes it.

This checks that the instrument runs, not what it measures: a timed test is not a benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchRunTests(unittest.TestCase):
    """The one command of ``bench/``."""

    def test_smoke_run_prints_and_writes_the_table(self) -> None:
        """``bench/run.py --mode smoke`` prints one table row per figure of its groups, with a ratio
        where the figure has a baseline, and writes the same rows (and the machine's description)
        to OUT.md and OUT.json; no group fails."""
        if shutil.which("wrk") is None or shutil.which("cc") is None:
            raise unittest.SkipTest("the mTLS row needs wrk and a C compiler")
        out = os.path.join(tempfile.mkdtemp(), "result")
        env = dict(os.environ, PYTHONPATH=ROOT)
        done = subprocess.run(
            [sys.executable, "bench/run.py", "--mode", "smoke", "--skip", "throughput", "--out", out],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("| figure | ours | baseline | ratio | target | met? |", done.stdout)
        with open(out + ".json") as f:
            written = json.load(f)
        figures = [row["figure"] for row in written["rows"]]
        self.assertEqual(len(figures), 1 + 5 + 1 + 2 + 2 + 3, figures)
        self.assertFalse([row for row in written["rows"] if row["ours"].startswith("error")], done.stdout)
        self.assertEqual({"cpus", "python", "twisted", "klein", "commit"} - written["machine"].keys(), set())
        with open(out + ".md") as f:
            table = f.read()
        for figure in figures:
            self.assertIn(figure, table)
            self.assertIn(figure, done.stdout)
        ratios = {row["figure"]: row["ratio"] for row in written["rows"]}
        self.assertGreater(ratios["keep-alive chat throughput over mTLS (wrk with a client certificate)"], 0)
