"""
The ``mtls:`` server endpoint string parser (see :mod:`mockllm.tls.endpoint`).

Deliberately lazy: importing this module (which Twisted's plugin system does) imports
nothing from mockllm; the endpoint is built only when an ``mtls:`` description is parsed.
"""

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class MTLSParser:
    """``mtls:PORT[:option=value...]``: HTTPS requiring verified client certificates."""

    prefix = "mtls"

    def parseStreamServer(self, reactor, *args, **kwargs):
        """The endpoint ``mtls:`` names (see ``mockllm.tls.endpoint.parse_mtls``)."""
        from mockllm.tls.endpoint import parse_mtls

        return parse_mtls(reactor, *args, **kwargs)


mtls = MTLSParser()
