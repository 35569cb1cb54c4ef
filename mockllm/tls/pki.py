"""
Development PKI for the mTLS listener, made with C{cryptography}.

The layout written by L{generate_dev_pki} (and by C{python -m mockllm certs DIR})::

    ca.pem, ca.key          the development certificate authority
    server.pem, server.key  the server's certificate (SANs: localhost, 127.0.0.1, ::1)
    client.pem, client.key  a client certificate signed by the CA
    bad-*.pem, bad-*.key    with --bad: client certificates the server refuses

Keys are EC P-256 (fast to make, accepted by curl, OpenSSL and Python's ssl),
written with mode 0600.  Files that already exist are never overwritten.

The same helpers make the on-the-fly server certificates for C{--tls-fault}
(see L{fault_identity}).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mockllm.config.model import TLS_FAULTS
from mockllm.frozen import Frozen, frozen

#: The names the default server certificate is valid for.
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

#: The common name of the default client certificate.
DEFAULT_CLIENT_CN = "mockllm-client"

#: How long generated certificates are valid, in days.
DEFAULT_DAYS = 825

#: The names of the C{--tls-fault} choices.

#: The host name a C{wrong-host} certificate is made for.
WRONG_HOST = "wrong-host.invalid"

#: The bad client material written with C{--bad}: file stem -> what it is.
BAD_CLIENTS: dict[str, str] = {
    "bad-expired-client": "a client certificate from the right CA that has expired",
    "bad-other-ca-client": "a client certificate signed by a CA the server does not trust",
    "bad-self-signed-client": "a self-signed client certificate",
    "bad-not-yet-valid-client": "a client certificate from the right CA that is not valid yet",
}

_CLOCK_SKEW = timedelta(minutes=5)


class PKIError(Exception):
    """
    The PKI cannot be made or loaded; the message names the file at fault.
    """


@frozen(slots=False)
class Issued(Frozen):
    """
    A certificate with its private key (and the chain above it, if any).
    """

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        """
        The certificate as PEM.
        """
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """
        The private key as unencrypted PKCS#8 PEM.
        """
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def now() -> datetime:
    """
    The current time, timezone-aware UTC.
    """
    return datetime.now(timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    """
    A fresh EC P-256 private key.
    """
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mockllm development"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _validity(days: int, not_before: datetime | None, not_after: datetime | None):
    start = not_before if not_before is not None else now() - _CLOCK_SKEW
    end = not_after if not_after is not None else start + timedelta(days=days)
    return start, end


def host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """
    Subject alternative names for C{hosts}: IP addresses as IP entries,
    anything else as DNS names.
    """
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key, start, end, ca: bool):
    """
    The fields and extensions every certificate here has.
    """
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(_key_usage(ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(
    cn: str = "mockllm development CA",
    days: int = DEFAULT_DAYS,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """
    A self-signed certificate authority that may sign leaf certificates only.
    """
    key = new_key()
    start, end = _validity(days, not_before, not_after)
    cert = _builder(_name(cn), _name(cn), key.public_key(), start, end, ca=True).sign(key, hashes.SHA256())
    return Issued(cert, key)


def issue_leaf(
    ca: Issued | None,
    cn: str,
    *,
    server: bool = False,
    hosts: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """
    A leaf certificate for C{cn}, signed by C{ca} (self-signed if C{ca} is
    None).  C{server} selects serverAuth and the C{hosts} SANs; otherwise the
    certificate is for clientAuth.
    """
    key = new_key()
    start, end = _validity(days, not_before, not_after)
    issuer_name = ca.cert.subject if ca is not None else _name(cn)
    signer = ca.key if ca is not None else key
    issuer_public = ca.key.public_key() if ca is not None else key.public_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(cn), issuer_name, key.public_key(), start, end, ca=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(host_names(hosts)), critical=False
        )
    cert = builder.sign(signer, hashes.SHA256())
    return Issued(cert, key, (ca.cert,) if ca is not None else ())


def server_cert(
    ca: Issued, hosts: Sequence[str] = DEFAULT_HOSTS, days: int = DEFAULT_DAYS, **when
) -> Issued:
    """
    A server certificate for C{hosts} (the first one is also the CN).
    C{when} may hold C{not_before}/C{not_after}.
    """
    return issue_leaf(ca, hosts[0], server=True, hosts=hosts, days=days, **when)


def client_cert(
    ca: Issued | None, cn: str = DEFAULT_CLIENT_CN, days: int = DEFAULT_DAYS, **when
) -> Issued:
    """
    A client certificate with common name C{cn} (self-signed if C{ca} is
    None).  C{when} may hold C{not_before}/C{not_after}.
    """
    return issue_leaf(ca, cn, days=days, **when)


def expired(ca: Issued | None, cn: str, *, server: bool = False, hosts=()) -> Issued:
    """
    A certificate whose validity ended a day ago.
    """
    return issue_leaf(
        ca,
        cn,
        server=server,
        hosts=hosts,
        not_before=now() - timedelta(days=30),
        not_after=now() - timedelta(days=1),
    )


def not_yet_valid(ca: Issued | None, cn: str) -> Issued:
    """
    A client certificate whose validity starts tomorrow.
    """
    start = now() + timedelta(days=1)
    return issue_leaf(ca, cn, not_before=start, not_after=start + timedelta(days=30))


def bad_client(kind: str, ca: Issued, cn: str = DEFAULT_CLIENT_CN) -> Issued:
    """
    The bad client certificate named C{kind} (a key of L{BAD_CLIENTS}).
    """
    if kind == "bad-expired-client":
        return expired(ca, cn)
    if kind == "bad-other-ca-client":
        return client_cert(make_ca("mockllm untrusted CA"), cn)
    if kind == "bad-self-signed-client":
        return client_cert(None, cn)
    if kind == "bad-not-yet-valid-client":
        return not_yet_valid(ca, cn)
    raise ValueError(f"unknown bad client kind: {kind}")


def fault_identity(
    fault: str, ca: Issued | None, hosts: Sequence[str] = DEFAULT_HOSTS, ca_key: Path | str | None = None
) -> Issued:
    """
    A server certificate made on the fly for C{--tls-fault}:

      - C{expired-server-cert}: for C{hosts}, signed by C{ca}, expired;
      - C{wrong-host}: for L{WRONG_HOST} only, signed by C{ca};
      - C{untrusted-server-cert}: for C{hosts}, signed by a fresh CA that no
        client knows (C{ca} is not needed).

    Raises L{PKIError} if the fault needs C{ca} and it is None, naming
    C{ca_key}, where the CA key was looked for (default: C{ca.key} in
    C{--certs-dir}).
    """
    if fault == "untrusted-server-cert":
        return server_cert(make_ca("mockllm untrusted CA"), hosts)
    if fault not in TLS_FAULTS:
        raise PKIError(f"unknown TLS fault {fault!r}; choose one of {', '.join(TLS_FAULTS)}")
    if ca is None:
        where = ca_key if ca_key is not None else "ca.key in --certs-dir"
        raise PKIError(f"--tls-fault {fault} needs the CA key to sign its certificate (looked for {where})")
    if fault == "expired-server-cert":
        return expired(ca, hosts[0], server=True, hosts=hosts)
    return server_cert(ca, (WRONG_HOST,))


def write_new(path: Path, data: bytes, private: bool = False) -> None:
    """
    Write C{data} to a new file at C{path}; mode 0600 if C{private}.

    Raises C{FileExistsError} rather than overwrite an existing file.
    """
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def load_issued(cert_path: Path, key_path: Path) -> Issued:
    """
    Read a certificate and its key from PEM files.  Raises L{PKIError}
    naming the file that cannot be read.
    """
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as e:
        raise PKIError(f"cannot read certificate {cert_path}: {e}") from None
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise PKIError(f"cannot read private key {key_path}: {e}") from None
    return Issued(cert, key)  # type: ignore[arg-type]


@dataclass
class DevPKI:
    """
    Where a development PKI lives and what L{generate_dev_pki} did there.
    """

    directory: Path
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def path(self, name: str) -> Path:
        """
        The path of file C{name} (e.g. C{"ca.pem"}) in the directory.
        """
        return self.directory / name

    def curl_command(self, port: int = 8443, host: str = "localhost") -> str:
        """
        The curl command that calls the server with this PKI's client identity.
        """
        q = lambda name: shlex.quote(str(self.path(name)))  # noqa: E731
        return (
            f"curl --cacert {q('ca.pem')} --cert {q('client.pem')} "
            f"--key {q('client.key')} https://{host}:{port}/v1/models"
        )


def _pair_state(cert_path: Path, key_path: Path) -> bool:
    """
    True if both files exist, False if neither; L{PKIError} if only one.
    """
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if have_cert != have_key:
        present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
        raise PKIError(
            f"{present} exists but {missing} does not; refusing to overwrite "
            f"{present} (remove it or restore {missing})"
        )
    return have_cert


def generate_dev_pki(
    directory: Path | str,
    days: int = DEFAULT_DAYS,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    client_cn: str = DEFAULT_CLIENT_CN,
    bad: bool = False,
) -> DevPKI:
    """
    Make the development PKI in C{directory} (created if needed), keeping
    any certificate/key pair that is already there.  Missing certificates
    are signed by the existing CA when there is one.

    Raises L{PKIError} naming the file when a pair is half present, or a
    certificate must be signed but the CA key is missing.
    """
    result = DevPKI(Path(directory))
    result.directory.mkdir(parents=True, exist_ok=True)
    pairs = [("server", lambda ca: server_cert(ca, hosts, days))]
    pairs.append(("client", lambda ca: client_cert(ca, client_cn, days)))
    if bad:
        pairs += [(kind, lambda ca, k=kind: bad_client(k, ca, client_cn)) for kind in BAD_CLIENTS]

    ca_cert, ca_key = result.path("ca.pem"), result.path("ca.key")
    needed = [(stem, make) for stem, make in pairs
              if not _pair_state(result.path(f"{stem}.pem"), result.path(f"{stem}.key"))]
    ca: Issued | None = None
    if ca_key.exists() and not ca_cert.exists():
        raise PKIError(f"{ca_key} exists but {ca_cert} does not; refusing to overwrite {ca_key}")
    if ca_cert.exists():
        result.kept += [p for p in (ca_cert, ca_key) if p.exists()]
        if needed and not ca_key.exists():
            raise PKIError(f"{ca_key} is missing: cannot sign new certificates with {ca_cert}")
        if needed:
            ca = load_issued(ca_cert, ca_key)
    else:
        ca = make_ca(days=days)
        _write_pair(result, "ca", ca)

    for stem, make in pairs:
        if (stem, make) in needed:
            _write_pair(result, stem, make(ca))
        else:
            result.kept += [result.path(f"{stem}.pem"), result.path(f"{stem}.key")]
    return result


def _write_pair(result: DevPKI, stem: str, issued: Issued) -> None:
    cert_path, key_path = result.path(f"{stem}.pem"), result.path(f"{stem}.key")
    write_new(key_path, issued.key_pem(), private=True)
    write_new(cert_path, issued.cert_pem())
    result.created += [cert_path, key_path]
