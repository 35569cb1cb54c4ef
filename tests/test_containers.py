"""
The container image (docker/Dockerfile) and the compose stack (docker/docker-compose.yml),
built and run for real with podman, checked over real loopback sockets.

Needs ``podman`` and ``podman-compose`` and a local base image (``MOCKLLM_TEST_BASE``,
default ``localhost/bookworm-py:1``; ``.ci/run`` makes it).  Without them every test here
skips and says why -- unless ``CI=true``, where they fail: CI must run them.

Every podman call gets ``CONTAINERS_CONF`` pointing at a file written here (runtime runc,
the ulimits this machine's runc can set); see docs/containers.md, "How we test it with
podman".  Containers publish their ports on 127.0.0.1 only, on free ports.

The tests are trial ``SynchronousTestCase`` methods, like the rest of the suite: a plain
pytest function would make pytest-twisted start its reactor greenlet, which breaks every
trial test after it that runs the reactor.  What is built or started once for the module
(the image, a serving container, the compose stack) is made on first use and removed in
``tearDownModule`` (pytest) or at exit (trial).
"""

from __future__ import annotations

import atexit
import json
import re
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml
from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from tests.support import CHAT_BODY, validate

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("MOCKLLM_TEST_BASE", "localhost/bookworm-py:1")
IMAGE = "localhost/mockllm:test"
RUNC_ULIMITS = ["--ulimit", "nofile=1024:20000", "--ulimit", "nproc=1024:4096"]
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=1024:4096"]
[engine]
runtime = "runc"
"""
# The build reaches the package index; a host whose traffic passes a TLS-inspecting proxy
# trusts its CA in this bundle, so the build sees the host's bundle (Debian-family bases).
HOST_CA_BUNDLE = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
LOOPBACK = "127.0.0.1"


_SHARED: dict[str, Any] = {}
_CLEANUPS: list[Callable[[], None]] = []


def _cleanup() -> None:
    """Undo everything :func:`shared` made, newest first."""
    while _CLEANUPS:
        try:
            _CLEANUPS.pop()()
        except Exception as e:  # keep cleaning up the rest
            print(f"test_containers cleanup: {e!r}", file=sys.stderr)


def tearDownModule() -> None:
    """pytest calls this after the module's last test; under trial the atexit hook does the same."""
    _cleanup()


def shared(name: str, make: Callable[[], Any], undo: Callable[[Any], None] | None = None) -> Any:
    """``make()`` once per process (its exception too, so a failed build is not retried by
    every test); ``undo(value)`` at module teardown."""
    if name not in _SHARED:
        if not _SHARED:
            atexit.register(_cleanup)
        try:
            value = make()
        except BaseException as e:
            _SHARED[name] = e
        else:
            _SHARED[name] = value
            if undo is not None:
                _CLEANUPS.append(lambda: undo(value))
    value = _SHARED[name]
    if isinstance(value, BaseException):
        raise value
    return value


def scratch_dir(prefix: str) -> Path:
    """A temporary directory removed at module teardown."""
    path = Path(tempfile.mkdtemp(prefix=f"mockllm-{prefix}-"))
    _CLEANUPS.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def _missing(reason: str) -> None:
    """Skip with ``reason``; under CI (``CI=true``) fail instead."""
    if os.environ.get("CI") == "true":
        raise AssertionError(f"CI=true but {reason}")
    raise unittest.SkipTest(reason)


