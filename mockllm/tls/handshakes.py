"""
TLS handshake outcomes: :class:`HandshakeWatch` reports each server-side handshake once.

What the hook ``on_handshake(ok, reason)`` is told, per TLS connection, at most once:

- ``(True, "ok")`` when the server completes the handshake;
- ``(False, reason)`` when the server sends a fatal alert before that:
  ``"no-certificate"``, ``"unknown-ca"`` (other CA, or a chain that does not
  lead to a trusted CA), ``"self-signed"``, ``"expired"``,
  ``"not-yet-valid"``, ``"bad-certificate"`` (any other verify error),
  ``"protocol-version"`` (e.g. a TLS 1.1 client) or ``"other"``;
- ``(False, "client-alert")`` when the client aborts the handshake with a
  fatal alert (typically: it refused the server's certificate, as with
  ``--tls-fault``).

A client that drops the TCP connection mid-handshake without sending an
alert is not reported: OpenSSL gives the server nothing to see.  Without a hook, the
protocol the TLS layer serves is told if it provides
:class:`~mockllm.tls.interfaces.IHandshakeObserver` (the connection limiter's does: it also
notices a client that completes the handshake and closes without a request, which is how
some clients, curl among them, refuse a server certificate for its name).  This module
imports nothing heavy.
"""

from __future__ import annotations

from typing import Optional

from twisted.logger import Logger

from mockllm.tls.interfaces import HandshakeHook

log = Logger()

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

class HandshakeWatch:
    """
    Per-connection OpenSSL callbacks that report the handshake outcome once.
    """

    def __init__(self, hook: HandshakeHook) -> None:
        self.hook = hook
        self.verify_error: Optional[int] = None
        self.reported = False
        #: The subject of the client's certificate, once the handshake has seen one.
        self.subject: Optional[str] = None

    def verify(self, conn, cert, errno: int, depth: int, ok: int) -> bool:
        """
        Remember the first verification error; never change OpenSSL's verdict.
        """
        if not ok and self.verify_error is None:
            self.verify_error = errno
        if depth == 0 and self.subject is None:
            self.subject = cert.to_cryptography().subject.rfc4514_string()
        return bool(ok)

    def info(self, conn, where: int, ret: int) -> None:
        """
        Report a completed handshake or the first fatal alert before one.
        """
        if self.reported:
            return
        if where & _CB_HANDSHAKE_DONE:
            self._report(True, "ok")
        elif where & _CB_ALERT and (ret >> 8) == _FATAL:
            if where & _CB_READ:
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



# OpenSSL info-callback flags (as pyOpenSSL names them).
_CB_HANDSHAKE_DONE = 0x20
_CB_ALERT = 0x4000
_CB_READ = 0x04
