"""
What a default start does not use is not imported: the admin API's modules come with the first
``/__admin/`` request; the request log's, the TLS reload's and the JSON-schema instance maker's
(with ``rstr``) only when they are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial import unittest

from tests.observe_support import observed_app
from tests.support import RawHTTP

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_STARTED = """
import json, sys
from mockllm import tap
options = tap.Options()
options.parseOptions(["--http-port", "0", *sys.argv[1:]])
service = tap.makeService(options)
service.privilegedStartService()
service.startService()
print(json.dumps(sorted(sys.modules)))
"""


class LazyImportTests(unittest.TestCase):
    """Modules a default start leaves out."""

    def started_modules(self, *argv: str) -> set[str]:
        """The modules a server started with ``argv`` (after ``--http-port 0``) has imported."""
        env = dict(os.environ, PYTHONPATH=_ROOT)
        done = subprocess.run([sys.executable, "-c", _STARTED, *argv], capture_output=True, text=True,
                              env=env, cwd=_ROOT, timeout=60, check=True)
        return set(json.loads(done.stdout.strip().splitlines()[-1]))

    def test_default_start_leaves_admin_out(self) -> None:
        """A started server with its default listeners has not imported the admin API's modules."""
        modules = self.started_modules("--https-port", "0", "--certs-dir", self.mktemp())
        self.assertIn("mockllm.http.routes", modules)
        self.assertIn("mockllm.tls.reload", modules)
        self.assertNotIn("mockllm.admin.api", modules)
        self.assertNotIn("mockllm.observe.verdict", modules)

    def test_plain_start_leaves_unused_parts_out(self) -> None:
        """``--no-https`` without a request log: no TLS reload, request log, schema instances or ``rstr``."""
        modules = self.started_modules("--no-https")
        self.assertIn("mockllm.behaviour.compose", modules)
        for module in ("mockllm.tls.reload", "mockllm.observe.requestlog", "mockllm.behaviour.schemagen", "rstr"):
            self.assertNotIn(module, modules)

    def test_first_admin_request_brings_it(self) -> None:
        """The first admin request is answered as before: the admin API is made then."""
        conn = RawHTTP(observed_app().app).send("GET", "/__admin/requests")
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.json()["object"], "list")
