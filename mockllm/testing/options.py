"""
:class:`ServerOptions`: how a test asks for its server, the same for every entry point.

The pytest marker's keywords, ``serve(testcase, **options)`` and ``memory(clock,
**options)`` all become one of these; an unknown keyword is a ``TypeError`` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from mockllm.config import Config


@dataclass(frozen=True)
class ServerOptions:
    """A test server's scenario, seed, listeners and configuration."""

    #: The current scenario (``None``: the server's default).
    scenario: str | None = None
    #: Parameters over the scenario's own (as ``PUT /__admin/scenario`` takes them).
    params: Mapping[str, Any] | None = None
    #: Seeds every random choice (``--seed``).
    seed: int | None = None
    #: Also serve HTTPS with required client certificates, from a fresh development PKI.
    https: bool = False
    #: A TOML file (as ``--config`` reads it) or a ready :class:`Config`.
    config: str | os.PathLike | Config | None = None

    def load(self, relative_to: str | os.PathLike | None = None) -> Config:
        """The configuration: the file (a relative path is taken from ``relative_to``), else the defaults."""
        from mockllm.config.toml import load_config

        if isinstance(self.config, Config):
            return self.config
        if self.config is None:
            return Config()
        path = os.fspath(self.config)
        if relative_to is not None:
            path = os.path.join(os.fspath(relative_to), path)
        return load_config(path)
