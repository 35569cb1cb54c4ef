"""
The package layout keeps its promises: imports go one way between the packages by concern
(as ``docs/architecture.md`` draws them), every module says what it owns, and the light
modules stay light.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from twisted.trial import unittest

PACKAGE = Path(__file__).resolve().parent.parent / "mockllm"

#: package -> the mockllm packages its modules may import from.
ALLOWED = {
    "config": {"frozen"},
    "behaviour": {"config", "dialects", "frozen", "headers", "transport"},
    "dialects": {"behaviour", "config", "frozen"},
    "tls": {"config", "frozen", "transport"},
    "observe": {"behaviour", "config", "frozen", "startup"},
    "admin": {"behaviour", "config", "dialects", "frozen", "observe", "tls"},
    "http": {"behaviour", "config", "dialects", "frozen", "headers", "observe", "startup", "tls"},
    "testing": {"admin", "behaviour", "config", "frozen", "http", "observe", "server"},
}


def imported_packages(path: Path) -> set[str]:
    """The ``mockllm.<name>`` top-level names a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mockllm" and len(parts) > 1:
                found.add(parts[1])
    return found


class LayeringTests(unittest.TestCase):
    """Imports between the packages go the way the architecture says."""

    def test_imports_go_one_way(self) -> None:
        """No module imports from a package its own package may not depend on."""
        wrong = []
        for package, allowed in ALLOWED.items():
            for path in sorted((PACKAGE / package).glob("*.py")):
                for other in imported_packages(path) - allowed - {package}:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports mockllm.{other}")
        self.assertEqual(wrong, [])

    def test_every_module_says_what_it_owns(self) -> None:
        """Every module opens with a docstring."""
        missing = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
                   if not ast.get_docstring(ast.parse(p.read_text()))]
        self.assertEqual(missing, [])

    def test_light_modules_import_nothing_heavy(self) -> None:
        """The TLS interfaces and both Twisted plugins load without OpenSSL, cryptography or mockllm's server."""
        code = (
            "import sys; import mockllm.tls.interfaces, mockllm.tls.names; "
            "import twisted.plugins.mockllm_plugin, twisted.plugins.mockllm_endpoints; "
            "print(sorted(m for m in ('OpenSSL', 'cryptography', 'mockllm.tap', 'mockllm.tls.endpoint') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=str(PACKAGE.parent))
        self.assertEqual(out.stdout.strip(), "[]")
