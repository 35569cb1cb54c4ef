"""
The container image (docker/Dockerfile) and the compose stack (docker/docker-compose.yml),
built and run for real with podman, checked over real loopback sockets.

Needs ``podman`` and ``podman-compose`` and a local base image (``MOCKLLM_TEST_BASE``,
default ``localhost/bookworm-py:1``; ``.ci/run`` makes it).  Without them every test here
skips and says why -- unless ``CI=true``, where they fail: CI must run them.

Every podman call gets ``CONTAINERS_CONF`` pointing at a file written here (runtime runc,
the ulimits this machine's runc can set); see docs/containers.md, "How we test it with
podman".  Containers publish their ports on 127.0.0.1 only, on free ports.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509

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


def _missing(reason: str) -> None:
    """Skip with ``reason``; under CI (``CI=true``) fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture(scope="module")
def podman(tmp_path_factory) -> Podman:
    """podman and podman-compose present, the base image there; else skip (or fail under CI)."""
    for program in ("podman", "podman-compose"):
        if shutil.which(program) is None:
            _missing(f"{program} is not installed (.ci/run installs it)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    tool = Podman(conf)
    if tool.run("image", "exists", BASE, check=False).returncode != 0:
        _missing(f"the base image {BASE} is missing (.ci/run builds it; or set MOCKLLM_TEST_BASE)")
    return tool


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The image built once for the module from docker/Dockerfile on BASE, as the docs build it."""
    podman.run("build", *podman.build_args(), "--build-arg", f"BASE={BASE}",
               "-f", str(ROOT / "docker" / "Dockerfile"), "-t", IMAGE, str(ROOT), timeout=600)
    return IMAGE


class Container:
    """A detached container publishing 8001/8443 on free loopback ports; removed, with its volumes, afterwards.

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


@pytest.fixture(scope="module")
def server(podman: Podman, image: str):
    """One container of the image with its defaults, serving."""
    container = Container(podman, image)
    try:
        wait_healthy(container.http)
        yield container
    finally:
        container.remove()


def test_image_is_small_unprivileged_and_declares_its_ports(podman: Podman, image: str):
    """The image runs as uid 10001, exposes 8001 and 8443, has a HEALTHCHECK, listens on
    0.0.0.0 and carries no compiler, no build context and no private key."""
    info = podman.inspect(image)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert {"8001/tcp", "8443/tcp"} <= set(config["ExposedPorts"])
    healthcheck = info.get("Healthcheck") or config.get("Healthcheck")  # podman puts it at the top
    assert healthcheck and "/health" in " ".join(healthcheck["Test"])
    assert config["Entrypoint"][:4] == ["twist", "mockllm", "--host", "0.0.0.0"]
    probe = ("for c in gcc cc g++ clang make; do command -v $c && exit 1; done; "
             "test ! -e /src || exit 2; "
             "test -z \"$(find / -xdev -name '*.key' -print -quit)\" || exit 3; id -u")
    done = podman.run("--runtime", "runc", "run", "--rm", *RUNC_ULIMITS, "--entrypoint", "sh",
                      image, "-c", probe, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "10001"), done.stdout + done.stderr


def test_health_answers_through_a_published_port(server: Container):
    """GET /health answers {"status": "healthy"} through a port published on the host's
    loopback, which reaches the container's own interface: so it listens on 0.0.0.0 inside."""
    assert wait_healthy(server.http, seconds=5) == {"status": "healthy"}


def test_chat_completion_validates(server: Container):
    """POST /v1/chat/completions from outside the container answers a body valid against
    OpenAI's CreateChatCompletionResponse schema."""
    response = httpx.post(f"http://{LOOPBACK}:{server.http}/v1/chat/completions", json=CHAT_BODY, timeout=10)
    assert response.status_code == 200, response.text
    validate("CreateChatCompletionResponse", response.json())


def test_image_healthcheck_passes(podman: Podman, server: Container):
    """The image's own HEALTHCHECK command succeeds against the running server."""
    done = podman.run("healthcheck", "run", server.name, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_logs_go_to_stdout(podman: Podman, server: Container):
    """The server's log (its HTTP announcement, at least) is on the container's stdout, with
    no traceback and no complaint about the read-only plugin cache."""
    done = podman.run("logs", server.name)
    assert "mockllm: HTTP on" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "Unable to write" not in done.stdout + done.stderr


def test_sigterm_stops_it_cleanly_within_5_seconds(podman: Podman, image: str):
    """`podman stop -t 5` (SIGTERM, SIGKILL after 5 s) ends a serving container in under 5 s
    with exit status 0: twist, as PID 1, handles SIGTERM itself."""
    container = Container(podman, image)
    try:
        wait_healthy(container.http)
        started = time.monotonic()
        podman.run("stop", "-t", "5", container.name, timeout=30)
        elapsed = time.monotonic() - started
        state = podman.inspect(container.name)["State"]
        assert elapsed < 5, f"stop took {elapsed:.1f} s"
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), state
    finally:
        container.remove()


class Compose:
    """docker/docker-compose.yml brought up under its own project name; down with its volumes afterwards."""

    def __init__(self, podman: Podman, certs: Path | None = None) -> None:
        self.podman = podman
        self.project = f"mockllmtest{uuid.uuid4().hex[:8]}"
        self.http, self.https = free_port(), free_port()
        self.env = {"MOCKLLM_BASE": BASE, "MOCKLLM_HTTP_PORT": str(self.http),
                    "MOCKLLM_HTTPS_PORT": str(self.https), "MOCKLLM_CERTS": str(certs) if certs else None}

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``podman-compose -p PROJECT -f docker/docker-compose.yml ARGS``."""
        return self.podman.run(
            "-p", self.project, "--podman-build-args", shlex.join(self.podman.build_args()),
            "-f", str(ROOT / "docker" / "docker-compose.yml"), *args,
            program="podman-compose", env=self.env, timeout=timeout)

    def container(self, service: str) -> str:
        """The name of ``service``'s container."""
        names = self.podman.run(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout.split()
        assert len(names) == 1, names
        return names[0]


@pytest.fixture(scope="module")
def compose(podman: Podman, image: str, tmp_path_factory):
    """The compose stack up (built on the module's image cache), the generated CA and client
    certificate copied out of the server container into a local directory."""
    stack = Compose(podman)
    try:
        stack.compose("up", "-d", "--build")
        wait_healthy(stack.http)
        stack.certs = tmp_path_factory.mktemp("compose-certs")
        server = stack.container("mockllm")
        for name in ("ca.pem", "client.pem", "client.key", "server.pem"):
            podman.run("cp", f"{server}:/certs/{name}", str(stack.certs / name))
        yield stack
    finally:
        stack.compose("down", "-v", timeout=120)


def test_compose_generates_the_pki_for_its_names(podman: Podman, compose: Compose):
    """The one-shot certs service exits 0 after writing a CA, server and client pair into the
    volume; the server certificate names localhost, 127.0.0.1 and mockllm; keys are 0600."""
    certs = compose.container("certs")
    state = podman.inspect(certs)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    listing = podman.run("exec", compose.container("mockllm"), "sh", "-c",
                         "cd /certs && stat -c '%n %a' *.pem *.key").stdout.split("\n")
    assert {line for line in listing if line} == {
        "ca.pem 644", "client.pem 644", "server.pem 644", "ca.key 600", "client.key 600", "server.key 600"}
    cert = x509.load_pem_x509_certificate((compose.certs / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "mockllm"} <= set(names.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def test_compose_serves_your_own_certificates(podman: Podman, image: str, tmp_path):
    """MOCKLLM_CERTS=DIR mounts your directory in place of the volume: the certs service
    leaves it untouched and the server presents your server certificate and accepts
    clients of your CA."""
    own = tmp_path / "own"
    subprocess.run([sys.executable, "-m", "mockllm", "certs", str(own), "--hosts", "localhost"],
                   check=True, capture_output=True, timeout=60)
    key = own / "server.key"
    if os.geteuid() == 0:
        os.chown(key, 0, 10001)
        key.chmod(0o640)
    else:
        key.chmod(0o644)
    own.chmod(0o755)
    before = {p.name: p.read_bytes() for p in own.iterdir()}
    stack = Compose(podman, certs=own)
    try:
        stack.compose("up", "-d", "--build")
        wait_healthy(stack.http)
        with httpx.Client(verify=_tls_context(own, client=True), timeout=10) as client:
            response = client.get(f"https://localhost:{stack.https}/v1/models")
        assert response.status_code == 200, response.text
        assert {p.name: p.read_bytes() for p in own.iterdir()} == before
    finally:
        stack.compose("down", "-v", timeout=120)


def _tls_context(certs: Path, client: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return ctx


def test_compose_refuses_a_client_without_a_certificate(compose: Compose):
    """Over the published mTLS port, a client that trusts the generated CA but presents no
    certificate gets no HTTP answer: the server ends the handshake."""
    ctx = _tls_context(compose.certs, client=False)
    with socket.create_connection((LOOPBACK, compose.https), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                # TLS 1.3: the refusal arrives after the client's side of the handshake.
                tls.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                answer = tls.recv(1024)
                if not answer:
                    raise ConnectionResetError("closed without an answer")
                raise AssertionError(f"got an answer without a client certificate: {answer!r}")


def test_compose_accepts_the_generated_client_certificate(compose: Compose):
    """With the client certificate copied out of the volume, GET /v1/models and a chat
    completion succeed over mTLS, the server's name checked as https://localhost."""
    ctx = _tls_context(compose.certs, client=True)
    with httpx.Client(base_url=f"https://localhost:{compose.https}", verify=ctx, timeout=10) as client:
        models = client.get("/v1/models")
        assert models.status_code == 200, models.text
        assert "gpt-4o-mini" in {m["id"] for m in models.json()["data"]}
        chat = client.post("/v1/chat/completions", json=CHAT_BODY)
        assert chat.status_code == 200, chat.text
        validate("CreateChatCompletionResponse", chat.json())


def test_compose_serves_plain_http_too(compose: Compose):
    """The stack's plain HTTP port answers /health alongside the mTLS one."""
    assert wait_healthy(compose.http, seconds=5) == {"status": "healthy"}


def test_runs_as_the_kubernetes_deployment_runs_it(podman: Podman, image: str, tmp_path):
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

    certs = tmp_path / "pki"
    subprocess.run([sys.executable, "-m", "mockllm", "certs", str(certs), "--hosts", "localhost,127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    config_dir, tls_dir = tmp_path / "config", tmp_path / "tls"
    config_dir.mkdir()
    tls_dir.mkdir()
    for key, text in configmap["data"].items():
        (config_dir / key).write_text(text)
        (config_dir / key).chmod(0o644)
    for key, source in {"tls.crt": "server.pem", "tls.key": "server.key", "ca.crt": "ca.pem"}.items():
        target = tls_dir / key
        shutil.copyfile(certs / source, target)
        if os.geteuid() == 0:
            os.chown(target, 0, pod_user["fsGroup"])
            target.chmod(0o440)
        else:  # cannot give the file to group 10001: let everyone read it instead
            target.chmod(0o444)
    for directory in (tmp_path, config_dir, tls_dir):
        directory.chmod(0o755)

    options = ("--user", f"{pod_user['runAsUser']}:{pod_user['runAsGroup']}", "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp",
               "-v", f"{config_dir}:{mounts['config']}:ro", "-v", f"{tls_dir}:{mounts['tls']}:ro")
    container = Container(podman, image, *main["args"], options=options)
    try:
        assert wait_healthy(container.http) == {"status": "healthy"}
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        with httpx.Client(verify=ctx, timeout=10) as client:
            models = client.get(f"https://localhost:{container.https}/v1/models")
        assert models.status_code == 200, models.text
        assert podman.inspect(container.name)["State"]["Status"] == "running"
        logs = podman.run("logs", container.name)
        assert "Traceback" not in logs.stdout + logs.stderr
        assert "Unable to write" not in logs.stdout + logs.stderr
    finally:
        container.remove()
