"""
The ``mtls:`` server endpoint: HTTPS that requires and verifies client certificates.

``mtls:PORT[:interface=ADDR][:backlog=N][:certsDir=DIR][:certKey=CERT.pem]
[:privateKey=KEY.pem][:caCerts=CA.pem[,CA2.pem]][:clientCert=required|optional]
[:fault=NAME]``.  Without ``certKey``/``privateKey``/``caCerts`` the development PKI in
``certsDir`` (default ``certs``) is used, and made there if missing.  Like ``tcp:`` and
``ssl:``, a description without ``interface=`` listens on every interface.  The parser
plugin in ``twisted/plugins/mockllm_endpoints.py`` makes this available to every
``serverFromString`` caller (``twist web --listen mtls:8443`` too); ``twist mockllm
--listen`` and its ``--https-port`` shorthand use the same function.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from zope.interface import implementer

from mockllm.config.checks import apply, ascii_whole, one_of, whole
from mockllm.config.model import CLIENT_CERT_MODES, TLS_FAULTS, ServerConfig, TLSConfig
from mockllm.tls.interfaces import IMTLSEndpoint
from mockllm.tls.names import client_name, url_host
from mockllm.tls.pki import DevPKI
from mockllm.tls.server import ReloadableServerTLS, server_tls_from_config


@implementer(IStreamServerEndpoint, IMTLSEndpoint)
class MTLSServerEndpoint:
    """An ``SSL4ServerEndpoint`` whose TLS (:attr:`tls`) can be reloaded; :attr:`dev` is the PKI used, if generated."""

    def __init__(self, reactor: object, port: int, tls: ReloadableServerTLS, dev: DevPKI | None,
                 backlog: int, interface: str) -> None:
        self.tls = tls
        self.dev = dev
        self.interface = interface
        self._endpoint = SSL4ServerEndpoint(reactor, port, tls, backlog=backlog, interface=interface)

    def listen(self, protocolFactory: object) -> Deferred:
        """Listen with the mTLS options; fires with the ``IListeningPort``."""
        return self._endpoint.listen(protocolFactory)

    def announce(self, port: IListeningPort) -> str:
        """The line saying where this listener serves, with a curl command to paste."""
        name = url_host(client_name(self.interface))
        number = port.getHost().port
        if self.dev is not None:
            curl = self.dev.curl_command(number, name)
        else:
            curl = f"curl --cacert SERVER-CA.pem --cert CLIENT.pem --key CLIENT.key https://{name}:{number}/v1/models"
        return f"mockllm: HTTPS (mTLS) on https://{name}:{number} -- try: {curl}"


def parse_mtls(reactor: object, port: str, **options: str) -> MTLSServerEndpoint:
    """The endpoint an ``mtls:`` description names; ``ValueError`` names a bad option.

    ``TLSConfigError`` (from :mod:`mockllm.tls.material`) names a file that cannot be used.
    """
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise ValueError(f"mtls: unknown option {sorted(unknown)[0]!r}; expected one of {', '.join(_OPTIONS)}")
    number = apply(whole(0, 65535), _number(port), "mtls: port")
    backlog = apply(whole(1), _number(options.get("backlog", str(ServerConfig.backlog))), "mtls: backlog")
    mode = apply(one_of(CLIENT_CERT_MODES), options.get("clientCert", "required"), "mtls: clientCert")
    fault = options.get("fault")
    if fault is not None:
        apply(one_of(TLS_FAULTS), fault, "mtls: fault")
    if ("certKey" in options) != ("privateKey" in options):
        raise ValueError("mtls: certKey and privateKey go together: give both or neither")
    config = TLSConfig(
        cert_path=options.get("certKey"),
        key_path=options.get("privateKey"),
        ca_cert_path=tuple(p for p in options.get("caCerts", "").split(",") if p) or None,
        require_client_cert=mode == "required",
        certs_dir=options.get("certsDir", TLSConfig.certs_dir),
        fault=fault,
    )
    interface = options.get("interface", "")
    tls, dev = server_tls_from_config(config, interface)
    return MTLSServerEndpoint(reactor, number, tls, dev, backlog, interface)


def _number(text: str) -> int | str:
    """``text`` as a whole number, or ``text`` itself for the check to refuse by name."""
    value = ascii_whole(text, 9)
    return text if value is None else value


#: The options an ``mtls:`` description takes.
_OPTIONS = ("interface", "backlog", "certsDir", "certKey", "privateKey", "caCerts", "clientCert", "fault")
