"""
The ``twist mockllm`` / ``twistd mockllm`` plugin.

Deliberately lazy: importing this module (which ``twist`` does for every
plugin on every start) imports nothing from mockllm itself.  Only when
``mockllm`` is the command chosen does it pause the cyclic garbage collector
for the start-up (imports make many objects and free few; collecting as the
heap grows was a tenth of the start); the server's ``ServerCollector``
freezes what start-up made and turns the collector back on.
"""

import gc

from twisted.application.service import ServiceMaker


class _MockLLMMaker(ServiceMaker):
    """A ``ServiceMaker`` that pauses the collector when its options are asked for (the command was chosen)."""

    @property
    def options(self):
        """``mockllm.tap.Options``, imported with the collector paused."""
        gc.disable()
        return super().options


mockllm = _MockLLMMaker(
    "mockllm",
    "mockllm.tap",
    "A fault-injecting mock of the OpenAI API (HTTP on 8001, mTLS on 8443).",
    "mockllm",
)
