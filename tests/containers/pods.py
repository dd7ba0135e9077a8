"""Containers run as the Kubernetes manifests run the pods: the user, the read-only root, the
writable paths (emptyDirs there, tmpfs here), no capabilities, no privilege escalation."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.containers.engine import REPO, docker

API_MANIFEST = REPO / "k8s" / "base" / "api.yaml"
WORKER_MANIFEST = REPO / "k8s" / "worker" / "worker.yaml"


@dataclass(frozen=True)
class PodShape:
    """What a manifest's Deployment asks of its container."""

    uid: int
    gid: int
    read_only_root: bool
    writable: tuple[str, ...]
    # shareProcessNamespace: the pause process reaps orphans; `docker run --init` here.
    reaps_orphans: bool

    def docker_options(self) -> list[str]:
        options = [
            *("--user", f"{self.uid}:{self.gid}"),
            *("--cap-drop", "ALL"),
            *("--security-opt", "no-new-privileges"),
        ]
        if self.read_only_root:
            options.append("--read-only")
        # An emptyDir is writable by the pod's fsGroup; a Docker tmpfs is root's unless given.
        for path in self.writable:
            options += ["--tmpfs", f"{path}:uid={self.uid},gid={self.gid}"]
        if self.reaps_orphans:
            options.append("--init")
        return options


def pod_shape(manifest: Path) -> PodShape:
    documents = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security = pod["securityContext"]
    return PodShape(
        uid=security["runAsUser"],
        gid=security["runAsGroup"],
        read_only_root=container["securityContext"]["readOnlyRootFilesystem"],
        writable=tuple(mount["mountPath"] for mount in container["volumeMounts"]),
        reaps_orphans=bool(pod.get("shareProcessNamespace")),
    )


@dataclass
class Sandbox:
    """Networks and containers made for a test module, removed at its end."""

    prefix: str = field(default_factory=lambda: f"ccfleet-test-{uuid.uuid4().hex[:8]}")
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def network(self) -> str:
        name = f"{self.prefix}-net"
        docker("network", "create", name)
        self.networks.append(name)
        return name

    def run(self, name: str, image: str, *command: str, options: list[str]) -> str:
        """Starts a detached container named `<prefix>-<name>`; its name."""
        full_name = f"{self.prefix}-{name}"
        self.containers.append(full_name)
        docker("run", "--detach", "--name", full_name, *options, image, *command)
        return full_name

    def remove(self) -> None:
        for name in self.containers:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                docker("rm", "--force", "--volumes", name, timeout_s=60)
        for name in self.networks:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                docker("network", "rm", name)


def published_url(container: str, port: int) -> str:
    """The http:// URL on the host of a container port published on 127.0.0.1."""
    mapping = docker("port", container, f"{port}/tcp").splitlines()[0]
    return f"http://{mapping}"


def container_exec(
    container: str, *command: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker exec` as the container's user, or as `user`."""
    options = ["--user", user] if user else []
    return subprocess.run(
        ["docker", "exec", *options, container, *command],
        capture_output=True,
        text=True,
        timeout=120,
    )


def logs(container: str) -> str:
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30)
    return f"--- {container}\n{(done.stdout + done.stderr)[-4000:]}"
