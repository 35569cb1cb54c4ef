"""
Command line: C{python -m mockllm SUBCOMMAND ...}.

  - C{certs DIR [--days N] [--hosts a,b] [--client-cn CN] [--bad]}: make the
    development PKI in DIR (see L{mockllm.tls.pki}) and print the curl command
    that uses it.

Subcommands are L{usage.Options} classes listed in L{MainOptions.subCommands};
add a new one there.  Bad values end with a one-line usage error and exit
status 2; a PKI that cannot be written ends with a one-line error and status 1.
"""

from __future__ import annotations

import getopt
import ipaddress
import os
import re
import shlex
import sys
from typing import Optional, Sequence, TextIO

from twisted.python import usage

from mockllm.tls import pki

_PROG = "python -m mockllm"
_DNS_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def positive_days(value: str) -> int:
    """
    Parse C{--days}: a whole number of days, at least 1.
    """
    try:
        days = int(value)
    except ValueError:
        raise usage.UsageError(f"--days must be a whole number of days, not {value!r}") from None
    if days < 1:
        raise usage.UsageError(f"--days must be at least 1, not {days}")
    return days


def host_list(value: str) -> list[str]:
    """
    Parse C{--hosts}: comma-separated DNS names and IP addresses.
    """
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    if not hosts:
        raise ValueError("--hosts needs at least one host name or IP address")
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _DNS_NAME.match(host):
                raise ValueError(f"--hosts: {host!r} is neither a DNS name nor an IP address") from None
    return hosts


class InterspersedOptions(usage.Options):
    """
    Options that may come after positional arguments (C{certs DIR --bad}),
    which plain L{usage.Options} (POSIX getopt) would take as arguments.
    """

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        """
        Move the options before the positional arguments, then parse as usual.
        """
        if options is None:
            options = sys.argv[1:]
        try:
            opts, args = getopt.gnu_getopt(list(options), self.shortOpt, self.longOpt)
        except getopt.GetoptError as e:
            raise usage.UsageError(str(e)) from None
        ordered: list[str] = []
        for opt, value in opts:
            takes_value = opt[2:] + "=" in self.longOpt or opt[1:] + ":" in self.shortOpt
            ordered += [opt, value] if takes_value else [opt]
        super().parseOptions(ordered + ["--"] + args)


class CertsOptions(InterspersedOptions):
    """
    Options of C{certs}: make the development PKI.
    """

    synopsis = f"{_PROG} certs DIR [--days N] [--hosts a,b] [--client-cn CN] [--bad]"

    def getSynopsis(self) -> str:
        """The usage line, on its own (not after the top-level command's)."""
        return f"Usage: {self.synopsis}"
    longdesc = (
        "Write ca.pem/ca.key, server.pem/server.key and client.pem/client.key to DIR "
        "(keys mode 0600), keeping files that are already there, and print the curl "
        "command that uses them."
    )
    optParameters = [
        ["days", None, pki.DEFAULT_DAYS, "Validity of each certificate, in days.", positive_days],
        ["hosts", None, ",".join(pki.DEFAULT_HOSTS), "Names of the server certificate (comma-separated)."],
        ["client-cn", None, pki.DEFAULT_CLIENT_CN, "Common name of the client certificate."],
    ]
    optFlags = [["bad", None, "Also write bad client certificates (expired, other CA, self-signed, not yet valid)."]]

    def parseArgs(self, *directories: str) -> None:
        """
        Take the one positional argument, the directory.
        """
        if len(directories) != 1:
            raise usage.UsageError(f"certs takes one directory to write to, e.g. {_PROG} certs ./certs")
        self["directory"] = directories[0]

    def postOptions(self) -> None:
        """
        Check the values that C{optParameters} cannot coerce.
        """
        try:
            self["hosts"] = host_list(self["hosts"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if not self["client-cn"].strip():
            raise usage.UsageError("--client-cn must not be empty")

    def run(self, out: TextIO) -> int:
        """
        Write the PKI and print what was done and the curl command.
        """
        directory = self["directory"]
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise pki.PKIError(f"{directory} exists and is not a directory")
        result = pki.generate_dev_pki(directory, self["days"], self["hosts"], self["client-cn"], self["bad"])
        for path in result.created:
            out.write(f"created {path}\n")
        for path in result.kept:
            out.write(f"kept    {path} (already there)\n")
        out.write(f"\nStart the server with these files:\n  twist mockllm --certs-dir {shlex.quote(str(directory))}\n")
        out.write(f"Call the mTLS listener with:\n  {result.curl_command()}\n")
        return 0


class MainOptions(usage.Options):
    """
    The top-level command; each subcommand's options class has a C{run(out)}.
    """

    synopsis = f"{_PROG} SUBCOMMAND [options]"
    longdesc = "Tools for the mockllm server; run a subcommand with --help for its options."
    subCommands = [["certs", None, CertsOptions, "Make a development PKI for mTLS."]]

    def postOptions(self) -> None:
        """
        Require a subcommand.
        """
        if self.subCommand is None:
            raise usage.UsageError("choose a subcommand: " + ", ".join(c[0] for c in self.subCommands))


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """
    Run the command line C{argv} (default: C{sys.argv[1:]}); return the exit status.
    """
    options = MainOptions()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        err.write(f"{_PROG}: error: {' '.join(str(e).split())}\n")
        return 2
    try:
        return options.subOptions.run(out)
    except (pki.PKIError, OSError) as e:
        err.write(f"{_PROG} {options.subCommand}: error: {' '.join(str(e).split())}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
