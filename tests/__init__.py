"""mockllm's test suite: runs under both ``trial tests`` and ``pytest``."""
