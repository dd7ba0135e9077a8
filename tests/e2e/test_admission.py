"""One admission for every path: a client key's quotas hold on a resumed stream, on a client
that leaves inside its resume window, and on each request of a batch; tokens per minute are
a reservation (estimated input plus max_tokens) settled to the real usage.

One stack for the module: Redis, one front end with auth on, one worker (2 slots, one of them
interactive only) running the fake CLI (tests/fakes/fake_cli.py): these tests are about
admission, not the CLI. The fake answers "Hello" at a cost of 1 USD, or, while a test sets
its mode to `stream_forever`, streams until its job is cancelled. Each test uses keys of its
own.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.access.ledger import month_of
from shared.broker import redis_keys
from tests import client_keys, loopback
from tests.conftest import Stack
from tests.fakes import fake_cli
from tests.fakes.upstream import FakeUpstream
from tests.processes import wait_until

SERVER_SECRET = "test-server-secret-" + "0123456789abcdef" * 2
ACCESS_ENV = {
    "CCFLEET_AUTH": "on",
    "CCFLEET_AUTH_SECRET": SERVER_SECRET,
    "CCFLEET_BATCH_CHECK_S": "0.2",
    "CCFLEET_HEARTBEAT_TTL_S": "2",
}
MODEL = "claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "Say hello."}]
COST_USD = 1.0  # what each fake answer costs


class FakeCli:
    """The worker's `claude`: the fake CLI, in the mode written in a file (read per run)."""

    def __init__(self, root: Path) -> None:
        self.mode_file = root / "cli-mode"
        self.mode_file.write_text("answer")
        output = root / "cli-output.jsonl"
        lines = fake_cli.hello_answer()
        lines[-1] = {**lines[-1], "total_cost_usd": COST_USD}
        output.write_text("".join(json.dumps(line) + "\n" for line in lines))
        me = f"{shlex.quote(sys.executable)} {shlex.quote(fake_cli.__file__)}"
        self.path = root / "claude"
        self.path.write_text(
            "#!/bin/sh\n"
            'case "$1" in --version|auth) FAKE_CLI_MODE=answer exec ' + me + ' "$@";; esac\n'
            f'FAKE_CLI_MODE="$(cat {shlex.quote(str(self.mode_file))})" '
            f'FAKE_CLI_OUTPUT={shlex.quote(str(output))} exec {me} "$@"\n'
        )
        self.path.chmod(0o755)

    def set_mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)


@pytest.fixture(scope="module")
def module_cli(tmp_path_factory: pytest.TempPathFactory) -> FakeCli:
    return FakeCli(tmp_path_factory.mktemp("cli"))


@pytest.fixture
def cli(module_cli: FakeCli) -> Iterator[FakeCli]:
    """The module's fake CLI, answering again after each test."""
    yield module_cli
    module_cli.set_mode("answer")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, module_cli: FakeCli
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("admission")
    (root / "claude-config").mkdir()
    with EmbeddedRedis(root / "redis") as server:
        stack = Stack(
            redis=server, upstream=session_upstream, claude_bin=str(module_cli.path), root=root
        )
        try:
            stack.add_worker(**ACCESS_ENV)
            stack.add_api(**ACCESS_ENV)
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


def create_key(stack: Stack, name: str, **limits: Any) -> str:
    return asyncio.run(client_keys.create_key(stack.redis.url, SERVER_SECRET, name, **limits))