class Podman:
    """Runs podman and podman-compose with this module's containers.conf."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 120, env: dict | None = None,
            program: str = "podman") -> subprocess.CompletedProcess:
        """``podman ARGS`` (or ``program``), output captured; raises with the output on failure.

        ``env`` adds to the environment; a ``None`` value removes that variable."""
        merged = {**self.env, **(env or {})}
        done = subprocess.run([program, *args], capture_output=True, text=True, timeout=timeout,
                              env={k: v for k, v in merged.items() if v is not None})
        if check and done.returncode != 0:
            raise AssertionError(
                f"{program} {shlex.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
        return done

    def build_args(self) -> list[str]:
        """What every image build here gets: docker format (keeps HEALTHCHECK), host network, CA bundle."""
        args = ["--format", "docker", "--network", "host"]
        if HOST_CA_BUNDLE.is_file():
            args += ["-v", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
        return args

    def inspect(self, name: str) -> dict:
        """``podman inspect NAME`` as a dict."""
        return json.loads(self.run("inspect", name).stdout)[0]


def free_port() -> int:
    """A TCP port nothing on loopback listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_healthy(port: int, seconds: float = 60) -> dict:
    """Poll ``GET /health`` on loopback (bounded: every 0.25 s for ``seconds``); its JSON body."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://{LOOPBACK}:{port}/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.25)
    raise AssertionError(f"no /health answer on port {port} within {seconds} s (last error: {last!r})")


def _podman() -> Podman:
    """podman and podman-compose present, the base image there; else skip (or fail under CI)."""
    for program in ("podman", "podman-compose"):
        if shutil.which(program) is None:
            _missing(f"{program} is not installed (.ci/run installs it)")
    conf = scratch_dir("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    tool = Podman(conf)
    if tool.run("image", "exists", BASE, check=False).returncode != 0:
        _missing(f"the base image {BASE} is missing (.ci/run builds it; or set MOCKLLM_TEST_BASE)")
    return tool


def podman_tool() -> Podman:
    """The module's :class:`Podman` (skips or fails the calling test when it cannot be had)."""
    return shared("podman", _podman)


def built_image() -> str:
    """The image built once for the module from docker/Dockerfile on BASE, as the docs build it."""
    def build() -> str:
        podman = podman_tool()
        podman.run("build", *podman.build_args(), "--build-arg", f"BASE={BASE}",
                   "-f", str(ROOT / "docker" / "Dockerfile"), "-t", IMAGE, str(ROOT), timeout=600)
        return IMAGE
    return shared("image", build)


class Container:
    """A detached container publishing 8001/8443 on free loopback ports; :meth:`remove` removes it with its volumes.

    ``options`` go to ``podman run`` before the image, ``args`` after it (to twist)."""

    def __init__(self, podman: Podman, image: str, *args: str, options: tuple[str, ...] = ()) -> None:
        self.podman = podman
        self.name = f"mockllm-test-{uuid.uuid4().hex[:8]}"
        self.http, self.https = free_port(), free_port()
        podman.run("--runtime", "runc", "run", "-d", "--name", self.name, *RUNC_ULIMITS,
                   "-p", f"{LOOPBACK}:{self.http}:8001", "-p", f"{LOOPBACK}:{self.https}:8443",
                   *options, image, *args)

    def remove(self) -> None:
        """Gone, whatever state it is in."""
        self.podman.run("rm", "-f", "-v", self.name, check=False)


def serving_container() -> Container:
    """One container of the image with its defaults, serving, shared by :class:`ImageTests`."""
    def start() -> Container:
        container = Container(podman_tool(), built_image())
        try:
            wait_healthy(container.http)
        except BaseException:
            container.remove()
            raise
        return container
    return shared("server", start, Container.remove)


