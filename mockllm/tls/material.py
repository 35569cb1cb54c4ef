"""
Certificate material: reading and checking the server certificate, key, chain and client CAs,
and the names clients are told to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mockllm.tls import pki
from mockllm.tls.interfaces import TLSConfigError
from mockllm.tls.names import client_name


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


def load_cas(ca_paths: Sequence[Path]) -> list[x509.Certificate]:
    """Every CA certificate in the bundles ``ca_paths`` (each must hold at least one)."""
    return [cert for path in ca_paths for cert in load_certificates(path, "TLS CA bundle")]


def load_material(cert_path: Path, key_path: Path, ca_paths: Sequence[Path]) -> TLSMaterial:
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
    cas = load_cas(ca_paths)
    return TLSMaterial(certs[0], key, certs[1:], cas, expiry_warnings(certs[0], cert_path))


def material_from_issued(issued: pki.Issued, cas: list[x509.Certificate]) -> TLSMaterial:
    """
    Material whose server identity is C{issued} (e.g. a TLS fault certificate).
    """
    return TLSMaterial(issued.cert, issued.key, list(issued.chain), cas)



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


