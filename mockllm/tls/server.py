"""
The server side of mTLS: the pyOpenSSL options, and the reloadable connection creator
handed to C{SSL4ServerEndpoint}, built from files or from the development PKI.

Client certificates are verified by OpenSSL at the handshake against the CA
bundle (C{verify=True, caCerts=...}); C{requireCertificate} only decides
whether a client that presents nothing is refused (C{required}) or let in
(C{optional}).  A presented certificate must verify in both modes.

What each connection's handshake ends in is reported (see L{mockllm.tls.handshakes})
to C{on_handshake} if given, else to the served factory if it provides
L{IHandshakeObserver}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from OpenSSL import SSL, crypto
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.threads import deferToThread
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from zope.interface import implementer

from mockllm.config.model import CLIENT_CERT_MODES, TLSConfig
from mockllm.tls import pki
from mockllm.tls.handshakes import HandshakeWatch
from mockllm.tls.interfaces import HandshakeHook, IHandshakeObserver
from mockllm.tls.names import WILDCARDS
from mockllm.tls.material import (
    TLSConfigError,
    TLSMaterial,
    load_cas,
    load_material,
    material_from_issued,
    name_warnings,
)

log = Logger()


def certificate_options(material: TLSMaterial, client_cert: str = "required") -> CertificateOptions:
    """
    The pyOpenSSL-backed options for the server: verify client certificates
    against C{material.cas}; refuse clients without one if C{client_cert} is
    C{"required"}; TLS 1.2 minimum (1.3 is negotiated when the client can).
    """
    if client_cert not in CLIENT_CERT_MODES:
        raise ValueError(f"client_cert must be one of {CLIENT_CERT_MODES}, not {client_cert!r}")
    # pyOpenSSL deprecates its own X509/PKey for the server identity, so the
    # cryptography objects go in as they are; the CA store still needs X509.
    return CertificateOptions(
        privateKey=material.key,  # type: ignore[arg-type]
        certificate=material.cert,  # type: ignore[arg-type]
        extraCertChain=list(material.chain),  # type: ignore[arg-type]
        verify=True,
        caCerts=[crypto.X509.from_cryptography(c) for c in material.cas],
        requireCertificate=client_cert == "required",
        raiseMinimumTo=TLSVersion.TLSv1_2,
        # ALPN: Twisted asks the factory right under TLS for its protocols; a
        # wrapping factory (e.g. a connection limiter) may not forward them,
        # and an empty answer fails every ALPN client (curl, httpx) with an
        # internal-error alert.  Offering http/1.1 here keeps them working.
        acceptableProtocols=[b"http/1.1"],
    )



@implementer(IOpenSSLServerConnectionCreator)
class ReloadableServerTLS:
    """
    The server's TLS connection creator, for C{SSL4ServerEndpoint}.

    Each new connection is made from the current L{CertificateOptions};
    L{reload} swaps them, so new handshakes use the new material while open
    connections keep theirs.

    @ivar fault: the C{--tls-fault} in force, or None.  With a fault the
        server identity is a certificate made on the fly (see
        L{pki.fault_identity}); the CA bundle is still read from C{ca_path}.
    """

    def __init__(
        self,
        cert_path: Path,
        key_path: Path,
        ca_path: Path | Sequence[Path],
        client_cert: str = "required",
        on_handshake: Optional[HandshakeHook] = None,
        fault: Optional[str] = None,
        fault_ca: Optional[pki.Issued] = None,
        hosts=pki.DEFAULT_HOSTS,
        fault_ca_key: Optional[Path] = None,
        in_thread: Callable[..., Deferred] = deferToThread,
    ) -> None:
        """
        Load the material; raise L{TLSConfigError} (naming the file) if it is
        unusable, log a warning if the server certificate is expired.
        C{fault_ca} signs the fault certificate (see L{pki.fault_identity});
        C{in_thread} runs L{reload}'s file reads off the reactor thread.
        """
        self.cert_path, self.key_path = Path(cert_path), Path(key_path)
        #: The CA bundles trusted for client certificates (every certificate in each).
        self.ca_paths = tuple(map(Path, [ca_path] if isinstance(ca_path, (str, Path)) else ca_path))
        self.client_cert = client_cert
        self.on_handshake = on_handshake
        self.fault = fault
        self._in_thread = in_thread
        self._fault_identity = None
        if fault is not None:
            try:
                self._fault_identity = pki.fault_identity(fault, fault_ca, hosts, ca_key=fault_ca_key)
            except pki.PKIError as e:
                raise TLSConfigError(str(e)) from None
        self._use(self._read())

    def _read(self) -> TLSMaterial:
        """
        Read and check the files (or the fault identity plus the CA bundle).
        """
        if self._fault_identity is not None:
            cas = load_cas(self.ca_paths)
            return material_from_issued(self._fault_identity, cas)
        return load_material(self.cert_path, self.key_path, self.ca_paths)

    def _use(self, material: TLSMaterial) -> list[str]:
        """
        Build the options for C{material} and make them current.
        """
        options = certificate_options(material, self.client_cert)
        try:
            options.getContext()  # build now, so errors surface here, not at a handshake
        except SSL.Error as e:
            raise TLSConfigError(f"OpenSSL refused the material from {self.cert_path}: {e}") from None
        for warning in material.warnings:
            log.warn("{problem}", problem=warning)
        self._options, self.material = options, material
        return list(material.warnings)

    def reload(self) -> Deferred:
        """
        Re-read the certificate, key and CA bundle (in a thread: the reactor
        never waits on the disk).  Fires with the warnings (usually none)
        once new handshakes use the new material; fails with
        L{TLSConfigError} naming the file if one is broken, and the old
        material stays in use.  Open connections are never touched.
        """
        d = self._in_thread(self._read)
        d.addCallback(self._use)

        def done(warnings: list[str]) -> list[str]:
            log.info("TLS material reloaded from {cert}, {key}, {ca}",
                     cert=self.cert_path, key=self.key_path, ca=", ".join(map(str, self.ca_paths)))
            return warnings

        def failed(failure):
            failure.trap(TLSConfigError)
            log.error("TLS reload failed, keeping the previous material: {error}",
                      error=failure.getErrorMessage())
            return failure

        return d.addCallbacks(done, failed)

    def getContext(self) -> SSL.Context:
        """
        The current context (for code that wants an old-style context factory).
        """
        return self._options.getContext()

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        """
        A new server-side connection from the current material, reporting
        its handshake to C{on_handshake}, else to the served protocol if it
        provides L{IHandshakeObserver}.
        """
        conn = self._options.serverConnectionForTLS(tlsProtocol)
        hook = self.on_handshake
        if hook is None:
            served = _observer_under(tlsProtocol)
            if served is None:
                return conn

            def hook(ok: bool, reason: str) -> None:
                served.handshake(ok, reason, watch.subject)

        watch = HandshakeWatch(hook)
        conn.set_verify(conn.get_verify_mode(), watch.verify)
        conn.set_info_callback(watch.info)
        return conn


def _observer_under(protocol: object) -> Optional[IHandshakeObserver]:
    """
    The first protocol wrapped under C{protocol} (through protocol wrappers) that provides
    L{IHandshakeObserver}, or None.
    """
    for _ in range(4):
        protocol = getattr(protocol, "wrappedProtocol", None)
        if protocol is None or IHandshakeObserver.providedBy(protocol):
            return protocol
    return None


def _hosts_for(host: str) -> tuple[str, ...]:
    """
    The names a generated server certificate is for: the defaults, plus
    C{host} if it is a specific other interface.
    """
    if host in pki.DEFAULT_HOSTS or host in WILDCARDS:
        return pki.DEFAULT_HOSTS
    return pki.DEFAULT_HOSTS + (host,)


def _fault_ca(certs_dir: Path) -> Optional[pki.Issued]:
    ca_cert, ca_key = certs_dir / "ca.pem", certs_dir / "ca.key"
    if ca_cert.exists() and ca_key.exists():
        try:
            return pki.load_issued(ca_cert, ca_key)
        except pki.PKIError as e:
            raise TLSConfigError(str(e)) from None
    return None


def server_tls_from_config(
    config: TLSConfig, host: str = "127.0.0.1", on_handshake: Optional[HandshakeHook] = None
) -> tuple[ReloadableServerTLS, Optional[pki.DevPKI]]:
    """
    The server's TLS for C{config}, and the development PKI if it is the
    one in use.

    Each of C{cert_path}, C{key_path}, C{ca_cert_path} that is None means
    C{server.pem}, C{server.key}, C{ca.pem} in C{certs_dir}.  When all three
    are None, a missing development PKI is generated there first (existing
    files are kept).  Raises L{TLSConfigError} naming the file at fault.
    """
    certs_dir = Path(config.certs_dir)
    dev = None
    if config.cert_path is None and config.key_path is None and config.ca_cert_path is None:
        try:
            dev = pki.generate_dev_pki(certs_dir, hosts=_hosts_for(host))
        except (pki.PKIError, OSError) as e:
            raise TLSConfigError(f"cannot make the development PKI in {certs_dir}: {e}") from None
        if dev.created:
            log.info("mockllm: generated a development PKI in {dir}", dir=certs_dir)
    fault = config.fault
    server = ReloadableServerTLS(
        Path(config.cert_path or certs_dir / "server.pem"),
        Path(config.key_path or certs_dir / "server.key"),
        tuple(map(Path, config.ca_cert_path or ())) or (certs_dir / "ca.pem",),
        client_cert="required" if config.require_client_cert else "optional",
        on_handshake=on_handshake,
        fault=fault,
        fault_ca=_fault_ca(certs_dir) if fault not in (None, "untrusted-server-cert") else None,
        hosts=_hosts_for(host),
        fault_ca_key=certs_dir / "ca.key",
    )
    if fault is not None:
        log.warn("mockllm: --tls-fault {fault}: serving a certificate correct clients refuse", fault=fault)
    else:
        for warning in name_warnings(server.material.cert, server.cert_path, host):
            log.warn("{problem}", problem=warning)
    return server, dev