def message(max_tokens: int = 64, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": HELLO, **extra}


def post(stack: Stack, secret: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return loopback.post(
        f"{stack.url}/v1/messages", json=body, headers={"x-api-key": secret, **headers}, timeout=30
    )


def first_delta_id(stack: Stack, secret: str, body: dict[str, Any], **headers: str) -> str:
    """Open a stream, read it up to its first text delta, leave; the id of that event."""
    with loopback.stream(
        "POST",
        f"{stack.url}/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": secret, **headers},
        timeout=30,
    ) as reply:
        assert reply.status_code == 200, reply.read()
        event_id = ""
        for line in reply.iter_lines():
            if line.startswith("id:"):
                event_id = line.removeprefix("id:").strip()
            if line.startswith("data:") and '"content_block_delta"' in line:
                return event_id
    raise AssertionError("the stream ended before its first delta")


# The casts below: redis-py 5 types each command's reply as sync-or-async.
def in_flight(stack: Stack, key: str) -> int:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return cast(int, client.zcard(redis_keys.quota_in_flight(key)))
    finally:
        client.close()


def reserved(stack: Stack, key: str) -> list[str]:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        members = cast(list[bytes], client.zrange(redis_keys.quota_tokens(key), 0, -1))
    finally:
        client.close()
    return [m.decode() for m in members if m.startswith(b"reserved:")]


def month_spend(stack: Stack, key: str) -> float:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        spent = cast(
            bytes | None, client.get(redis_keys.month_spend("key", key, month_of(time.time())))
        )
    finally:
        client.close()
    return float(spent or 0)


def limit_message(reply: httpx.Response) -> str:
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"]["type"] == "rate_limit_error"
    return str(reply.json()["error"]["message"])


def test_a_client_leaving_inside_its_resume_window_keeps_its_concurrency_lease_until_the_job_ends(
    stack: Stack, cli: FakeCli
) -> None:
    secret = create_key(stack, "one-detached", concurrency=1)
    cli.set_mode("stream_forever")
    body = message()
    event_id = first_delta_id(stack, secret, body, **{"x-ccfleet-resume-window": "60"})

    refused = post(stack, secret, {**body, "stream": True}, **{"x-ccfleet-resume-window": "60"})
    assert "concurrent requests" in limit_message(refused)

    # Resuming starts no job: the lease it holds is enough. Leaving without a window ends it.
    with loopback.stream(
        "POST",
        f"{stack.url}/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": secret, "last-event-id": event_id},
        timeout=30,
    ) as resumed:
        assert resumed.status_code == 200
    wait_until(lambda: in_flight(stack, "one-detached") == 0, 20, "the cancelled job's lease ended")
    cli.set_mode("answer")
    assert post(stack, secret, body).status_code == 200


def readers(stack: Stack, job_id: str) -> int:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        return int(cast(bytes | None, client.get(redis_keys.job_readers(job_id))) or 0)
    finally:
        client.close()


def test_a_lease_stays_with_a_job_that_a_resumed_stream_still_reads_when_the_first_leaves(
    stack: Stack, cli: FakeCli
) -> None:
    secret = create_key(stack, "one-resumed", concurrency=1)
    cli.set_mode("stream_forever")
    body = {**message(), "stream": True}
    url = f"{stack.url}/v1/messages"
    with httpx.Client(timeout=30) as client:
        first = client.send(
            client.build_request("POST", url, json=body, headers={"x-api-key": secret}),
            stream=True,
        )
        lines = first.iter_lines()
        event_id = next(line for line in lines if line.startswith("id:")).removeprefix("id:")
        event_id = event_id.strip()
        resumed = client.send(
            client.build_request(
                "POST", url, json=body, headers={"x-api-key": secret, "last-event-id": event_id}
            ),
            stream=True,
        )
        assert resumed.status_code == 200
        job_id = event_id.split(":")[0]
        first.close()
        wait_until(lambda: readers(stack, job_id) == 1, 20, "the first client's relay closed")

        with client.stream("POST", url, json=body, headers={"x-api-key": secret}) as third:
            assert third.status_code == 429, "a second job was admitted"  # it would never end
            third.read()
            assert "concurrent requests" in limit_message(third)

        resumed.close()  # no window: the job is cancelled, and its lease ends with it
    wait_until(lambda: in_flight(stack, "one-resumed") == 0, 20, "the cancelled job's lease ended")


def test_a_request_that_cannot_fit_its_tokens_per_minute_is_refused_with_retry_after(
    stack: Stack,
) -> None:
    secret = create_key(stack, "tpm-one", tpm=1)
    refused = post(stack, secret, message(max_tokens=128_000))
    assert "tokens per minute" in limit_message(refused)
    assert float(refused.headers["retry-after"]) > 0


def test_the_openai_route_reserves_tokens_per_minute_the_same_way(stack: Stack) -> None:
    secret = create_key(stack, "tpm-one-openai", tpm=1)
    refused = loopback.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": MODEL, "max_tokens": 128_000, "messages": HELLO},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "tokens per minute" in refused.json()["error"]["message"]
    assert float(refused.headers["retry-after"]) > 0