class ImageTests(SynchronousTestCase):
    """docker/Dockerfile's image, built with podman and run with its defaults."""

    def setUp(self) -> None:
        self.podman = podman_tool()
        self.image = built_image()

    def test_image_is_small_unprivileged_and_declares_its_ports(self):
        """The image runs as uid 10001, exposes 8001 and 8443, has a HEALTHCHECK, listens on
        0.0.0.0 and carries no compiler, no build context and no private key."""
        info = self.podman.inspect(self.image)
        config = info["Config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertLessEqual({"8001/tcp", "8443/tcp"}, set(config["ExposedPorts"]))
        healthcheck = info.get("Healthcheck") or config.get("Healthcheck")  # podman puts it at the top
        self.assertIn("/health", " ".join(healthcheck["Test"]))
        self.assertEqual(config["Entrypoint"][:4], ["twist", "mockllm", "--host", "0.0.0.0"])
        probe = ("for c in gcc cc g++ clang make; do command -v $c && exit 1; done; "
                 "test ! -e /src || exit 2; "
                 "test -z \"$(find / -xdev -name '*.key' -print -quit)\" || exit 3; id -u")
        done = self.podman.run("--runtime", "runc", "run", "--rm", *RUNC_ULIMITS, "--entrypoint", "sh",
                               self.image, "-c", probe, check=False)
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "10001"), done.stdout + done.stderr)

    def test_health_answers_through_a_published_port(self):
        """GET /health answers {"status": "healthy"} through a port published on the host's
        loopback, which reaches the container's own interface: so it listens on 0.0.0.0 inside."""
        self.assertEqual(wait_healthy(serving_container().http, seconds=5), {"status": "healthy"})

    def test_chat_completion_validates(self):
        """POST /v1/chat/completions from outside the container answers a body valid against
        OpenAI's CreateChatCompletionResponse schema."""
        url = f"http://{LOOPBACK}:{serving_container().http}/v1/chat/completions"
        response = httpx.post(url, json=CHAT_BODY, timeout=10)
        self.assertEqual(response.status_code, 200, response.text)
        validate("CreateChatCompletionResponse", response.json())

    def test_image_healthcheck_passes(self):
        """The image's own HEALTHCHECK command succeeds against the running server."""
        done = self.podman.run("healthcheck", "run", serving_container().name, check=False)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_logs_go_to_stdout(self):
        """The server's log is on the container's stdout as readable lines, one per event (no
        JSON events), with no traceback and no complaint about the read-only plugin cache."""
        done = self.podman.run("logs", serving_container().name)
        self.assertIn("mockllm: HTTP on", done.stdout)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        self.assertTrue(lines and all(re.match(r"^\d{4}-\d\d-\d\dT", line) for line in lines), lines[:5])
        self.assertNotIn("Traceback", done.stdout + done.stderr)
        self.assertNotIn("Unable to write", done.stdout + done.stderr)

    def test_sigterm_stops_it_cleanly_within_5_seconds(self):
        """`podman stop -t 5` (SIGTERM, SIGKILL after 5 s) ends a serving container in under 5 s
        with exit status 0: twist, as PID 1, handles SIGTERM itself."""
        container = Container(self.podman, self.image)
        self.addCleanup(container.remove)
        wait_healthy(container.http)
        started = time.monotonic()
        self.podman.run("stop", "-t", "5", container.name, timeout=30)
        elapsed = time.monotonic() - started
        state = self.podman.inspect(container.name)["State"]
        self.assertLess(elapsed, 5, f"stop took {elapsed:.1f} s")
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", 0), state)

    def test_runs_as_the_kubernetes_deployment_runs_it(self):
        """With deploy/kubernetes' settings -- uid 10001, read-only root filesystem, no
        capabilities, no privilege escalation, the ConfigMap's TOML and the Secret's files
        (mode 0440, group 10001, as fsGroup leaves them) mounted where the Deployment mounts
        them, its args -- the image serves /health and answers a client certificate over mTLS."""
        kube = ROOT / "deploy" / "kubernetes"
        deployment = yaml.safe_load((kube / "deployment.yaml").read_text())
        configmap = yaml.safe_load((kube / "configmap.yaml").read_text())
        (main,) = deployment["spec"]["template"]["spec"]["containers"]
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        pod_user = deployment["spec"]["template"]["spec"]["securityContext"]

        tmp = scratch_dir("k8s")
        certs = tmp / "pki"
        make_pki(certs, "localhost,127.0.0.1")
        config_dir, tls_dir = tmp / "config", tmp / "tls"
        config_dir.mkdir()
        tls_dir.mkdir()
        for key, text in configmap["data"].items():
            (config_dir / key).write_text(text)
            (config_dir / key).chmod(0o644)
        for key, source in {"tls.crt": "server.pem", "tls.key": "server.key", "ca.crt": "ca.pem"}.items():
            shutil.copyfile(certs / source, tls_dir / key)
            readable_by_container(tls_dir / key, pod_user["fsGroup"], 0o440)
        for directory in (tmp, config_dir, tls_dir):
            directory.chmod(0o755)

        options = ("--user", f"{pod_user['runAsUser']}:{pod_user['runAsGroup']}", "--read-only",
                   "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp",
                   "-v", f"{config_dir}:{mounts['config']}:ro", "-v", f"{tls_dir}:{mounts['tls']}:ro")
        container = Container(self.podman, self.image, *main["args"], options=options)
        self.addCleanup(container.remove)
        self.assertEqual(wait_healthy(container.http), {"status": "healthy"})
        with httpx.Client(verify=tls_context(certs, client=True), timeout=10) as client:
            models = client.get(f"https://localhost:{container.https}/v1/models")
        self.assertEqual(models.status_code, 200, models.text)
        self.assertEqual(self.podman.inspect(container.name)["State"]["Status"], "running")
        logs = self.podman.run("logs", container.name)
        self.assertNotIn("Traceback", logs.stdout + logs.stderr)
        self.assertNotIn("Unable to write", logs.stdout + logs.stderr)


