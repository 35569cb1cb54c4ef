"""
The development PKI (L{mockllm.pki}) and C{python -m mockllm certs}.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.trial import unittest

from mockllm.tls import pki
from mockllm.__main__ import main
from tests import tls_support as ts

LEAVES = ("server", "client")


def cert(dev: pki.DevPKI, stem: str) -> x509.Certificate:
    """
    The certificate C{stem}.pem of C{dev}.
    """
    return x509.load_pem_x509_certificate(dev.path(f"{stem}.pem").read_bytes())


def signed_by(leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
    """
    Whether C{issuer}'s key signed C{leaf}.
    """
    try:
        leaf.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


class GenerateTests(unittest.TestCase):
    """
    L{pki.generate_dev_pki} on a fresh directory (the shared one) and on
    directories that already hold files.
    """

    def test_layout_and_modes(self):
        """
        The CA, server and client pairs are written; keys are mode 0600.
        """
        dev = ts.shared_pki()
        for stem in ("ca",) + LEAVES:
            self.assertTrue(dev.path(f"{stem}.pem").is_file())
            mode = stat.S_IMODE(dev.path(f"{stem}.key").stat().st_mode)
            self.assertEqual(mode, 0o600, stem)

    def test_leaves_signed_by_ca(self):
        """
        The server and client certificates are signed by the CA.
        """
        dev = ts.shared_pki()
        for stem in LEAVES:
            self.assertTrue(signed_by(cert(dev, stem), cert(dev, "ca")), stem)

    def test_server_names_and_usage(self):
        """
        The server certificate is for localhost, 127.0.0.1 and ::1, serverAuth only.
        """
        server = cert(ts.shared_pki(), "server")
        sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(sans.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(
            sans.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")],
        )
        usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH])

    def test_client_name_and_usage(self):
        """
        The client certificate has the default CN and clientAuth usage.
        """
        client = cert(ts.shared_pki(), "client")
        cn = client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.assertEqual(cn, pki.DEFAULT_CLIENT_CN)
        usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.CLIENT_AUTH])

    def test_options(self):
        """
        days, hosts and client_cn shape the certificates.
        """
        dev = pki.generate_dev_pki(str(ts.temp_path(self)), days=10, hosts=["api.test", "10.1.2.3"], client_cn="proxy")
        server = cert(dev, "server")
        self.assertEqual((server.not_valid_after_utc - server.not_valid_before_utc).days, 10)
        sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(sans.get_values_for_type(x509.DNSName), ["api.test"])
        self.assertIn("CN=proxy", cert(dev, "client").subject.rfc4514_string())

    def test_never_overwrites(self):
        """
        A second run keeps every file byte for byte and creates nothing.
        """
        dev = ts.copy_pki(self)
        before = {p.name: p.read_bytes() for p in dev.directory.iterdir()}
        again = pki.generate_dev_pki(dev.directory, bad=True)
        self.assertEqual(again.created, [])
        self.assertEqual({p.name: p.read_bytes() for p in dev.directory.iterdir()}, before)

    def test_missing_pair_signed_by_existing_ca(self):
        """
        A removed client pair is made again, signed by the CA already there.
        """
        dev = ts.copy_pki(self)
        dev.path("client.pem").unlink()
        dev.path("client.key").unlink()
        again = pki.generate_dev_pki(dev.directory)
        self.assertEqual(again.created, [dev.path("client.pem"), dev.path("client.key")])
        self.assertTrue(signed_by(cert(dev, "client"), cert(dev, "ca")))

    def test_half_pair_refused(self):
        """
        A certificate without its key is an error naming both, nothing overwritten.
        """
        dev = ts.copy_pki(self)
        dev.path("server.key").unlink()
        error = self.assertRaises(pki.PKIError, pki.generate_dev_pki, dev.directory)
        self.assertIn(str(dev.path("server.key")), str(error))
        self.assertFalse(dev.path("server.key").exists())

    def test_missing_ca_key(self):
        """
        New certificates cannot be signed when only ca.pem is left.
        """
        dev = ts.copy_pki(self)
        for name in ("ca.key", "client.pem", "client.key"):
            dev.path(name).unlink()
        error = self.assertRaises(pki.PKIError, pki.generate_dev_pki, dev.directory)
        self.assertIn("ca.key", str(error))

    def test_curl_command(self):
        """
        The curl command uses the CA, client certificate and key.
        """
        dev = pki.DevPKI(Path("/tmp/my certs"))
        self.assertEqual(
            dev.curl_command(),
            "curl --cacert '/tmp/my certs/ca.pem' --cert '/tmp/my certs/client.pem' "
            "--key '/tmp/my certs/client.key' https://localhost:8443/v1/models",
        )


class BadMaterialTests(unittest.TestCase):
    """
    The --bad client certificates are bad in exactly one way each.
    """

    def setUp(self) -> None:
        self.dev = ts.shared_pki()
        self.ca = cert(self.dev, "ca")

    def test_expired(self):
        """
        bad-expired-client: signed by the CA, validity over.
        """
        c = cert(self.dev, "bad-expired-client")
        self.assertTrue(signed_by(c, self.ca))
        self.assertLess(c.not_valid_after_utc, pki.now())

    def test_not_yet_valid(self):
        """
        bad-not-yet-valid-client: signed by the CA, validity in the future.
        """
        c = cert(self.dev, "bad-not-yet-valid-client")
        self.assertTrue(signed_by(c, self.ca))
        self.assertGreater(c.not_valid_before_utc, pki.now())

    def test_other_ca(self):
        """
        bad-other-ca-client: current, but not signed by the CA.
        """
        c = cert(self.dev, "bad-other-ca-client")
        self.assertFalse(signed_by(c, self.ca))
        self.assertNotEqual(c.issuer, self.ca.subject)

    def test_self_signed(self):
        """
        bad-self-signed-client: its own issuer.
        """
        c = cert(self.dev, "bad-self-signed-client")
        self.assertEqual(c.issuer, c.subject)
        self.assertTrue(signed_by(c, c))


class FaultIdentityTests(unittest.TestCase):
    """
    L{pki.fault_identity}: the server certificates of --tls-fault.
    """

    def setUp(self) -> None:
        self.ca = ts.ca_issued(ts.shared_pki())

    def test_expired(self):
        """
        expired-server-cert: the right CA and names, expired.
        """
        c = pki.fault_identity("expired-server-cert", self.ca).cert
        self.assertTrue(signed_by(c, self.ca.cert))
        self.assertLess(c.not_valid_after_utc, pki.now())

    def test_wrong_host(self):
        """
        wrong-host: the right CA, current, only for another name.
        """
        c = pki.fault_identity("wrong-host", self.ca).cert
        self.assertTrue(signed_by(c, self.ca.cert))
        sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(sans.get_values_for_type(x509.DNSName), [pki.WRONG_HOST])

    def test_untrusted(self):
        """
        untrusted-server-cert: right names, another CA; needs no CA key.
        """
        c = pki.fault_identity("untrusted-server-cert", None).cert
        self.assertFalse(signed_by(c, self.ca.cert))

    def test_needs_ca_key(self):
        """
        A fault signed by the CA, without it, is an error naming where the CA key was looked for.
        """
        for fault in ("expired-server-cert", "wrong-host"):
            error = self.assertRaises(pki.PKIError, pki.fault_identity, fault, None, ca_key="/srv/certs/ca.key")
            self.assertIn(f"--tls-fault {fault} needs the CA key", str(error))
            self.assertIn("/srv/certs/ca.key", str(error))
        error = self.assertRaises(pki.PKIError, pki.fault_identity, "wrong-host", None)
        self.assertIn("ca.key in --certs-dir", str(error))

    def test_unknown_fault(self):
        """
        An unknown fault name is an error listing the choices.
        """
        error = self.assertRaises(pki.PKIError, pki.fault_identity, "nope", self.ca)
        self.assertIn("wrong-host", str(error))


class CertsCommandTests(unittest.TestCase):
    """
    C{python -m mockllm certs DIR ...}.
    """

    def run_main(self, *argv: str) -> tuple[int, str, str]:
        """
        Run the command line in-process; return status, stdout, stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), out, err), out.getvalue(), err.getvalue()

    def test_writes_pki_and_prints_curl(self):
        """
        Options may follow DIR; the PKI is written and the curl command printed.
        """
        target = ts.temp_path(self)
        status, out, err = self.run_main("certs", str(target), "--days", "30", "--hosts",
                                         "localhost,api.test", "--client-cn", "proxy", "--bad")
        self.assertEqual((status, err), (0, ""))
        self.assertIn(pki.DevPKI(target).curl_command(), out)
        self.assertIn(f"twist mockllm --certs-dir {target}", out)
        self.assertTrue((target / "bad-self-signed-client.pem").exists())
        self.assertIn("CN=proxy", cert(pki.DevPKI(target), "client").subject.rfc4514_string())

    def test_bad_values(self):
        """
        Each bad value gives a one-line error and status 2.
        """
        for argv in (
            ["certs", "d", "--days", "0"],
            ["certs", "d", "--days", "soon"],
            ["certs", "d", "--hosts", "bad host"],
            ["certs", "d", "--hosts", ","],
            ["certs", "d", "--client-cn", " "],
            ["certs"],
            ["certs", "d", "e"],
            ["certs", "d", "--nope"],
            [],
        ):
            status, out, err = self.run_main(*argv)
            self.assertEqual(status, 2, argv)
            self.assertEqual(err.count("\n"), 1, argv)
            self.assertFalse(Path("d").exists())

    def test_messages_say_what_is_wrong(self):
        """
        No directory, a bad --days, a file in the directory's place: messages a user can act on.
        """
        _, _, err = self.run_main("certs")
        self.assertIn("certs takes one directory to write to", err)
        _, _, err = self.run_main("certs", "d", "--days", "soon")
        self.assertIn("--days must be a whole number of days, not 'soon'", err)
        self.assertNotIn("enforcement", err)
        taken = ts.temp_path(self)
        taken.write_text("")
        status, _, err = self.run_main("certs", str(taken))
        self.assertEqual(status, 1)
        self.assertIn(f"{taken} exists and is not a directory", err)
        self.assertNotIn("Errno", err)

    def test_help_usage_line(self):
        """
        C{certs --help} opens with the command's own usage line.
        """
        out = io.StringIO()
        with self.assertRaises(SystemExit):
            with contextlib.redirect_stdout(out):
                main(["certs", "--help"])
        self.assertTrue(out.getvalue().startswith("Usage: python -m mockllm certs DIR [--days N]"), out.getvalue()[:100])

    def test_unwritable_directory(self):
        """
        A PKI that cannot be written is a one-line error with status 1.
        """
        dev = ts.copy_pki(self)
        dev.path("ca.key").unlink()
        dev.path("client.key").unlink()
        status, _, err = self.run_main("certs", str(dev.directory))
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)

    def test_no_traceback_from_python_m(self):
        """
        Through C{python -m}, a bad value prints a usage line, not a traceback.
        """
        result = subprocess.run(
            [sys.executable, "-m", "mockllm", "certs", str(ts.temp_path(self)), "--days", "x"],
            capture_output=True, text=True, cwd=str(Path(__file__).parent.parent),
        )
        self.assertEqual(result.returncode, 2)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("--days", result.stderr)