def test_a_tokens_reservation_settles_to_the_real_usage_when_its_job_ends(stack: Stack) -> None:
    secret = create_key(stack, "tpm-3000", tpm=3000)
    body = message(max_tokens=2000)  # reserves about 2010 of 3000 tokens
    for _ in range(3):  # each used a few tokens only: three fit in the minute
        assert post(stack, secret, body).status_code == 200
        wait_until(lambda: not reserved(stack, "tpm-3000"), 20, "the reservation settled")


def test_a_second_request_is_refused_while_the_first_holds_its_tokens_reservation(
    stack: Stack, cli: FakeCli
) -> None:
    secret = create_key(stack, "tpm-held", tpm=3000)
    cli.set_mode("stream_forever")
    body = message(max_tokens=2000)
    first_delta_id(stack, secret, body, **{"x-ccfleet-resume-window": "2"})
    refused = post(stack, secret, body)
    assert "tokens per minute" in limit_message(refused)
    assert float(refused.headers["retry-after"]) > 0


def test_a_resumed_stream_passes_the_keys_requests_per_minute(stack: Stack, cli: FakeCli) -> None:
    secret = create_key(stack, "rpm-resume", rpm=1)
    cli.set_mode("stream_forever")
    body = message()
    event_id = first_delta_id(stack, secret, body, **{"x-ccfleet-resume-window": "2"})
    refused = post(stack, secret, {**body, "stream": True}, **{"last-event-id": event_id})
    assert "requests per minute" in limit_message(refused)


def batch_of(count: int, prefix: str) -> dict[str, Any]:
    return {"requests": [{"custom_id": f"{prefix}{i}", "params": message()} for i in range(count)]}


def create_batch(stack: Stack, secret: str, count: int, prefix: str) -> httpx.Response:
    return loopback.post(
        f"{stack.url}/v1/messages/batches",
        json=batch_of(count, prefix),
        headers={"x-api-key": secret},
        timeout=30,
    )


