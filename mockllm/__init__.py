"""mockllm: a fault-injecting, client-certificate-verifying mock of the OpenAI API."""

__version__ = "0.1.0"
