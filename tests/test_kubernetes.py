"""
The Kubernetes manifests in deploy/kubernetes: valid against the Kubernetes API schemas
(``kubernetes-validate``, strict: unknown fields are errors), and consistent with each
other, with the image (docker/Dockerfile) and with mockllm's own configuration loader.

Nothing here needs a cluster; running the image the way the Deployment runs it is in
tests/test_containers.py.  Trial ``SynchronousTestCase`` methods, as in the rest of the
suite (a plain pytest function would start pytest-twisted's reactor greenlet and break the
trial tests after it).
"""

from __future__ import annotations

import base64
import re
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest
from pathlib import Path

import kubernetes_validate
import yaml
from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
# The newest schemas the package carries, and an older release still in wide use.
VERSIONS = (kubernetes_validate.latest_version(), "1.28.0")


def manifests() -> dict[str, dict]:
    """Every resource in deploy/kubernetes/*.yaml but the kustomization, by kind."""
    found: dict[str, dict] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in found, f"two {doc['kind']}s"
                found[doc["kind"]] = doc
    return found


def kustomization() -> dict:
    """deploy/kubernetes/kustomization.yaml."""
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


def generated_secret(certs: Path) -> dict:
    """The Secret the kustomization's secretGenerator makes from the files in ``certs``."""
    (generator,) = kustomization()["secretGenerator"]
    data = {}
    for entry in generator["files"]:
        key, _, relative = entry.partition("=")
        data[key] = base64.b64encode((certs / Path(relative).relative_to("certs")).read_bytes()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": generator["type"],
            "metadata": {"name": generator["name"], "labels": kustomization()["generatorOptions"]["labels"]},
            "data": data}


def make_dev_certs(directory: Path) -> None:
    """A dev PKI for the Service's names in ``directory``, made as deploy/kubernetes/README.md makes it."""
    subprocess.run([sys.executable, "-m", "mockllm", "certs", str(directory), "--hosts",
                    "mockllm,mockllm.default,mockllm.default.svc,mockllm.default.svc.cluster.local"],
                   check=True, capture_output=True, timeout=60)


def container(deployment: dict) -> dict:
    """The Deployment's one container."""
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


class ManifestTests(SynchronousTestCase):
    """deploy/kubernetes, checked without a cluster."""

    def test_manifests_validate_against_the_kubernetes_schemas(self):
        """The Deployment, Service and ConfigMap, and the Secret the kustomization generates
        from a fresh dev PKI, validate strictly against the Kubernetes schemas of each version
        in VERSIONS."""
        certs = Path(tempfile.mkdtemp(prefix="mockllm-k8s-"))
        self.addCleanup(shutil.rmtree, certs, True)
        make_dev_certs(certs / "certs")
        resources = manifests()
        self.assertEqual(set(resources), {"Deployment", "Service", "ConfigMap"})
        for version in VERSIONS:
            for resource in [*resources.values(), generated_secret(certs / "certs")]:
                kubernetes_validate.validate(resource, version, strict=True)

    def test_kustomization_lists_every_manifest_and_keeps_keys_out_of_git(self):
        """kustomization.yaml names each manifest file; the certificate files its Secret is
        made from are ignored by git, so keys are never committed."""
        files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
        assert set(kustomization()["resources"]) == files
        if shutil.which("git") is None or not (ROOT / ".git").exists():
            raise unittest.SkipTest("not a git checkout")
        for entry in kustomization()["secretGenerator"][0]["files"]:
            relative = (Path("deploy/kubernetes") / entry.partition("=")[2]).as_posix()
            ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", relative], timeout=30)
            assert ignored.returncode == 0, f"{relative} is not git-ignored"

    def test_deployment_runs_non_root_with_probes_and_resources(self):
        """The pod runs as the image's uid (10001, as docker/Dockerfile's USER) and not as root,
        without privilege escalation or capabilities; readiness and liveness probe /health on
        the plain port; CPU and memory are requested and memory is limited."""
        deployment = manifests()["Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == tuple(map(int, user.groups()))
        main = container(deployment)
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports == {"http": 8001, "https": 8443}
        for probe in ("readinessProbe", "livenessProbe"):
            assert main[probe]["httpGet"] == {"path": "/health", "port": "http"}
        assert {"cpu", "memory"} <= set(main["resources"]["requests"])
        assert "memory" in main["resources"]["limits"]

    def test_service_reaches_the_deployment_ports(self):
        """The Service selects the Deployment's pods and targets its named ports."""
        resources = manifests()
        deployment, service = resources["Deployment"], resources["Service"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        names = {p["name"] for p in container(deployment)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} == names

    def test_configmap_is_a_valid_mockllm_config_naming_the_mounted_secret(self):
        """The ConfigMap's TOML is accepted by ``twist mockllm --config`` (which refuses an
        unknown key or a wrong type); the --config the container gets is where the ConfigMap
        is mounted, and its certificate paths are the Secret's keys where the Secret is
        mounted, with client certificates required."""
        resources = manifests()
        deployment, configmap = resources["Deployment"], resources["ConfigMap"]
        main, pod = container(deployment), deployment["spec"]["template"]["spec"]
        ((key, text),) = configmap["data"].items()
        tmp_path = Path(tempfile.mkdtemp(prefix="mockllm-k8s-"))
        self.addCleanup(shutil.rmtree, tmp_path, True)
        (tmp_path / key).write_text(text)
        # --list-scenarios reads --config, then prints and exits before anything listens.
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        checked = subprocess.run([sys.executable, "-m", "twisted", "mockllm", "--config", str(tmp_path / key),
                                  "--list-scenarios"], capture_output=True, text=True, timeout=60, env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert tomllib.loads(text)["tls"]["require_client_cert"] is True

        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        config_volume = next(n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap["metadata"]["name"])
        args = main["args"]
        assert args[args.index("--config") + 1] == f"{mounts[config_volume]}/{key}"

        secret_name = kustomization()["secretGenerator"][0]["name"]
        tls_volume = next(n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == secret_name)
        tls = tomllib.loads(text)["tls"]
        keys = {entry.partition("=")[0] for entry in kustomization()["secretGenerator"][0]["files"]}
        assert {tls["cert_path"], tls["key_path"], tls["ca_cert_path"]} == {f"{mounts[tls_volume]}/{k}" for k in keys}
