"""
The server side of mTLS: certificate material, the reloadable connection
creator handed to C{SSL4ServerEndpoint}, and the handshake hook.

Client certificates are verified by OpenSSL at the handshake against the CA
bundle (C{verify=True, caCerts=...}); C{requireCertificate} only decides
whether a client that presents nothing is refused (C{required}) or let in
(C{optional}).  A presented certificate must verify in both modes.

What L{ReloadableServerTLS}'s C{on_handshake(ok, reason)} hook reports, per
TLS connection, at most once:

  - C{(True, "ok")} when the server completes the handshake;
  - C{(False, reason)} when the server sends a fatal alert before that:
    C{"no-certificate"}, C{"unknown-ca"} (other CA, or a chain that does not
    lead to a trusted CA), C{"self-signed"}, C{"expired"},
    C{"not-yet-valid"}, C{"bad-certificate"} (any other verify error),
    C{"protocol-version"} (e.g. a TLS 1.1 client) or C{"other"};
  - C{(False, "client-alert")} when the client aborts the handshake with a
    fatal alert (typically: it refused the server's certificate, as with
    C{--tls-fault}).

A client that drops the TCP connection mid-handshake without sending an
alert is not reported: OpenSSL gives the server nothing to see.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.threads import deferToThread
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mockllm import pki
from mockllm.config import TLSConfig

log = Logger()

#: Accepted values of C{--client-cert}.
CLIENT_CERT_MODES = ("required", "optional")

#: The signature of the handshake hook.
HandshakeHook = Callable[[bool, str], None]

# X509_V_ERR_* codes (stable across OpenSSL versions) -> refusal reason.
_VERIFY_REASONS = {
    2: "unknown-ca",  # unable to get issuer certificate
    9: "not-yet-valid",  # certificate is not yet valid
    10: "expired",  # certificate has expired
    18: "self-signed",  # self-signed certificate (depth zero)
    19: "unknown-ca",  # self-signed certificate in chain
    20: "unknown-ca",  # unable to get local issuer certificate
    21: "unknown-ca",  # unable to verify the first certificate
}

# TLS alert descriptions (RFC 8446 section 6) -> refusal reason.
_ALERT_REASONS = {
    40: "no-certificate",  # handshake_failure: what TLS 1.2 sends for a missing cert
    42: "bad-certificate",
    45: "expired",
    48: "unknown-ca",
    70: "protocol-version",
    116: "no-certificate",  # certificate_required (TLS 1.3)
}

_FATAL = 2


class TLSConfigError(Exception):
    """
    TLS material cannot be used; the message names the file at fault.
    """


@dataclass
class TLSMaterial:
    """
    The certificate, key, chain and trusted client CAs of the server, with
    the warnings found while loading them.
    """

    cert: x509.Certificate
    key: object
    chain: list[x509.Certificate]
    cas: list[x509.Certificate]
    warnings: list[str] = field(default_factory=list)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSConfigError(f"{what} file not found: {path}") from None
    except OSError as e:
        raise TLSConfigError(f"cannot read {what} file {path}: {e.strerror}") from None


def load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """
    All PEM certificates in C{path}; L{TLSConfigError} naming the file if it
    is missing or holds none.
    """
    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TLSConfigError(f"{what} file {path} contains no PEM certificates")
    return certs


def load_private_key(path: Path):
    """
    The unencrypted PEM private key in C{path}; L{TLSConfigError} naming the
    file otherwise.
    """
    data = _read(path, "TLS key")
    try:
        return serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError(f"TLS key file {path} is not an unencrypted PEM private key: {e}") from None


def _same_public_key(cert: x509.Certificate, key) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def expiry_warnings(cert: x509.Certificate, path: object) -> list[str]:
    """
    Warnings for a server certificate that is expired or not valid yet.
    """
    current = pki.now()
    if cert.not_valid_after_utc < current:
        return [f"server certificate {path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if cert.not_valid_before_utc > current + timedelta(minutes=5):
        return [f"server certificate {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"]
    return []


def load_material(cert_path: Path, key_path: Path, ca_path: Path) -> TLSMaterial:
    """
    Read and check the server certificate (with any chain after it), its key
    and the client CA bundle.

    Raises L{TLSConfigError} naming the file for: a missing or unreadable
    file, a key that does not match the certificate, a CA bundle with no
    certificates.  An expired server certificate is only a warning, kept in
    L{TLSMaterial.warnings}.
    """
    certs = load_certificates(cert_path, "TLS certificate")
    key = load_private_key(key_path)
    if not _same_public_key(certs[0], key):
        raise TLSConfigError(f"TLS key file {key_path} does not match the certificate in {cert_path}")
    cas = load_certificates(ca_path, "TLS CA bundle")
    return TLSMaterial(certs[0], key, certs[1:], cas, expiry_warnings(certs[0], cert_path))


def material_from_issued(issued: pki.Issued, cas: list[x509.Certificate]) -> TLSMaterial:
    """
    Material whose server identity is C{issued} (e.g. a TLS fault certificate).
    """
    return TLSMaterial(issued.cert, issued.key, list(issued.chain), cas)


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


class _HandshakeWatch:
    """
    Per-connection OpenSSL callbacks that report the handshake outcome once.
    """

    def __init__(self, hook: HandshakeHook) -> None:
        self.hook = hook
        self.verify_error: Optional[int] = None
        self.reported = False

    def verify(self, conn, cert, errno: int, depth: int, ok: int) -> bool:
        """
        Remember the first verification error; never change OpenSSL's verdict.
        """
        if not ok and self.verify_error is None:
            self.verify_error = errno
        return bool(ok)

    def info(self, conn, where: int, ret: int) -> None:
        """
        Report a completed handshake or the first fatal alert before one.
        """
        if self.reported:
            return
        if where & SSL.SSL_CB_HANDSHAKE_DONE:
            self._report(True, "ok")
        elif where & SSL.SSL_CB_ALERT and (ret >> 8) == _FATAL:
            if where & SSL.SSL_CB_READ:
                self._report(False, "client-alert")
            else:
                self._report(False, self._reason(ret & 0xFF))

    def _reason(self, alert: int) -> str:
        if self.verify_error is not None:
            return _VERIFY_REASONS.get(self.verify_error, "bad-certificate")
        return _ALERT_REASONS.get(alert, "other")

    def _report(self, ok: bool, reason: str) -> None:
        self.reported = True
        try:
            self.hook(ok, reason)
        except Exception:
            log.failure("on_handshake hook failed for ok={ok} reason={reason}", ok=ok, reason=reason)


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
        ca_path: Path,
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
        self.cert_path, self.key_path, self.ca_path = Path(cert_path), Path(key_path), Path(ca_path)
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
            cas = load_certificates(self.ca_path, "TLS CA bundle")
            return material_from_issued(self._fault_identity, cas)
        return load_material(self.cert_path, self.key_path, self.ca_path)

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
                     cert=self.cert_path, key=self.key_path, ca=self.ca_path)
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
        A new server-side connection from the current material, with the
        handshake hook attached if there is one.
        """
        conn = self._options.serverConnectionForTLS(tlsProtocol)
        if self.on_handshake is not None:
            watch = _HandshakeWatch(self.on_handshake)
            conn.set_verify(conn.get_verify_mode(), watch.verify)
            conn.set_info_callback(watch.info)
        return conn


