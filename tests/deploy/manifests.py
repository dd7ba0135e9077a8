"""Building the overlays with `kubectl kustomize` and reading what they hold."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
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


def redis_server_args(manifests: list[Manifest], container: dict[str, Any]) -> list[str]:
    """The arguments a Redis container passes `redis-server`: its own, or (with Sentinel,
    `sh /scripts/X.sh`) those its script passes, run as pod 0 of a new group."""
    args: list[str] = container["args"]
    if args[0] != "sh":
        return args
    return run_redis_script(mounted_script(manifests, container, args[1]), pod="ccfleet-redis-0")


@dataclass(frozen=True)
class MountedScript:
    """A start script as a pod runs it: `name` in a directory holding `files`, every file of
    the ConfigMap mounted there (the scripts it sources among them)."""

    name: str
    files: dict[str, str]

    @property
    def text(self) -> str:
        return self.files[self.name]


def run_redis_script(script: MountedScript, *, pod: str, primary: str = "") -> list[str]:
    """Run a Redis pod's start script with stand-ins for `redis-cli` (the sentinels name
    `primary`; none answers if empty) and `redis-server` (prints its arguments, one a line,
    and the file it was given, if any); what `redis-server` was given."""
    with tempfile.TemporaryDirectory() as scratch:
        bin_dir = Path(scratch) / "bin"
        mount = Path(scratch) / "scripts"
        bin_dir.mkdir()
        mount.mkdir()
        answer = f"printf '%s\\n6379\\n' {shlex.quote(primary)}" if primary else "exit 1"
        (bin_dir / "redis-cli").write_text(f"#!/bin/sh\n{answer}\n")
        (bin_dir / "redis-server").write_text(
            '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n'
            'if [ -f "$1" ]; then cat "$1"; fi\n'
        )
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        for name, text in script.files.items():
            # the sentinel's emptyDir
            (mount / name).write_text(text.replace("/sentinel/", f"{bin_dir}/"))
        # The password as the manifests write it: the Secret's value, passed on untouched.
        password = "$(REDIS_PASSWORD)"
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "POD_NAME": pod, "REDIS_PASSWORD": password}
        ran = subprocess.run(
            ["sh", "-eu", str(mount / script.name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.splitlines()


def mounted_script(
    manifests: list[Manifest], container: dict[str, Any], path: str
) -> MountedScript:
    """The ConfigMap file mounted at `path` in `container`, with its ConfigMap's other files."""
    directory, name = path.rsplit("/", 1)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    workload = next(w for w in workloads(manifests) if container in pod_spec(w)["containers"])
    [volume] = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    files: dict[str, str] = one(manifests, "ConfigMap", volume["configMap"]["name"])["data"]
    return MountedScript(name, dict(files))
