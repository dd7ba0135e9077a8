"""Client keys, quotas, the ledger and metrics, end to end.

One stack for the module: Redis with a password, two front ends with auth on, one worker
with the real CLI against the fake upstream (its metrics on a port); keys are made with the
`ccfleet keys` command, and the anthropic and openai SDKs are the clients. Each test uses
keys of its own, so the tests share the stack without depending on each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis
from anthropic.types import MessageParam
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.access.ledger import next_month_start
from tests import client_keys, loopback
from tests.conftest import Stack, StackFactory
from tests.fakes.upstream import ErrorReply, FakeUpstream, RecordedRequest, TextReply
from tests.processes import ManagedProcess, http_ok, wait_until
from tests.sdk import SdkClients, error_body

# The module's tests share one stack (access_stack): under pytest-xdist, one process runs them.
pytestmark = pytest.mark.xdist_group("access_stack")

SERVER_SECRET = "test-server-secret-" + "0123456789abcdef" * 2
ACCESS_ENV = {"CCFLEET_AUTH": "on", "CCFLEET_AUTH_SECRET": SERVER_SECRET}
MODEL = "claude-sonnet-4-5"
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]
# What the fake upstream bills for one answer, and what the CLI 2.1.328 prices it at for
# claude-sonnet-4-5 (3 / 15 / 0.30 / 3.75 USD per million input / output / cache-read /
# cache-write tokens; measured: its result's total_cost_usd).
BILLED: dict[str, int] = {"input_tokens": 1000, "output_tokens": 500, "cache_read_tokens": 2000,
          "cache_write_tokens": 300}  # fmt: skip
BILLED_USD = 0.012225


def billed_reply() -> TextReply:
    return TextReply(
        "Hello.",
        input_tokens=BILLED["input_tokens"],
        output_tokens=BILLED["output_tokens"],
        cache_read_tokens=BILLED["cache_read_tokens"],
        cache_write_tokens=BILLED["cache_write_tokens"],
    )


@pytest.fixture(scope="module")
def worker_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def access_stack(
    tmp_path_factory: pytest.TempPathFactory,
    session_upstream: FakeUpstream,
    claude_bin: str,
    worker_metrics_port: int,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("access")
    (root / "claude-config").mkdir()
    with EmbeddedRedis(root / "redis", password="redis-test-password") as server:
        stack = Stack(redis=server, upstream=session_upstream, claude_bin=claude_bin, root=root)
        try:
            stack.add_worker(**ACCESS_ENV, CCFLEET_METRICS_PORT=str(worker_metrics_port))
            stack.add_api(**ACCESS_ENV)
            stack.add_api(**ACCESS_ENV)
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def stack(access_stack: Stack, upstream: FakeUpstream) -> Stack:
    """The module's stack, with the fake upstream's script emptied."""
    return access_stack


def ccfleet(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccfleet", *args],
        env=stack.env(**ACCESS_ENV),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def new_key(stack: Stack, name: str, **limits: Any) -> str:
    return await client_keys.create_key(stack.redis.url, SERVER_SECRET, name, **limits)


def create_key(stack: Stack, name: str, **limits: Any) -> str:
    return asyncio.run(new_key(stack, name, **limits))


@pytest.fixture(scope="module")
def admin_secret(access_stack: Stack) -> str:
    return create_key(access_stack, "ops", admin=True)


def usage_rows(stack: Stack, admin: str, by: str = "key") -> dict[str, dict[str, Any]]:
    reply = loopback.get(
        f"{stack.url}/v1/usage", params={"by": by}, headers={"x-api-key": admin}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return {row[by]: row for row in reply.json()["data"]}


def wait_for_booking(stack: Stack, admin: str, key: str, requests: int) -> dict[str, Any]:
    """The worker books a run just after its answer ends: wait for the ledger to show it."""
    wait_until(
        lambda: usage_rows(stack, admin).get(key, {}).get("requests") == requests,
        20,
        f"{requests} requests of {key} booked",
    )
    return usage_rows(stack, admin)[key]


# --- keys and authentication ---------------------------------------------------------------


def test_keys_create_prints_the_secret_alone_on_the_last_line_and_list_never_shows_it(
    stack: Stack,
) -> None:
    done = ccfleet(stack, "keys", "create", "listed", "--rpm", "7", "--models", "claude-*")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.splitlines()[-1]
    assert secret.startswith("sk-ccf-") and " " not in secret
    assert done.stdout.count(secret) == 1
    listed = ccfleet(stack, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (key,) = [k for k in json.loads(listed.stdout) if k["name"] == "listed"]
    assert key["rpm"] == 7 and key["models"] == ["claude-*"] and "digest" not in key
    assert secret not in listed.stdout
    updated = ccfleet(stack, "keys", "update", "listed", "--rpm", "0", "--tpm", "500")
    assert updated.returncode == 0, updated.stderr
    assert '"rpm": null' in updated.stdout and '"tpm": 500' in updated.stdout


def test_a_key_works_as_x_api_key_with_anthropic_and_as_bearer_with_openai(
    stack: Stack,
    sdk_clients: SdkClients,
) -> None:
    secret = create_key(stack, "both-sdks")
    message = sdk_clients.anthropic_client(stack.api_urls[0], secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    assert message.content[0].type == "text"
    completion = sdk_clients.openai_client(stack.api_urls[1], secret).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert completion.choices[0].message.content


def test_claude_code_as_a_client_sends_its_auth_token_as_a_bearer_key(
    stack: Stack, upstream: FakeUpstream, admin_secret: str, tmp_path: Path
) -> None:
    secret = create_key(stack, "claude-code")
    upstream.enqueue(TextReply("Hello from the fleet."))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": stack.api_urls[1],
        "ANTHROPIC_AUTH_TOKEN": secret,
        "CLAUDE_CONFIG_DIR": str(tmp_path / "client-config"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    done = subprocess.run(
        [stack.claude_bin, "-p", "Say hello"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Hello from the fleet." in done.stdout
    wait_for_booking(stack, admin_secret, "claude-code", 1)


def test_a_missing_or_wrong_key_is_401_in_each_apis_own_shape(
    stack: Stack, sdk_clients: SdkClients
) -> None:
    for url in stack.api_urls:
        with pytest.raises(anthropic.AuthenticationError) as wrong:
            sdk_clients.anthropic_client(url, "sk-ccf-wrong").models.list()
        assert error_body(wrong.value)["error"]["type"] == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            sdk_clients.openai_client(url, "sk-ccf-wrong").chat.completions.create(
                model=MODEL, messages=[]
            )
    missing = loopback.post(f"{stack.url}/v1/messages", json={}, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    openai_missing = loopback.post(f"{stack.url}/v1/chat/completions", json={}, timeout=10)
    assert openai_missing.status_code == 401
    assert openai_missing.json()["error"]["code"] == "invalid_api_key"
    assert "type" not in openai_missing.json()  # OpenAI's shape, not Anthropic's


def test_a_lane_or_model_the_key_may_not_use_is_403_permission_error(
    stack: Stack, sdk_clients: SdkClients
) -> None:
    secret = create_key(stack, "haiku-only", lanes=["interactive"], models=["claude-haiku-*"])
    client = sdk_clients.anthropic_client(stack.url, secret)
    with pytest.raises(anthropic.PermissionDeniedError) as model_refused:
        client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert error_body(model_refused.value)["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.PermissionDeniedError, match="batch lane"):
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=HELLO,
            extra_headers={"x-ccfleet-lane": "batch"},
        )
    with pytest.raises(openai.PermissionDeniedError):
        sdk_clients.openai_client(stack.api_urls[1], secret).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert stack.upstream.requests == []


def test_a_revoked_key_is_refused_by_every_front_end_from_the_next_request_on(
    stack: Stack,
    sdk_clients: SdkClients,
) -> None:
    secret = create_key(stack, "leaving")
    for url in stack.api_urls:
        assert sdk_clients.anthropic_client(url, secret).models.list().data
    revoked = ccfleet(stack, "keys", "revoke", "leaving")
    assert revoked.returncode == 0, revoked.stderr
    for url in stack.api_urls:  # no wait at all: the very next request
        with pytest.raises(anthropic.AuthenticationError):
            sdk_clients.anthropic_client(url, secret).models.list()


def test_fleet_and_usage_need_an_admin_key(stack: Stack, admin_secret: str) -> None:
    member = create_key(stack, "member")
    for path in ("/v1/fleet", "/v1/usage"):
        assert loopback.get(f"{stack.url}{path}", timeout=10).status_code == 401
        refused = loopback.get(f"{stack.url}{path}", headers={"x-api-key": member}, timeout=10)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "permission_error"
        allowed = loopback.get(
            f"{stack.api_urls[1]}{path}",
            headers={"authorization": f"Bearer {admin_secret}"},
            timeout=10,
        )
        assert allowed.status_code == 200


# --- quotas --------------------------------------------------------------------------------


async def test_requests_per_minute_hold_exactly_across_two_front_ends(stack: Stack) -> None:
    secret = await new_key(stack, "rpm-3", rpm=3)

    async def send(client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.post(
            f"{url}/v1/messages",
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
            json={"model": MODEL, "max_tokens": 64, "messages": HELLO},
        )

    async with httpx.AsyncClient(timeout=60) as client:
        replies = await asyncio.gather(*(send(client, stack.api_urls[i % 2]) for i in range(5)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 200, 200, 429, 429]
    for refused in (r for r in replies if r.status_code == 429):
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "requests per minute" in refused.json()["error"]["message"]


def test_concurrent_requests_count_on_every_front_end_until_the_reply_ends(
    stack: Stack, upstream: FakeUpstream, admin_secret: str, sdk_clients: SdkClients
) -> None:
    secret = create_key(stack, "one-at-a-time", concurrency=1)
    upstream.enqueue(TextReply("slow " * 200, delay_s=0.2, chunk_chars=4))
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    body = {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True}
    with loopback.stream(
        "POST", f"{stack.api_urls[0]}/v1/messages", json=body, headers=headers, timeout=60
    ) as streaming:
        assert streaming.status_code == 200
        lines = streaming.iter_lines()
        assert next(line for line in lines if "content_block_delta" in line)
        with pytest.raises(anthropic.RateLimitError, match="concurrent requests"):
            sdk_clients.anthropic_client(stack.api_urls[1], secret).messages.create(
                model=MODEL, max_tokens=64, messages=HELLO
            )
    # The stream was left: its lease ends with its relay, and the key has room again.
    answered: list[anthropic.types.Message] = []

    def room_again() -> bool:
        try:
            answered.append(
                sdk_clients.anthropic_client(stack.api_urls[1], secret).messages.create(
                    model=MODEL, max_tokens=64, messages=HELLO
                )
            )
        except anthropic.RateLimitError:
            return False
        return True

    wait_until(room_again, 20, "the lease of the stream that was left to end")
    assert answered[0].content[0].type == "text"
    # The run whose client left is booked too: as a request, not an error.
    row = wait_for_booking(stack, admin_secret, "one-at-a-time", 2)
    assert row["errors"] == 0 and row["input_tokens"] >= 12


def test_tokens_per_minute_count_what_the_upstream_billed(
    stack: Stack, upstream: FakeUpstream, admin_secret: str, sdk_clients: SdkClients
) -> None:
    secret = create_key(stack, "tpm-1000", tpm=1000)
    upstream.enqueue(billed_reply())  # 1000 input + 500 output: over the minute's 1000
    sdk_clients.anthropic_client(stack.url, secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    wait_for_booking(stack, admin_secret, "tpm-1000", 1)
    with pytest.raises(anthropic.RateLimitError, match="tokens per minute") as refused:
        sdk_clients.anthropic_client(stack.api_urls[1], secret).messages.create(
            model=MODEL, max_tokens=64, messages=HELLO
        )
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError) as openai_refused:
        sdk_clients.openai_client(stack.url, secret).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert error_body(openai_refused.value)["code"] == "rate_limit_exceeded"


def test_a_monthly_budget_refuses_the_key_until_the_month_turns(
    stack: Stack, upstream: FakeUpstream, admin_secret: str, sdk_clients: SdkClients
) -> None:
    secret = create_key(stack, "budget-1c", monthly_usd=0.01)
    upstream.enqueue(billed_reply())
    sdk_clients.anthropic_client(stack.url, secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    wait_for_booking(stack, admin_secret, "budget-1c", 1)
    with pytest.raises(anthropic.RateLimitError, match="monthly budget") as refused:
        sdk_clients.anthropic_client(stack.api_urls[1], secret).messages.create(
            model=MODEL, max_tokens=64, messages=HELLO
        )
    headers = refused.value.response.headers
    if int(headers["retry-after"]) > 300:  # not in the last five minutes of the month
        assert headers["x-should-retry"] == "false"


# --- the ledger ----------------------------------------------------------------------------


def test_the_ledger_books_what_the_upstream_billed_per_key_model_and_account(
    stack: Stack, upstream: FakeUpstream, admin_secret: str, sdk_clients: SdkClients
) -> None:
    def reply(request: RecordedRequest) -> ErrorReply | TextReply:
        if "Fail please." in str(request.body.get("messages")):
            return ErrorReply(400, "invalid_request_error", "Bad request.")
        return billed_reply()

    upstream.set_responder(reply)
    fleet_before = account_spend(stack, admin_secret)
    secret = create_key(stack, "ledger")
    sdk_clients.anthropic_client(stack.api_urls[0], secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    sdk_clients.openai_client(stack.api_urls[1], secret).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}]
    )
    with pytest.raises(anthropic.BadRequestError):
        sdk_clients.anthropic_client(stack.url, secret).messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Fail please."}]
        )
    row = wait_for_booking(stack, admin_secret, "ledger", 3)
    expected = {
        "key": "ledger",
        "requests": 3,
        "errors": 1,
        **{kind: 2 * count for kind, count in BILLED.items()},
        "cost_usd": pytest.approx(2 * BILLED_USD),
    }
    assert row == expected
    listed = ccfleet(stack, "usage", "--by", "key", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r for r in json.loads(listed.stdout) if r["key"] == "ledger"] == [expected]
    assert usage_rows(stack, admin_secret, by="model")[MODEL]["requests"] >= 3
    assert usage_rows(stack, admin_secret, by="account")["default"]["requests"] >= 3
    # Other tests' runs may be booked meanwhile: at least this test's cost was added.
    assert account_spend(stack, admin_secret) >= fleet_before + 2 * BILLED_USD - 1e-9
    status = ccfleet(stack, "status")
    assert status.returncode == 0, status.stderr
    assert f"{account_spend(stack, admin_secret):.2f}" in status.stdout


def account_spend(stack: Stack, admin: str) -> float:
    fleet = loopback.get(f"{stack.url}/v1/fleet", headers={"x-api-key": admin}, timeout=10).json()
    (default,) = [a for a in fleet["accounts"] if a["name"] == "default"]
    return float(default["month_usd"])


# --- metrics and secrets -------------------------------------------------------------------

METRIC_NAMES = {
    "ccfleet_requests",
    "ccfleet_time_to_first_token_seconds",
    "ccfleet_request_duration_seconds",
    "ccfleet_queue_wait_seconds",
    "ccfleet_tokens",
    "ccfleet_cost_usd",
    "ccfleet_queue_depth",
    "ccfleet_workers",
    "ccfleet_account_cooling",
    "ccfleet_cli_start_seconds",
}


def scrape(url: str, key: str | None = None) -> tuple[str, dict[str, list[Sample]]]:
    reply = loopback.get(url, headers={"x-api-key": key} if key else {}, timeout=10)
    assert reply.status_code == 200, reply.text
    text = reply.text
    families = {family.name: family.samples for family in text_string_to_metric_families(text)}
    return text, families


def sample(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_are_parseable_everywhere_and_name_keys_never_secrets(
    stack: Stack,
    upstream: FakeUpstream,
    admin_secret: str,
    worker_metrics_port: int,
    sdk_clients: SdkClients,
) -> None:
    worker_url = f"http://127.0.0.1:{worker_metrics_port}/metrics"
    secret = create_key(stack, "metered")
    upstream.enqueue(billed_reply())
    sdk_clients.anthropic_client(stack.api_urls[1], secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    wait_for_booking(stack, admin_secret, "metered", 1)
    texts = []
    for url, key in [*((f"{u}/metrics", admin_secret) for u in stack.api_urls), (worker_url, None)]:
        text, families = scrape(url, key)
        texts.append(text)
        assert set(families) >= METRIC_NAMES, url
    _, front = scrape(f"{stack.api_urls[1]}/metrics", admin_secret)
    assert (
        sample(front, "ccfleet_requests_total", route="/v1/messages", status="200", key="metered")
        == 1
    )
    assert sample(front, "ccfleet_time_to_first_token_seconds_count") >= 1
    assert sample(front, "ccfleet_workers", state="ready") == 1
    assert sample(front, "ccfleet_account_cooling", account="default") == 0
    _, worker = scrape(worker_url)
    assert sample(worker, "ccfleet_tokens_total", type="input", key="metered") == 1000
    assert sample(worker, "ccfleet_tokens_total", type="cache_read", key="metered") == 2000
    # The CLI sums its cost in floats: 0.012224999999999998 for 0.012225.
    assert sample(worker, "ccfleet_cost_usd_total", account="default") >= BILLED_USD - 1e-9
    assert sample(worker, "ccfleet_cli_start_seconds_count") >= 1
    assert sample(worker, "ccfleet_queue_wait_seconds_count") >= 1
    assert not any(secret in text or admin_secret in text for text in texts)


def test_front_end_metrics_need_an_admin_key_when_auth_is_on(
    stack: Stack, admin_secret: str
) -> None:
    # The metrics name keys and accounts: for the operator's scraper, not for clients.
    client_secret = create_key(stack, "curious")
    for url in stack.api_urls:
        anonymous = loopback.get(f"{url}/metrics", timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"] == "authentication_error"
        as_client = loopback.get(f"{url}/metrics", headers={"x-api-key": client_secret}, timeout=10)
        assert as_client.status_code == 403
        assert as_client.json()["error"]["type"] == "permission_error"
        assert "curious" not in anonymous.text + as_client.text
        scrape(f"{url}/metrics", admin_secret)


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a socket of this host listens on at `port` (from /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


def test_a_workers_metrics_listen_on_loopback_unless_told_otherwise(
    stack: Stack, worker_metrics_port: int
) -> None:
    # The module's worker sets CCFLEET_METRICS_PORT and not CCFLEET_METRICS_HOST.
    scrape(f"http://127.0.0.1:{worker_metrics_port}/metrics")
    assert listening_addresses(worker_metrics_port) == {"127.0.0.1"}


def every_value_in(client: redis.Redis) -> bytes:
    """Every key name and value Redis holds, as one blob to search."""
    parts: list[bytes] = []
    for name in client.scan_iter():
        kind = client.type(name).decode()  # type: ignore[union-attr]  # redis-py 5 types replies sync-or-async
        parts.append(name)
        if kind == "string":
            parts.append(client.get(name) or b"")  # type: ignore[arg-type]  # redis-py 5 types replies sync-or-async
        elif kind == "hash":
            for field, value in client.hgetall(name).items():  # type: ignore[union-attr]  # redis-py 5 types replies sync-or-async
                parts += [field, value]
        elif kind in ("set", "zset"):
            parts += list(client.smembers(name) if kind == "set" else client.zrange(name, 0, -1))  # type: ignore[arg-type]  # redis-py 5 types replies sync-or-async
        elif kind == "list":
            parts += client.lrange(name, 0, -1)  # type: ignore[arg-type]  # redis-py 5 types replies sync-or-async
        elif kind == "stream":
            parts += [repr(entry).encode() for entry in client.xrange(name)]  # type: ignore[union-attr]  # redis-py 5 types replies sync-or-async
    return b"\n".join(parts)


def test_no_secret_is_kept_in_redis_logs_or_metrics(
    stack: Stack, admin_secret: str, sdk_clients: SdkClients
) -> None:
    secret = create_key(stack, "careful")
    sdk_clients.anthropic_client(stack.api_urls[0], secret).messages.create(
        model=MODEL, max_tokens=64, messages=HELLO
    )
    for url in stack.api_urls:
        sdk_clients.openai_client(url, secret).models.list()
        with pytest.raises(anthropic.AuthenticationError):
            sdk_clients.anthropic_client(url, secret + "-wrong").models.list()
    client = redis.Redis.from_url(stack.redis.url)
    try:
        stored = every_value_in(client)
    finally:
        client.close()
    assert b"ccfleet:client_key" in stored  # the scan saw the keys' records
    shown = "\n".join(
        [
            *(process.log_text() for process in [*stack.apis, *stack.workers]),
            *(scrape(f"{u}/metrics", admin_secret)[0] for u in stack.api_urls),
        ]
    )
    for value in (secret, admin_secret, SERVER_SECRET):
        assert value.encode() not in stored
        assert value not in shown


# --- account budgets -------------------------------------------------------------------------


def test_an_account_over_its_monthly_budget_cools_until_the_month_turns_and_another_answers(
    make_stack: StackFactory, upstream: FakeUpstream, sdk_clients: SdkClients
) -> None:
    fleet_stack = make_stack(workers=0, wait_ready=False)
    fleet_stack.add_worker(CCFLEET_ACCOUNT="thrifty", CCFLEET_ACCOUNT_MONTHLY_USD="0.01")
    fleet_stack.wait_ready()
    client = sdk_clients.anthropic_client(fleet_stack.url, "unused")  # auth is off in this stack
    upstream.enqueue(billed_reply())
    client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)

    def thrifty() -> dict[str, Any]:
        fleet = loopback.get(f"{fleet_stack.url}/v1/fleet", timeout=10).json()
        return next(a for a in fleet["accounts"] if a["name"] == "thrifty")

    wait_until(lambda: thrifty()["cooling"], 20, "the account over its budget to cool")
    account = thrifty()
    assert account["reason"] == "monthly budget"
    assert account["cooling_until"] == next_month_start(time.time())
    assert account["month_usd"] == pytest.approx(BILLED_USD)
    assert account["monthly_usd"] == 0.01

    fleet_stack.add_worker(CCFLEET_ACCOUNT="spare")
    wait_until(
        lambda: len(loopback.get(f"{fleet_stack.url}/v1/fleet", timeout=10).json()["workers"]) == 2,
        20,
        "the spare account's worker",
    )
    answer = client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert answer.content[0].type == "text"

    def requests_by_account() -> dict[str, int]:
        reply = loopback.get(f"{fleet_stack.url}/v1/usage", params={"by": "account"}, timeout=10)
        return {row["account"]: row["requests"] for row in reply.json()["data"]}

    wait_until(lambda: len(requests_by_account()) == 2, 20, "the spare account's run booked")
    assert requests_by_account() == {"thrifty": 1, "spare": 1}


# --- ccfleet up ------------------------------------------------------------------------------


def test_up_on_loopback_serves_without_keys_and_its_banner_says_so(
    tmp_path: Path, upstream: FakeUpstream, claude_bin: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "claude-config").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # up's Redis URL file, apart from other tests' `ccfleet up`
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",  # the banner reaches the log at once
        "CCFLEET_CLAUDE_BIN": claude_bin,
        "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
        "ANTHROPIC_BASE_URL": upstream.url,
        "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-test-token",
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"),
    }  # neither CCFLEET_AUTH nor CCFLEET_REDIS_URL: up decides and embeds Redis
    up = ManagedProcess(
        ["up", "--port", url.rsplit(":", 1)[1]], env=env, log_path=tmp_path / "up.log"
    )
    try:
        wait_until(lambda: http_ok(f"{url}/ready"), 30, "ccfleet up to be ready")
        assert "auth OFF (loopback only)" in up.log_text()
        # The embedded Redis wants a password; up leaves its URL for the other commands.
        url_file = Path(env["HOME"]) / ".cache" / "ccfleet" / "up-redis-url"
        assert f'CCFLEET_REDIS_URL="$(cat {url_file})"' in up.log_text()
        assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
        with redis.Redis.from_url(url_file.read_text()) as client:
            assert client.ping()
        assert loopback.get(f"{url}/v1/models", timeout=10).status_code == 200
        assert loopback.get(f"{url}/v1/fleet", timeout=10).status_code == 200
    finally:
        up.stop()
    assert not (Path(env["HOME"]) / ".cache" / "ccfleet" / "up-redis-url").exists()
