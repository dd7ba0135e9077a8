"""Docker for the container tests and bench/containers.py: the engine, and the images, made
offline from Debian's packages and cached.

- The engine: the running dockerd, else one started here (as root, when `dockerd` is installed:
  tests/run.sh installs Debian's docker.io) with its data root kept in ~/.cache/ccfleet/docker.
  Without one the tests skip and say why.
- The base: Debian bookworm from Debian's packages (`mmdebstrap --variant=minbase` with Python,
  its venv module, passwd and redis-server), imported as `ccfleet-test-base:<hash of the recipe>`.
  No registry is reachable here, so `python:…-slim` and `redis:…` cannot be pulled. Its
  tarball stays in ~/.cache/ccfleet/images: a fresh data root imports it in seconds instead
  of running mmdebstrap again (~70-100 s).
- Redis: that base running Debian's redis-server as its own user, data in /data.
- ccfleet: k8s/Dockerfile on that base (build argument PYTHON_IMAGE), with the CLI binary the
  suite runs put into the context (claude-code/claude): no Node.js, no npm download, and the
  image runs the very binary the other tests ran. Tagged with a hash of what goes into it, so
  an unchanged tree builds nothing; a changed one rebuilds from the engine's layer cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).parent.parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccfleet"
IMAGE_CACHE = CACHE / "images"
DATA_ROOT = CACHE / "docker"
DOCKERFILE = REPO / "k8s" / "Dockerfile"
DOCKERIGNORE = REPO / "k8s" / "Dockerfile.dockerignore"

# The host's trusted certificates: package registries may be reached through a TLS proxy whose
# authority only the host trusts. The base carries the same file, and its pip (inside a build)
# reads it, so a build reaches the registries as the host does.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates", "redis-server")
MMDEBSTRAP_ARGS = (
    "--variant=minbase",
    f"--include={','.join(BASE_PACKAGES)}",
    # Documentation and translations: 40 MB nobody reads in a container.
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    f"--customize-hook=copy-in {HOST_CA_BUNDLE} /etc/ssl/certs",
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    "bookworm",
)
BASE_CHANGES = ("ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",)

REDIS_DOCKERFILE = """\
FROM {base}
RUN install -d -o redis -g redis -m 0750 /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
"""

BUILD_TIMEOUT_S = 900.0


class EngineUnavailable(Exception):
    """No Docker engine runs here and none can be started: why, for the skip message."""


def docker(*args: str, timeout_s: float = 120.0, stdin: str | None = None) -> str:
    """`docker ARGS`' standard output; RuntimeError with its stderr when it fails."""
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def engine_runs() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_engine(log_path: Path) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine runs, and only root may start one")
    if shutil.which("dockerd") is None:
        raise EngineUnavailable("no Docker engine runs and dockerd is not installed (docker.io)")
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        daemon = subprocess.Popen(
            ["dockerd", "--data-root", str(DATA_ROOT)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60.0
    while not engine_runs():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            daemon.wait()
            tail = log_path.read_text(errors="replace")[-1500:]
            raise EngineUnavailable(f"dockerd did not start:\n{tail}")
        time.sleep(0.5)
    return daemon


@contextlib.contextmanager
def engine(log_path: Path) -> Iterator[None]:
    """The running engine, or one started for the block (stopped after it)."""
    if shutil.which("docker") is None:
        raise EngineUnavailable("no docker command (tests/run.sh installs docker.io as root)")
    if engine_runs():
        yield
        return
    daemon = _start_engine(log_path)
    try:
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge (docker0): its gateway, which the engine
    lists only when it was configured; otherwise the subnet's first address, as it assigns."""
    config = json.loads(docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"))
    gateway = config[0].get("Gateway")
    if gateway:
        return str(gateway)
    return str(next(ipaddress.ip_network(config[0]["Subnet"]).hosts()))


def image_exists(tag: str) -> bool:
    found = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, timeout=30
    ).returncode
    return found == 0


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def base_image() -> str:
    """The Debian base, imported from the cached tarball, made by mmdebstrap when missing."""
    tag = _base_tag()
    if image_exists(tag):
        return tag
    tarball = base_tarball()
    changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
    docker("import", *changes, str(tarball), tag, timeout_s=300)
    return tag


def _base_tag() -> str:
    recipe = json.dumps([MMDEBSTRAP_ARGS, BASE_CHANGES]).encode()
    return f"ccfleet-test-base:{_digest(recipe, HOST_CA_BUNDLE.read_bytes())}"


def base_tarball() -> Path:
    """The base's root file system as a tarball in the cache, made by mmdebstrap (no engine
    needed) when missing: tests/run.sh makes it while the static checks run."""
    tarball = IMAGE_CACHE / f"{_base_tag().replace(':', '-')}.tar"
    if not tarball.exists():
        _mmdebstrap(tarball)
    return tarball


def _mmdebstrap(tarball: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise EngineUnavailable("mmdebstrap is not installed (tests/run.sh installs it as root)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    partial.unlink(missing_ok=True)  # from a run stopped half-way
    made = subprocess.run(
        ["mmdebstrap", "--quiet", "--format=tar", *MMDEBSTRAP_ARGS, str(partial)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if made.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"mmdebstrap failed: {made.stderr[-2000:]}")
    partial.rename(tarball)


def redis_image(base: str) -> str:
    """Debian's redis-server on the base, as its `redis` user, with its data in /data."""
    dockerfile = REDIS_DOCKERFILE.format(base=base)
    tag = f"ccfleet-test-redis:{_digest(dockerfile.encode())}"
    if not image_exists(tag):
        docker("build", "--tag", tag, "-", stdin=dockerfile, timeout_s=300)
    return tag


def _context_files() -> list[Path]:
    """What k8s/Dockerfile's context holds from the repository (its .dockerignore's `!` lines)."""
    entries = [line[1:] for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")]
    files: list[Path] = []
    for entry in entries:
        path = REPO / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [
            p
            for p in candidates
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ]
    return files


# The tables of pyproject.toml the image build reads: the package and its dependencies, how it
# is built, and the pinned CLI version ([tool.ccfleet]).
IMAGE_PYPROJECT_TABLES = ("project", "build-system", "tool.hatch", "tool.ccfleet")


def image_pyproject(text: str) -> str:
    """pyproject.toml without the tables no image is built from (pytest's, ruff's, mypy's...):
    an edit to those then neither changes the image's tag nor invalidates the Dockerfile's
    dependency layer, which would install every dependency again from the package index."""
    kept: list[str] = []
    keep = True
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            name = line.strip().strip("[]")
            keep = any(name == t or name.startswith(f"{t}.") for t in IMAGE_PYPROJECT_TABLES)
        if keep:
            kept.append(line)
    return "".join(kept)


def _context_bytes(path: Path) -> bytes:
    """What the context holds for `path`: the file, pyproject.toml cut to the image's tables."""
    if path == REPO / "pyproject.toml":
        return image_pyproject(path.read_text()).encode()
    return path.read_bytes()


def ccfleet_image(base: str, claude_bin: str) -> str:
    """k8s/Dockerfile built on `base` with the binary `claude_bin`; built only when missing."""
    binary = Path(claude_bin).resolve()
    files = [*_context_files(), DOCKERFILE]
    contents = [f"{p.relative_to(REPO)}\n".encode() + _context_bytes(p) for p in files]
    stat = binary.stat()
    identity = f"{base} {binary} {stat.st_size} {stat.st_mtime_ns}".encode()
    tag = f"ccfleet-test:{_digest(identity, *contents)}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="ccfleet-context-") as directory:
        context = Path(directory)
        for path in files:
            target = context / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_context_bytes(path))
        shutil.copy2(DOCKERIGNORE, context / ".dockerignore")
        (context / "claude-code").mkdir()
        _link_or_copy(binary, context / "claude-code" / "claude")
        _build(context, base, tag)
    _untag_others(tag)
    return tag


def _untag_others(tag: str) -> None:
    """Drops the older trees' tags, so the engine's disk does not grow with every edit (their
    layers that the new image shares stay)."""
    repository = tag.split(":")[0]
    for other in docker("images", repository, "--format", "{{.Repository}}:{{.Tag}}").split():
        if other != tag:
            with contextlib.suppress(RuntimeError):
                docker("rmi", other)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copy2(source, target)


def _build(context: Path, base: str, tag: str) -> None:
    # The legacy builder, whatever the docker command would pick: it is what this engine's
    # command has (no buildx), and it needs no entitlement for --network host, which lets pip
    # reach the package registry as the host does.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    built = subprocess.run(
        [
            "docker",
            "build",
            "--network",
            "host",
            "--file",
            str(context / "k8s" / "Dockerfile"),
            "--build-arg",
            f"PYTHON_IMAGE={base}",
            "--tag",
            tag,
            str(context),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if built.returncode != 0:
        raise RuntimeError(f"docker build failed:\n{(built.stdout + built.stderr)[-4000:]}")
