"""
What a default start does not use is not imported: the admin API's modules come with the first
``/__admin/`` request.
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
options.parseOptions(["--http-port", "0", "--https-port", "0", "--certs-dir", sys.argv[1]])
service = tap.makeService(options)
service.privilegedStartService()
service.startService()
print(json.dumps(sorted(sys.modules)))
"""


class LazyImportTests(unittest.TestCase):
    """Modules a default start leaves out."""

    def test_default_start_leaves_admin_out(self) -> None:
        """A started server with its default listeners has not imported the admin API's modules."""
        env = dict(os.environ, PYTHONPATH=_ROOT)
        done = subprocess.run([sys.executable, "-c", _STARTED, self.mktemp()], capture_output=True, text=True,
                              env=env, cwd=_ROOT, timeout=60, check=True)
        modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
        self.assertIn("mockllm.http.routes", modules)
        self.assertNotIn("mockllm.admin.api", modules)
        self.assertNotIn("mockllm.observe.verdict", modules)

    def test_first_admin_request_brings_it(self) -> None:
        """The first admin request is answered as before: the admin API is made then."""
        conn = RawHTTP(observed_app().app).send("GET", "/__admin/requests")
        self.assertEqual(conn.status, 200)
        self.assertEqual(conn.json()["object"], "list")