def batch_counts(stack: Stack, secret: str, batch_id: str) -> dict[str, int]:
    reply = loopback.get(
        f"{stack.url}/v1/messages/batches/{batch_id}", headers={"x-api-key": secret}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    counts: dict[str, int] = reply.json()["request_counts"]
    return counts


def ended_results(stack: Stack, secret: str, batch_id: str) -> list[dict[str, Any]]:
    """The batch's result lines, once nothing of it is processing."""
    wait_until(
        lambda: batch_counts(stack, secret, batch_id)["processing"] == 0, 30, "the batch ended"
    )
    results = loopback.get(
        f"{stack.url}/v1/messages/batches/{batch_id}/results",
        headers={"x-api-key": secret},
        timeout=10,
    )
    return [json.loads(line) for line in results.text.splitlines()]


def test_batch_requests_wait_for_their_keys_requests_per_minute(stack: Stack) -> None:
    secret = create_key(stack, "rpm-two-batch", rpm=2)
    assert post(stack, secret, message()).status_code == 200  # one of two spent
    created = create_batch(stack, secret, 3, "w")
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    wait_until(lambda: batch_counts(stack, secret, batch_id)["succeeded"] == 1, 20, "one ran")
    time.sleep(2)  # ten feeder ticks: the other two would have run by now
    counts = batch_counts(stack, secret, batch_id)
    loopback.post(
        f"{stack.url}/v1/messages/batches/{batch_id}/cancel",
        headers={"x-api-key": secret},
        timeout=10,
    )  # the lane is free for the other tests' batches
    assert counts["succeeded"] == 1 and counts["processing"] == 2, counts


def test_a_batch_request_that_alone_exceeds_its_keys_tokens_per_minute_ends_errored(
    stack: Stack,
) -> None:
    secret = create_key(stack, "tpm-batch", tpm=1000)
    requests = [
        {"custom_id": "small", "params": message(max_tokens=64)},
        {"custom_id": "huge", "params": message(max_tokens=128_000)},
    ]
    created = loopback.post(
        f"{stack.url}/v1/messages/batches",
        json={"requests": requests},
        headers={"x-api-key": secret},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    by_id = {line["custom_id"]: line["result"] for line in ended_results(stack, secret, batch_id)}
    assert by_id["small"]["type"] == "succeeded"
    assert by_id["huge"]["type"] == "errored"
    assert "tokens per minute" in by_id["huge"]["error"]["error"]["message"]


def revoke_and_recreate(stack: Stack, name: str, **limits: Any) -> str:
    """`ccfleet keys revoke NAME` then `keys create NAME`: a new key under the old name."""
    asyncio.run(client_keys.revoke_key(stack.redis.url, SERVER_SECRET, name))
    return create_key(stack, name, **limits)


def test_waiting_batch_requests_of_a_revoked_key_end_errored_though_its_name_lives_on(
    stack: Stack,
) -> None:
    secret = create_key(stack, "reborn", rpm=1)
    assert post(stack, secret, message()).status_code == 200  # its one request a minute spent
    created = create_batch(stack, secret, 2, "r")
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    new_secret = revoke_and_recreate(stack, "reborn", rpm=1)
    admin = create_key(stack, "reborn-admin", admin=True)
    # Waiting on the name's minute, they would run under the new key once it passed.
    wait_until(lambda: batch_counts(stack, admin, batch_id)["processing"] == 0, 30, "they ended")
    assert batch_counts(stack, admin, batch_id)["errored"] == 2
    listed = loopback.get(
        f"{stack.url}/v1/messages/batches", headers={"x-api-key": new_secret}, timeout=10
    )
    assert batch_id not in [batch["id"] for batch in listed.json()["data"]]


def test_creating_a_batch_with_a_spent_monthly_budget_is_refused_at_once(stack: Stack) -> None:
    secret = create_key(stack, "spent-batch", monthly_usd=0.5)
    assert post(stack, secret, message()).status_code == 200
    wait_until(lambda: month_spend(stack, "spent-batch") >= 0.5, 20, "the spend booked")
    assert "monthly budget" in limit_message(post(stack, secret, message()))
    assert "monthly budget" in limit_message(create_batch(stack, secret, 4, "b"))


def test_batch_requests_after_the_monthly_budget_is_spent_end_errored_saying_so(
    stack: Stack,
) -> None:
    secret = create_key(stack, "budget-batch", monthly_usd=0.5)
    created = create_batch(stack, secret, 4, "e")
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    lines = [line["result"] for line in ended_results(stack, secret, batch_id)]
    errored = [r for r in lines if r["type"] == "errored"]
    # The one that ran first spent the budget; at most the one queued meanwhile ran too.
    assert len(lines) == 4 and len(errored) >= 2, lines
    assert all("monthly budget" in r["error"]["error"]["message"] for r in errored), errored


@pytest.fixture
def spent_fleet(
    tmp_path: Path, session_upstream: FakeUpstream, module_cli: FakeCli
) -> Iterator[Stack]:
    """A fleet (auth off) whose one account has a budget of 0.5 USD: its first answer spends it."""
    (tmp_path / "claude-config").mkdir()
    with EmbeddedRedis(tmp_path / "redis") as server:
        stack = Stack(
            redis=server, upstream=session_upstream, claude_bin=str(module_cli.path), root=tmp_path
        )
        env = {**ACCESS_ENV, "CCFLEET_AUTH": "off", "CCFLEET_ACCOUNT_MONTHLY_USD": "0.5"}
        try:
            stack.add_worker(**env)
            stack.add_api(**env)
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


def test_once_every_account_spent_its_budget_waiting_batch_requests_end_errored_saying_so(
    spent_fleet: Stack,
) -> None:
    stack = spent_fleet
    created = create_batch(stack, "", 4, "a")
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    wait_until(lambda: batch_counts(stack, "", batch_id)["processing"] == 0, 30, "the batch ended")
    counts = batch_counts(stack, "", batch_id)
    # The first spent the account's budget (at most the one queued meanwhile ran too); the
    # others could not run before the month turns.
    assert counts["succeeded"] <= 2 and counts["errored"] == 4 - counts["succeeded"], counts
    assert "monthly budget" in limit_message(create_batch(stack, "", 1, "b"))
