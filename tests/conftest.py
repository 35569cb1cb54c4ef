"""
pytest only: run the suite in a scratch working directory, as ``trial`` runs
it in ``_trial_temp``, so files a test makes relative to the working
directory (``TestCase.mktemp()``, a ``certs/`` dir) never land in the checkout.
"""

import os

import pytest

#: The kit's fixture for tests/test_testing_*.py (an installed package registers it by entry point).
pytest_plugins = ["mockllm.testing.pytest_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _scratch_cwd(tmp_path_factory):
    """Change into a fresh directory for the whole session, and back afterwards."""
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)