def make_pki(directory: Path, hosts: str) -> None:
    """``python -m mockllm certs DIRECTORY --hosts HOSTS``, on the host."""
    subprocess.run([sys.executable, "-m", "mockllm", "certs", str(directory), "--hosts", hosts],
                   check=True, capture_output=True, timeout=60)


def readable_by_container(path: Path, gid: int, mode: int) -> None:
    """Give ``path`` to group ``gid`` with ``mode`` when we may (root); else make it world-readable."""
    if os.geteuid() == 0:
        os.chown(path, 0, gid)
        path.chmod(mode)
    else:
        path.chmod(0o444)


def tls_context(certs: Path, client: bool) -> ssl.SSLContext:
    """Trust ``certs``/ca.pem; present ``certs``/client.pem when ``client``."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return ctx


class Compose:
    """docker/docker-compose.yml brought up under its own project name; :meth:`down` removes it with its volumes."""

    def __init__(self, podman: Podman, certs: Path | None = None) -> None:
        self.podman = podman
        self.project = f"mockllmtest{uuid.uuid4().hex[:8]}"
        self.http, self.https = free_port(), free_port()
        self.env = {"MOCKLLM_BASE": BASE, "MOCKLLM_HTTP_PORT": str(self.http),
                    "MOCKLLM_HTTPS_PORT": str(self.https), "MOCKLLM_CERTS": str(certs) if certs else None}
        self.certs: Path | None = None

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``podman-compose -p PROJECT -f docker/docker-compose.yml ARGS``."""
        return self.podman.run(
            "-p", self.project, "--podman-build-args", shlex.join(self.podman.build_args()),
            "-f", str(ROOT / "docker" / "docker-compose.yml"), *args,
            program="podman-compose", env=self.env, timeout=timeout)

    def up(self) -> None:
        """Built (on the module's layer cache) and up; the plain port answering."""
        try:
            self.compose("up", "-d", "--build")
            wait_healthy(self.http)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Containers, network and volumes gone."""
        self.compose("down", "-v", timeout=120)

    def container(self, service: str) -> str:
        """The name of ``service``'s container."""
        names = self.podman.run(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout.split()
        assert len(names) == 1, names
        return names[0]


def compose_stack() -> Compose:
    """The compose stack up with its generated PKI, the CA, client and server certificates
    copied out of the server container (as the README does), shared by :class:`ComposeTests`."""
    def start() -> Compose:
        podman = podman_tool()
        built_image()  # the compose build then reuses its layers
        stack = Compose(podman)
        stack.up()
        stack.certs = scratch_dir("compose-certs")
        server = stack.container("mockllm")
        for name in ("ca.pem", "client.pem", "client.key", "server.pem"):
            podman.run("cp", f"{server}:/certs/{name}", str(stack.certs / name))
        return stack
    return shared("compose", start, Compose.down)


class ComposeTests(SynchronousTestCase):
    """docker/docker-compose.yml with podman-compose: a generated PKI, mTLS required."""

    def setUp(self) -> None:
        self.podman = podman_tool()
        self.stack = compose_stack()

    def test_compose_generates_the_pki_for_its_names(self):
        """The one-shot certs service exits 0 after writing a CA, server and client pair into the
        volume; the server certificate names localhost, 127.0.0.1 and mockllm; keys are 0600."""
        state = self.podman.inspect(self.stack.container("certs"))["State"]
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", 0))
        listing = self.podman.run("exec", self.stack.container("mockllm"), "sh", "-c",
                                  "cd /certs && stat -c '%n %a' *.pem *.key").stdout.split("\n")
        self.assertEqual({line for line in listing if line}, {
            "ca.pem 644", "client.pem 644", "server.pem 644", "ca.key 600", "client.key 600", "server.key 600"})
        cert = x509.load_pem_x509_certificate((self.stack.certs / "server.pem").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertLessEqual({"localhost", "mockllm"}, set(names.get_values_for_type(x509.DNSName)))
        self.assertIn("127.0.0.1", {str(ip) for ip in names.get_values_for_type(x509.IPAddress)})

    def test_compose_refuses_a_client_without_a_certificate(self):
        """Over the published mTLS port, a client that trusts the generated CA but presents no
        certificate gets no HTTP answer: the server ends the handshake."""
        ctx = tls_context(self.stack.certs, client=False)
        with socket.create_connection((LOOPBACK, self.stack.https), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    # TLS 1.3: the refusal arrives after the client's side of the handshake.
                    tls.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    answer = tls.recv(1024)
                    if not answer:
                        raise ConnectionResetError("closed without an answer")
                    self.fail(f"got an answer without a client certificate: {answer!r}")

    def test_compose_accepts_the_generated_client_certificate(self):
        """With the client certificate copied out of the volume, GET /v1/models and a chat
        completion succeed over mTLS, the server's name checked as https://localhost."""
        ctx = tls_context(self.stack.certs, client=True)
        with httpx.Client(base_url=f"https://localhost:{self.stack.https}", verify=ctx, timeout=10) as client:
            models = client.get("/v1/models")
            self.assertEqual(models.status_code, 200, models.text)
            self.assertIn("gpt-4o-mini", {m["id"] for m in models.json()["data"]})
            chat = client.post("/v1/chat/completions", json=CHAT_BODY)
            self.assertEqual(chat.status_code, 200, chat.text)
            validate("CreateChatCompletionResponse", chat.json())

    def test_compose_serves_plain_http_too(self):
        """The stack's plain HTTP port answers /health alongside the mTLS one."""
        self.assertEqual(wait_healthy(self.stack.http, seconds=5), {"status": "healthy"})


class ComposeOwnCertificatesTests(SynchronousTestCase):
    """docker/docker-compose.yml with MOCKLLM_CERTS: your certificates instead of generated ones."""

    def test_compose_serves_your_own_certificates(self):
        """MOCKLLM_CERTS=DIR mounts your directory in place of the volume: the certs service
        leaves it untouched and the server presents your server certificate and accepts
        clients of your CA."""
        podman = podman_tool()
        built_image()
        own = scratch_dir("own-certs") / "own"
        make_pki(own, "localhost")
        readable_by_container(own / "server.key", 10001, 0o640)
        own.chmod(0o755)
        before = {p.name: p.read_bytes() for p in own.iterdir()}
        stack = Compose(podman, certs=own)
        stack.up()
        self.addCleanup(stack.down)
        with httpx.Client(verify=tls_context(own, client=True), timeout=10) as client:
            response = client.get(f"https://localhost:{stack.https}/v1/models")
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual({p.name: p.read_bytes() for p in own.iterdir()}, before)
