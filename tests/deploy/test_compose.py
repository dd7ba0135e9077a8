"""docker-compose.yml: valid under the Compose specification, with the properties it promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import REPO

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _check_jsonschema() -> str:
    return str(Path(sys.executable).parent / "check-jsonschema")


def test_the_compose_file_passes_the_compose_specification_schema() -> None:
    checked = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_schema_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE.read_text().replace("    restart: unless-stopped", "    restrat: no", 1)
    )
    checked = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode != 0


def test_redis_runs_with_a_password_and_aof(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1].startswith("${CCFLEET_REDIS_PASSWORD:?")
    assert any(volume.endswith(":/data") for volume in compose["services"]["redis"]["volumes"])


def test_two_front_ends_listen_on_localhost_unless_changed(compose: dict[str, Any]) -> None:
    apis = {name: s for name, s in compose["services"].items() if s["command"][0] == "api"}
    assert len(apis) == 2
    for service in apis.values():
        [port] = service["ports"]
        assert port.startswith("${CCFLEET_BIND_ADDRESS:-127.0.0.1}:")
        assert service["environment"]["CCFLEET_REDIS_URL"].startswith(
            "redis://:${CCFLEET_REDIS_PASSWORD:?"
        )
    assert len({service["ports"][0] for service in apis.values()}) == 2
    # Nothing else is published.
    others = [s for name, s in compose["services"].items() if name not in apis]
    assert not any("ports" in service for service in others)


def test_every_worker_serves_one_account_with_its_own_token(compose: dict[str, Any]) -> None:
    workers = {n: s for n, s in compose["services"].items() if s.get("command") == ["worker"]}
    assert workers
    tokens = set()
    for name, service in workers.items():
        env = service["environment"]
        assert name == f"worker-{env['CCFLEET_ACCOUNT']}"
        token = re.fullmatch(r"\$\{(\w+):\?[^}]*\}", env["CLAUDE_CODE_OAUTH_TOKEN"])
        assert token, "a worker's token comes from .env and is required"
        tokens.add(token.group(1))
        assert env["CCFLEET_REDIS_URL"].startswith("redis://:${CCFLEET_REDIS_PASSWORD:?")
        assert service["healthcheck"]["test"][1:3] == ["ccfleet", "check-cli"]
    assert len(tokens) == len(workers)


def test_secrets_come_from_an_env_file_that_is_not_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, capture_output=True, timeout=10
    )
    assert ignored.returncode == 0, ".env must be git-ignored"
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?(\w+)=", example, re.MULTILINE))
    assert required <= listed
    assert set(re.findall(r"\$\{(\w+)", text)) <= listed
    assert not re.search(r"^\w+=\S", example, re.MULTILINE), "the example holds no values"


def test_docker_compose_1_29_accepts_the_file_as_compose_v2_does() -> None:
    # Where Compose v2 cannot be installed, docker-compose 1.29 is what runs the file
    # (tests/containers/test_compose_stack.py brings it up): it refuses keys v2 added, such as
    # a top-level `name`.
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (tests/run.sh installs it as root)")
    secrets = {
        "CCFLEET_REDIS_PASSWORD": "x",
        "CCFLEET_AUTH_SECRET": "y",
        "PRIMARY_OAUTH_TOKEN": "z",
    }
    checked = subprocess.run(
        ["docker-compose", "--file", str(COMPOSE), "config", "--quiet"],
        env={**os.environ, **secrets},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
