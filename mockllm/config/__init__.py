"""
Configuration: the model holding every default once (:mod:`.model`), the value checks shared
by the command line, the TOML file and request controls (:mod:`.checks`), and the TOML loader
(:mod:`.toml`).
"""

from mockllm.config.model import (
    DEFAULT_MODELS,
    TLS_FAULTS,
    Config,
    ModelsConfig,
    ObserveConfig,
    ResponsesConfig,
    ServerConfig,
    TLSConfig,
)

__all__ = [
    "DEFAULT_MODELS",
    "TLS_FAULTS",
    "Config",
    "ModelsConfig",
    "ObserveConfig",
    "ResponsesConfig",
    "ServerConfig",
    "TLSConfig",
]
