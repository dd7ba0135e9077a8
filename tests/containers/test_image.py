"""k8s/Dockerfile's image, run as the manifests run it: a front end and a worker container with
Redis in a third, on a bridge network; the anthropic SDK on the host reaches the front end
through a port published on 127.0.0.1, and the worker's CLI reaches the fake upstream on the
bridge's gateway."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from tests.containers.conftest import Images
from tests.containers.pods import (
    API_MANIFEST,
    WORKER_MANIFEST,
    Sandbox,
    container_exec,
    logs,
    pod_shape,
    published_url,
)
from tests.fakes.upstream import DEFAULT_TEXT, FakeUpstream
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients, text_of

# One process runs every container test: they share the engine and the images. The first
# session on a machine makes the images (~3 min, in the fixture `images`): hence the timeout.
pytestmark = [pytest.mark.xdist_group("docker"), pytest.mark.timeout(600)]

MODEL = "claude-sonnet-5-5"


@dataclass(frozen=True)
class Fleet:
    redis: str
    api: str
    worker: str
    url: str
    key: str
    redis_password: str

    def logs(self) -> str:
        return "\n".join(logs(name) for name in (self.api, self.worker))


def _start(sandbox: Sandbox, images: Images, upstream: FakeUpstream) -> Fleet:
    network = sandbox.network()
    password = secrets.token_hex(16)
    redis_url = f"redis://:{password}@{sandbox.prefix}-redis:6379/0"
    redis = sandbox.run(
        "redis",
        images.redis,
        *("redis-server", "--requirepass", password, "--appendonly", "yes"),
        options=["--network", network],
    )
    api = sandbox.run(
        "api",
        images.ccfleet,
        *("api", "--host", "0.0.0.0", "--port", "8080"),
        options=[
            *pod_shape(API_MANIFEST).docker_options(),
            *("--network", network, "--publish", "127.0.0.1::8080"),
            *("--env", f"CCFLEET_REDIS_URL={redis_url}"),
            *("--env", f"CCFLEET_AUTH_SECRET={secrets.token_hex(32)}"),
        ],
    )
    worker = sandbox.run(
        "worker",
        images.ccfleet,
        "worker",
        options=[
            *pod_shape(WORKER_MANIFEST).docker_options(),
            *("--network", network),
            *("--env", f"CCFLEET_REDIS_URL={redis_url}"),
            *("--env", "CCFLEET_ACCOUNT=primary"),
            *("--env", "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-fake-test-token"),
            *("--env", f"ANTHROPIC_BASE_URL={upstream.url}"),
        ],
    )
    url = published_url(api, 8080)
    wait_until(partial(http_ok, f"{url}/ready"), 60.0, f"{url}/ready\n{logs(api)}")
    created = container_exec(api, "ccfleet", "keys", "create", "containers")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    return Fleet(redis, api, worker, url, key, password)


@pytest.fixture(scope="module")
def fleet(images: Images, bridge_upstream: FakeUpstream) -> Iterator[Fleet]:
    sandbox = Sandbox()
    try:
        yield _start(sandbox, images, bridge_upstream)
    finally:
        sandbox.remove()


@pytest.mark.parametrize("role", ["api", "worker"])
def test_each_role_runs_as_the_manifests_user_on_a_read_only_root(fleet: Fleet, role: str) -> None:
    container = fleet.api if role == "api" else fleet.worker
    shape = pod_shape(API_MANIFEST if role == "api" else WORKER_MANIFEST)
    assert container_exec(container, "id", "-u").stdout.strip() == str(shape.uid)
    # Not even root writes there: the root file system itself is read-only.
    written = container_exec(container, "touch", "/usr/local/bin/claude", user="0")
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr
    for path in shape.writable:
        assert container_exec(container, "touch", f"{path}/written").returncode == 0, path


def test_the_worker_container_passes_check_cli(fleet: Fleet) -> None:
    checked = container_exec(fleet.worker, "ccfleet", "check-cli", "--timeout", "20")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("claude ") and checked.stdout.endswith(": logged in\n")


def test_the_worker_container_answers_what_the_front_end_container_received(
    fleet: Fleet, container_upstream: FakeUpstream, sdk_clients: SdkClients
) -> None:
    client = sdk_clients.anthropic_client(fleet.url, fleet.key, timeout_s=90.0)
    try:
        reply = client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]
        )
    except Exception as exc:
        seen = [(r.path, r.disconnected) for r in container_upstream.requests]
        raise AssertionError(f"{seen}\n{fleet.logs()}") from exc
    assert text_of(reply) == DEFAULT_TEXT
    # The worker's CLI, in its container, asked the fake upstream.
    assert len(container_upstream.requests) == 1


def test_redis_in_its_container_wants_the_password_and_appends_to_its_aof(fleet: Fleet) -> None:
    refused = container_exec(fleet.redis, "redis-cli", "ping")
    assert "NOAUTH" in refused.stdout + refused.stderr
    aof = container_exec(
        fleet.redis,
        "redis-cli",
        "--no-auth-warning",
        "-a",
        fleet.redis_password,
        "config",
        "get",
        "appendonly",
    )
    assert aof.stdout.split() == ["appendonly", "yes"]
