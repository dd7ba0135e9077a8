"""Building the overlays with `kubectl kustomize` and reading what they hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).parent.parent.parent
K8S = REPO / "k8s"
OVERLAYS = ("dev", "production")

Manifest = dict[str, Any]


def kustomize(directory: Path) -> list[Manifest]:
    """`kubectl kustomize DIR`, parsed; a build error fails the test with kubectl's message."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH: the deployment tests need it (kubectl kustomize)")
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, f"kubectl kustomize {directory} failed:\n{built.stderr}"
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str, component: str | None = None) -> list[Manifest]:
    """The manifests of a kind, optionally only those of one app.kubernetes.io/component."""
    return [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            component is None
            or m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        )
    ]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: Manifest) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: dict[str, Any] = containers[0]
    return container


def env_values(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def config_map_value(manifests: list[Manifest], workload: Manifest, name: str) -> str | None:
    """A variable as the container sees it: its env, else its envFrom ConfigMaps."""
    container = only_container(workload)
    value = env_values(container).get(name)
    if isinstance(value, str):
        return value
    for source in container.get("envFrom", []):
        config_map = one(manifests, "ConfigMap", source["configMapRef"]["name"])
        if name in config_map["data"]:
            data: str = config_map["data"][name]
            return data
    return None
