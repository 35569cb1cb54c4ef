"""
docs/testing.md shows the examples that run: each included block is its test file, byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
_INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```python\n(.*?)```\n", re.S)


def included() -> dict[str, str]:
    """The doc's included blocks: file path -> the text shown."""
    return {name: text for name, text in _INCLUDE.findall(DOC.read_text())}


class DocExamplesTests(unittest.TestCase):
    """The worked examples cannot rot: they are the tests the suite runs."""

    def test_every_entry_point_has_its_example(self) -> None:
        """The pytest, trial and in-memory examples are all included."""
        self.assertEqual(sorted(included()), [
            "tests/kit_example_pytest.py",
            "tests/test_testing_example_memory.py",
            "tests/test_testing_example_trial.py",
        ])

    def test_blocks_are_the_files(self) -> None:
        """Each included block is exactly the test file of that name."""
        for name, text in included().items():
            self.assertEqual(text, (ROOT / name).read_text(), name)

    def test_examples_use_only_the_public_kit(self) -> None:
        """An example imports nothing from this repository's tests or mockllm's insides: a user can copy it."""
        for name, text in included().items():
            imports = re.findall(r"^(?:from|import) (\S+)", text, re.M)
            private = [m for m in imports if m.startswith("tests") or (m.startswith("mockllm") and m != "mockllm.testing")]
            self.assertEqual(private, [], name)
