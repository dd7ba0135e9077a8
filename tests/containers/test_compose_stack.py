"""docker-compose.yml brought up for real with docker-compose 1.29 (Compose v2 is not
installable here; tests/deploy/test_compose.py keeps the file valid for both).

A small override file only swaps in the images made offline (tests/containers/engine.py) and
points the worker's CLI at the fake upstream; everything else is the operator's file. The
front ends publish their ports on a loopback address of the test's own (127.0.0.N), as an
operator's .env sets CCFLEET_BIND_ADDRESS, so no port another process holds on 127.0.0.1 is
in the way. The tests run in file order: the last one takes the stack down.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from tests.containers.conftest import Images
from tests.containers.engine import REPO, docker
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream, HangReply
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients, text_of

pytestmark = [pytest.mark.xdist_group("docker"), pytest.mark.timeout(600)]

MODEL = "claude-sonnet-5-5"
COMPOSE_FILE = REPO / "docker-compose.yml"
# A killed worker's streams end when its heartbeat expires (3 s here, 10 s by default);
# anything near this bound is a hang.
KILL_BOUND_S = 60.0


@dataclass
class ComposeStack:
    project: str
    override: Path
    env: dict[str, str]
    urls: list[str] = field(default_factory=list)
    key: str = ""

    def compose(self, *args: str, timeout_s: float = 300.0) -> str:
        files = ["--file", str(COMPOSE_FILE), "--file", str(self.override)]
        done = subprocess.run(
            ["docker-compose", "--project-name", self.project, *files, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)}: {done.stderr[-3000:]}")
        return done.stdout.strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40")[-6000:]

    def left_behind(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            kind: docker(*command, "--quiet", "--filter", label).split()
            for kind, command in {
                "containers": ("ps", "--all"),
                "networks": ("network", "ls"),
                "volumes": ("volume", "ls"),
            }.items()
        }


def _override(images: Images, upstream: FakeUpstream) -> str:
    """The images made here, the fake upstream, and quicker clocks: Redis checked every
    second (the file's 5 s would hold the front ends back), a worker's heartbeat expiring
    after 3 s rather than 10 (the kill test waits for it)."""
    operators: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    healthcheck = {**operators["services"]["redis"]["healthcheck"], "interval": "1s"}
    ttl = {"CCFLEET_HEARTBEAT_TTL_S": "3"}
    api = {"image": images.ccfleet, "environment": ttl}
    worker_env = {
        **ttl,
        "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
        "ANTHROPIC_BASE_URL": upstream.url,
    }
    return yaml.safe_dump(
        {
            "services": {
                "redis": {"image": images.redis, "healthcheck": healthcheck},
                "api-1": api,
                "api-2": api,
                "worker-primary": {"image": images.ccfleet, "environment": worker_env},
            }
        }
    )


def _up(stack: ComposeStack) -> None:
    stack.compose("up", "--detach", "--no-build")
    for url in stack.urls:
        wait_until(partial(http_ok, f"{url}/ready"), 90.0, f"{url}/ready")
    created = stack.compose("exec", "-T", "api-1", "ccfleet", "keys", "create", "compose")
    stack.key = created.splitlines()[-1]


@pytest.fixture(scope="module")
def stack(
    images: Images, bridge_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    override = tmp_path_factory.mktemp("compose") / "docker-compose.test.yml"
    override.write_text(_override(images, bridge_upstream))
    address = f"127.0.0.{random.randint(2, 254)}"
    env = {
        **os.environ,
        "CCFLEET_REDIS_PASSWORD": secrets.token_hex(16),
        "CCFLEET_AUTH_SECRET": secrets.token_hex(32),
        "PRIMARY_OAUTH_TOKEN": "sk-ant-oat01-fake-test-token",
        "CCFLEET_BIND_ADDRESS": address,
        "CCFLEET_ALLOWED_HOSTS": f'["{address}"]',
    }
    stack = ComposeStack(f"ccfleet-test-{uuid.uuid4().hex[:8]}", override, env)
    stack.urls = [f"http://{address}:8080", f"http://{address}:8081"]
    try:
        _up(stack)
        yield stack
    finally:
        if any(stack.left_behind().values()):  # the last test took it down, unless it failed
            stack.compose("down", "--volumes", "--timeout", "10")


def test_the_anthropic_sdk_is_answered_through_both_front_ends(
    stack: ComposeStack, container_upstream: FakeUpstream, sdk_clients: SdkClients
) -> None:
    clients = [sdk_clients.anthropic_client(url, stack.key, timeout_s=90.0) for url in stack.urls]

    def ask(client: anthropic.Anthropic) -> str:
        return text_of(
            client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]
            )
        )

    # Side by side: the worker has two slots, and each CLI's start is most of the time.
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        try:
            answers = list(pool.map(ask, clients))
        except anthropic.APIError as exc:
            raise AssertionError(stack.logs()) from exc
    assert answers == [DEFAULT_TEXT] * len(clients)
    assert len(container_upstream.requests) == len(clients)


def _stream(client: anthropic.Anthropic, outcome: list[str]) -> None:
    try:
        with client.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]
        ) as stream:
            stream.get_final_message()
        outcome.append("answer")
    except anthropic.APITimeoutError:
        outcome.append("hang")
    except anthropic.APIError as exc:
        outcome.append(f"error: {type(exc).__name__}")


def test_killing_the_worker_mid_request_gives_an_error_or_an_answer_never_a_hang(
    stack: ComposeStack, container_upstream: FakeUpstream, sdk_clients: SdkClients
) -> None:
    released = threading.Event()
    container_upstream.enqueue(HangReply(until=released))
    # The SDK's own timeout is past the bound: a hang shows as a thread still waiting.
    client = sdk_clients.anthropic_client(stack.urls[0], stack.key, timeout_s=2 * KILL_BOUND_S)
    outcome: list[str] = []
    request = threading.Thread(target=_stream, args=(client, outcome), daemon=True)
    request.start()
    try:
        assert container_upstream.wait_for_requests(1, timeout_s=60.0), stack.logs()
        worker = stack.compose("ps", "--quiet", "worker-primary")
        docker("kill", worker)
        request.join(timeout=KILL_BOUND_S)
        assert not request.is_alive(), f"no answer nor error {KILL_BOUND_S}s after the kill"
    finally:
        released.set()
    assert outcome and outcome[0] != "hang", outcome


def test_down_leaves_no_container_network_or_volume(stack: ComposeStack) -> None:
    assert all(stack.left_behind().values())  # what the stack made, named by its label
    stack.compose("down", "--volumes", "--timeout", "10")
    assert stack.left_behind() == {"containers": [], "networks": [], "volumes": []}