#: Listening addresses that mean "every interface".
WILDCARDS = ("", "0.0.0.0", "::")


def client_name(host: str) -> str:
    """
    The name clients are told to use for a listener on C{host}: C{localhost}
    for loopback and wildcard addresses (the development certificate's
    name), else C{host} itself.
    """
    return "localhost" if host in WILDCARDS or host in ("127.0.0.1", "::1") else host


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
        Path(config.ca_cert_path or certs_dir / "ca.pem"),
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


def certificate_names(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses in C{cert}'s subjectAltName."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName)) | {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


def name_warnings(cert: x509.Certificate, path: object, host: str) -> list[str]:
    """
    A warning when C{host}, the address clients are told to use, is not a
    name in the server certificate (an existing PKI made for another host):
    clients that check names will refuse the handshake (see L{client_name}).
    """
    wanted = client_name(host)
    names = certificate_names(cert)
    if wanted in names:
        return []
    listed = ", ".join(sorted(names)) or "no names"
    return [
        f"server certificate {path} is not for {wanted} (it names {listed}): clients that check "
        f"the name will refuse it; use a certificate for {wanted}, or move the files away to have "
        "a development PKI made for it"
    ]


class TLSReloadService(Service):
    """
    Reloads the server's TLS material on SIGHUP while running (the previous
    handler is restored on stop).
    """

    def __init__(self, server_tls: ReloadableServerTLS, reactor=None) -> None:
        """
        Reload C{server_tls}; C{reactor} schedules the reload (default: the global one).
        """
        self.server_tls = server_tls
        self._reactor = reactor
        self._previous = None

    def startService(self) -> None:
        """
        Install the SIGHUP handler (where there is SIGHUP and this is the main thread).
        """
        super().startService()
        if hasattr(signal, "SIGHUP"):
            try:
                self._previous = signal.signal(signal.SIGHUP, self._on_signal)
            except ValueError:  # not the main thread
                self._previous = None

    def stopService(self) -> None:
        """
        Put the previous SIGHUP handler back.
        """
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _on_signal(self, signum, frame) -> None:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        reactor.callFromThread(self.reload)

    def reload(self) -> Deferred:
        """
        Reload now; a broken file is logged (by L{ReloadableServerTLS.reload}), not raised.
        """
        def logged_already(failure) -> None:
            failure.trap(TLSConfigError)

        return self.server_tls.reload().addErrback(logged_already)


def reload_response(server_tls: Optional[ReloadableServerTLS]) -> Deferred:
    """
    What C{POST /__admin/reload-tls} answers: fires with C{(status, body)}
    where body is a JSON-ready dict: 200 C{{"reloaded": true, "warnings":
    [...]}}, 500 C{{"reloaded": false, "error": "..."}} naming the broken
    file (the old material stays in use), or 404 without an HTTPS listener.
    Cancelling it (Klein does when the client disconnects) does not stop the
    reload: see L{detached}.
    """
    if server_tls is None:
        return succeed((404, {"reloaded": False, "error": "this server has no HTTPS listener"}))

    def failed(failure):
        failure.trap(TLSConfigError)
        return 500, {"reloaded": False, "error": failure.getErrorMessage()}

    d = server_tls.reload()
    d.addCallbacks(lambda warnings: (200, {"reloaded": True, "warnings": warnings}), failed)
    return detached(d)


def detached(work: Deferred) -> Deferred:
    """
    A new Deferred that fires with C{work}'s result, but whose cancellation
    leaves C{work} running.

    Klein cancels a route's Deferred when the client disconnects; a reload
    must still finish (and log) then, not be dropped half-way.  Once the
    returned Deferred has been cancelled, C{work}'s result is dropped: a
    success quietly, a failure (other than the L{TLSConfigError} that
    L{ReloadableServerTLS.reload} has already logged) logged here.
    """
    waiting = Deferred()

    def forward(result):
        if waiting.called:  # cancelled: nobody waits for the result any more
            if isinstance(result, Failure):
                log.failure("TLS reload failed after its caller went away", result)
        elif isinstance(result, Failure):
            waiting.errback(result)
        else:
            waiting.callback(result)

    work.addBoth(forward)
    return waiting
