"""
The ``twist mockllm`` / ``twistd mockllm`` plugin.

Deliberately lazy: importing this module (which ``twist`` does for every
plugin on every start) imports nothing from mockllm itself.
"""

from twisted.application.service import ServiceMaker

mockllm = ServiceMaker(
    "mockllm",
    "mockllm.tap",
    "A fault-injecting mock of the OpenAI API (HTTP on 8001, mTLS on 8443).",
    "mockllm",
)
