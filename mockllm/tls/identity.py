"""
Who is calling: the verified client certificate and TLS parameters of the
connection a request came in on.

Formats (chosen to match what C{openssl x509 -noout -subject -issuer -serial
-fingerprint -sha256} prints, so users can compare):

  - C{subject}, C{issuer}: RFC 4514 strings, e.g. C{"CN=mockllm-client,O=mockllm development"};
  - C{serial}: upper-case hex without a prefix, e.g. C{"3F0A9C..."};
  - C{fingerprint_sha256}: upper-case hex pairs joined by colons, of the
    certificate's DER encoding;
  - C{tls_version}: OpenSSL's name, e.g. C{"TLSv1.3"}; C{cipher}: OpenSSL's
    cipher name, e.g. C{"TLS_AES_256_GCM_SHA384"}.

Any certificate found on a connection has been verified: the server refuses
the handshake otherwise (see L{mockllm.tls}).  The description is computed
once per connection and cached, since keep-alive requests share it.
"""

from __future__ import annotations

import weakref
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from mockllm.transport import handle_under

#: What L{PeerIdentities} has not looked up yet for a channel.
_UNKNOWN = object()

#: The keys of L{PeerIdentities.describe}'s answer, all None over plain HTTP.
FIELDS = ("subject", "issuer", "serial", "fingerprint_sha256", "tls_version", "cipher")

def certificate_identity(cert: x509.Certificate) -> dict:
    """
    The subject, issuer, serial and SHA-256 fingerprint of C{cert}.
    """
    digest = cert.fingerprint(hashes.SHA256())
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"),
        "fingerprint_sha256": ":".join(f"{b:02X}" for b in digest),
    }


def _tls_connection(request) -> Optional[SSL.Connection]:
    """
    The OpenSSL connection under C{request}: its channel's transport, or a
    transport below that (an HTTP/2 stream sits on the connection).
    """
    transport = getattr(getattr(request, "channel", None), "transport", None)
    return handle_under(transport, SSL.Connection, 3)


def _describe(conn: SSL.Connection) -> dict:
    described = dict.fromkeys(FIELDS)
    cert = conn.get_peer_certificate(as_cryptography=True)
    if cert is not None:
        described.update(certificate_identity(cert))
    described["tls_version"] = conn.get_protocol_version_name()
    described["cipher"] = conn.get_cipher_name()
    return described


class PeerIdentities:
    """
    Describes the connection under a request, once per connection (requests
    sharing a keep-alive connection share the description).  The app holds
    one; the admin API's C{/whoami} asks the same one.
    """

    def __init__(self) -> None:
        self._described: "weakref.WeakKeyDictionary[SSL.Connection, dict]" = weakref.WeakKeyDictionary()
        #: channel -> its connection's identity (None: plain HTTP or no certificate), found once per
        #: channel: finding the OpenSSL connection walks the transport's layers.
        self._identities: "weakref.WeakKeyDictionary[object, Optional[dict]]" = weakref.WeakKeyDictionary()

    def describe(self, request) -> dict:
        """
        All of L{FIELDS} for C{request}'s connection; the certificate fields
        are None when no certificate was presented, and everything is None
        over plain HTTP.
        """
        conn = _tls_connection(request)
        if conn is None:
            return dict.fromkeys(FIELDS)
        described = self._described.get(conn)
        if described is None:
            described = self._described[conn] = _describe(conn)
        return dict(described)

    def identify(self, request) -> Optional[dict]:
        """
        The verified client certificate of C{request}'s connection (subject,
        issuer, serial, fingerprint_sha256) with its tls_version and cipher,
        or None over plain HTTP or when the client presented no certificate.
        """
        channel = getattr(request, "channel", None)
        if channel is None:
            found = self._identity(request)
        else:
            found = self._identities.get(channel, _UNKNOWN)
            if found is _UNKNOWN:
                found = self._identities[channel] = self._identity(request)
        return None if found is None else dict(found)

    def _identity(self, request) -> Optional[dict]:
        if _tls_connection(request) is None:
            return None
        described = self.describe(request)
        return described if described["subject"] is not None else None
