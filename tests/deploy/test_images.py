"""k8s/Dockerfile: a pinned base, a non-root user, and the CLI installed by the tests' script."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy.manifests import K8S, REPO, Manifest, of_kind, pod_spec

# One process builds the overlays (the session fixture built_overlays) for both modules.
pytestmark = pytest.mark.xdist_group("kustomize")

DOCKERFILE = (K8S / "Dockerfile").read_text()
INSTALL_SCRIPT = "scripts/install-claude-code.sh"


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_base_image_is_pinned_to_a_full_version() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert base, "the base image is an ARG with a default"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert stages and all(stage == "${PYTHON_IMAGE}" for stage in stages)


def test_the_image_runs_as_the_non_root_user_the_manifests_expect(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    users = [line.split()[1] for line in _instructions() if line.startswith("USER ")]
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for deployment in of_kind(built_overlays["production"], "Deployment"):
        assert pod_spec(deployment)["securityContext"]["runAsUser"] == int(uid)


def test_the_image_and_the_tests_install_the_cli_with_one_script() -> None:
    runs = [line for line in _instructions() if line.startswith("RUN ")]
    assert any(INSTALL_SCRIPT in line for line in runs)
    assert INSTALL_SCRIPT in (REPO / "tests" / "run.sh").read_text()


def test_the_install_script_returns_the_pinned_cli_it_installed(claude_bin: str) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pinned = pyproject["tool"]["ccfleet"]["claude-code-version"]
    # tests/run.sh may be vetting another version (CCFLEET_CLAUDE_CODE_VERSION): that one.
    wanted = os.environ.get("CCFLEET_CLAUDE_CODE_VERSION") or pinned
    # tests/run.sh installed it into DIR/node_modules/.bin/claude: a second run finds it.
    directory = Path(claude_bin).parents[2]
    found = subprocess.run(
        [str(REPO / INSTALL_SCRIPT), str(directory), wanted],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == claude_bin
    version = subprocess.run([claude_bin, "--version"], capture_output=True, text=True, timeout=60)
    assert wanted in version.stdout


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    allowed = [
        line[1:]
        for line in (K8S / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [line.split()[1:] for line in _instructions() if line.startswith("COPY ")]
    sources = [src for args in copies if not args[0].startswith("--from") for src in args[:-1]]
    assert sources
    for source in sources:
        name = _unpatterned(source)
        assert any(name == a or name.startswith(a + "/") for a in allowed), source
        # A pattern ("claud[e]") may match nothing: the prebuilt CLI a context may carry.
        assert (REPO / source).exists() or name != source, source
    # And every package the wheel is built from is copied.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for package in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert package in sources


def _unpatterned(source: str) -> str:
    """A COPY source with its one-character classes ("claud[e]") as the name they match."""
    return re.sub(r"\[(.)\]", r"\1", source)


def test_the_legacy_builder_reads_the_same_context_filter_as_buildkit() -> None:
    # docker-compose 1.29 and a docker command without buildx read the context's .dockerignore.
    assert (REPO / ".dockerignore").read_text() == (K8S / "Dockerfile.dockerignore").read_text()


def test_the_dockerfile_builds_without_buildkit_and_without_a_registry() -> None:
    # BuildKit fetches a `# syntax=` frontend from a registry; the legacy builder refuses
    # RUN --mount. Either would stop the build here (the tests in tests/containers build it).
    assert not re.search(r"^#\s*syntax=", DOCKERFILE, re.MULTILINE)
    assert not any("--mount" in line for line in _instructions() if line.startswith("RUN "))


def test_the_wheel_the_image_installs_ships_every_lua_script(tmp_path: Path) -> None:
    # The image installs the project with `pip install .` (the hatchling wheel): a script
    # left out would stop every process at import (shared/broker/lua_script.py).
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    scripts = {
        str(path.relative_to(REPO))
        for package in packages
        for path in (REPO / package).rglob("*.lua")
    }
    assert scripts
    built = subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert scripts <= set(archive.namelist())
