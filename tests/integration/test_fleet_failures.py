"""The fleet while its parts fail: workers killed or drained, front ends stopped, Redis
restarted, clients reconnecting to another front end. Real processes, the real CLI against
the fake upstream, a real Redis (with AOF persistence here, so it can be restarted whole).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest
import redis
from anthropic.types import MessageParam

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.fakes.upstream import DelayedReply, RecordedRequest, TextReply
from tests.processes import ManagedProcess, http_ok, wait_until

MODEL = "claude-sonnet-5-5"
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]
CHUNK_CHARS = 8
STREAM_TIMEOUT = httpx.Timeout(30.0, read=5.0)  # pings come every second (fixture env)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """Every stack of this module runs on a Redis with an append-only file, on a fixed port,
    so `stack.redis.stop()` / `.kill()` then `.start()` brings back the same data."""
    with EmbeddedRedis(tmp_path / "redis", persist=True) as server:
        yield server


# -- helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str = ""

    @property
    def seq(self) -> int:
        """The chunk number of an event id `<job_id>:<seq>`."""
        return int(self.id.rpartition(":")[2])

    @property
    def job_id(self) -> str:
        return self.id.rpartition(":")[0]


def sse_events(response: httpx.Response) -> Iterator[SseEvent]:
    """The events of a raw SSE response, as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "event" in fields or "data" in fields:
            data = orjson.loads(fields.get("data") or "{}")
            yield SseEvent(fields.get("event", "message"), data, fields.get("id", ""))
        fields = {}


@dataclass
class StreamRead:
    """What a client read from a stream, and how it ended."""

    events: list[SseEvent]
    broken_by: Exception | None = None  # a transport error that ended the stream
    timed_out: bool = False

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def text(self) -> str:
        return text_of(self.events)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e.data["error"] for e in self.events if e.event == "error"]


def read_stream(
    events: Iterator[SseEvent], *, until: Callable[[SseEvent], bool], timeout_s: float
) -> StreamRead:
    """Events up to and including the first matching `until`, the stream's end, a transport
    error, or `timeout_s` (checked at every event: the server pings every second)."""
    read = StreamRead([])
    deadline = time.monotonic() + timeout_s
    try:
        for event in events:
            read.events.append(event)
            if until(event):
                return read
            if time.monotonic() > deadline:
                read.timed_out = True
                return read
    except httpx.HTTPError as exc:
        read.broken_by = exc
    return read


def text_of(events: list[SseEvent]) -> str:
    return "".join(
        e.data["delta"]["text"]
        for e in events
        if e.event == "content_block_delta" and e.data["delta"]["type"] == "text_delta"
    )


def text_deltas(count: int) -> Callable[[SseEvent], bool]:
    """`until` for read_stream: stop at the `count`-th text delta."""
    seen = [0]

    def reached(event: SseEvent) -> bool:
        seen[0] += event.event == "content_block_delta"
        return seen[0] >= count

    return reached


def ended(event: SseEvent) -> bool:
    return event.event in ("message_stop", "error")


def slow_text(seconds: float, pieces: int = 24) -> TextReply:
    """A text streamed upstream in `pieces` chunks spread over about `seconds`."""
    text = "".join(f"part{i:03d} " for i in range(pieces))  # 8 characters a piece
    return TextReply(text, chunk_chars=CHUNK_CHARS, delay_s=seconds / pieces)


def body(*, stream: bool, max_tokens: int = 1000) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": HELLO, "stream": stream}


def sdk(url: str, timeout_s: float = 30.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0, timeout=timeout_s)


def ask(url: str, timeout_s: float = 30.0) -> str:
    """A non-streaming request through the SDK; the reply's text."""
    with sdk(url, timeout_s) as client:  # closed here: a dropped client's socket warns later
        message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    return "".join(block.text for block in message.content if block.type == "text")


def messages_requests(stack: Stack) -> list[RecordedRequest]:
    """What the CLIs sent the fake upstream's Messages endpoint."""
    return [r for r in list(stack.upstream.requests) if r.path == "/v1/messages"]


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def worker_running_the_cli(stack: Stack) -> ManagedProcess:
    """The one worker process that is the parent of a running CLI."""
    found: list[ManagedProcess] = []

    def one_found() -> bool:
        parents = set()
        for pid in stack.clis():
            with contextlib.suppress(OSError):
                parents.add(parent_pid(pid))
        found[:] = [w for w in stack.workers if w.pid in parents]
        return len(found) == 1

    wait_until(one_found, 5, "exactly one worker running a CLI")
    return found[0]


def worker_states(url: str) -> list[str]:
    response = loopback.get(f"{url}/v1/fleet", timeout=5)
    return [w["state"] for w in response.json()["workers"]] if response.is_success else []


def journal_length(stack: Stack, job_id: str) -> int:
    with redis.Redis.from_url(stack.redis.url) as client:
        return int(client.xlen(redis_keys.job_journal(job_id)))


def no_cli_left(stack: Stack) -> bool:
    return not stack.clis()


# -- a worker dies ----------------------------------------------------------------------------


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error_within_15_seconds(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=2)
    stack.upstream.enqueue(slow_text(20, pieces=80))
    with loopback.stream(
        "POST", f"{stack.url}/v1/messages", json=body(stream=True), timeout=STREAM_TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
        before = read_stream(events, until=text_deltas(2), timeout_s=15)
        assert before.text and not before.errors, before.names
        worker_running_the_cli(stack).signal(signal.SIGKILL)
        killed_at = time.monotonic()
        after = read_stream(events, until=ended, timeout_s=20)
        waited_s = time.monotonic() - killed_at
    print(f"event: error {waited_s:.2f}s after the worker was killed")
    assert after.names[-1:] == ["error"], (after.names, after.broken_by, stack.logs())
    assert after.errors[0]["type"] == "api_error"
    assert "stopped mid-answer" in after.errors[0]["message"]
    assert waited_s < 15
    assert "message_stop" not in after.names
    wait_until(lambda: no_cli_left(stack), 5, "the dead worker's CLI to be gone")


def test_a_job_whose_worker_died_before_answering_runs_on_another_worker(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=2, CCFLEET_HEARTBEAT_TTL_S="3")
    stack.upstream.enqueue(
        DelayedReply(5, TextReply("late but whole")), TextReply("Answered by the other worker.")
    )
    with ThreadPoolExecutor(1) as pool:
        reply: Future[str] = pool.submit(ask, stack.url)
        wait_until(lambda: len(messages_requests(stack)) == 1, 15, "the CLI's upstream request")
        victim = worker_running_the_cli(stack)
        victim.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        text = reply.result(timeout=30)
    print(f"answered {time.monotonic() - killed_at:.2f}s after the worker was killed")
    assert text == "Answered by the other worker."
    requests = messages_requests(stack)
    assert len(requests) == 2
    assert requests[0].disconnected, "the dead worker's CLI went away without its answer"
    assert victim.proc.poll() is not None
    wait_until(lambda: no_cli_left(stack), 5, "no CLI left")


# -- Redis restarts ----------------------------------------------------------------------------


def test_a_redis_outage_past_the_grace_ends_requests_in_flight_with_an_error_and_later_succeed(
    make_stack: StackFactory,
) -> None:
    # A grace of 1 s, not the default 5 s: the outage is past it all the same, 4 s sooner.
    stack = make_stack(workers=1, CCFLEET_REDIS_OUTAGE_GRACE_S="1")
    stack.upstream.enqueue(slow_text(20, pieces=80))
    with loopback.stream(
        "POST", f"{stack.url}/v1/messages", json=body(stream=True), timeout=STREAM_TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
        before = read_stream(events, until=text_deltas(2), timeout_s=15)
        assert before.text and not before.errors, before.names
        stack.redis.kill()
        killed_at = time.monotonic()
        after = read_stream(events, until=ended, timeout_s=20)
        waited_s = time.monotonic() - killed_at
    print(f"stream ended {waited_s:.2f}s after Redis died: {after.names[-1:]} {after.broken_by!r}")
    assert not after.timed_out, after.names
    assert after.names[-1:] == ["error"], (after.names, after.broken_by, stack.logs())
    assert after.errors[0]["type"] == "overloaded_error"
    assert waited_s < 10
    assert "message_stop" not in after.names
    wait_until(lambda: no_cli_left(stack), 5, "the CLI of the broken job to be gone")

    stack.redis.start()
    restarted_at = time.monotonic()
    answers: list[str] = []

    def answered() -> bool:
        with contextlib.suppress(anthropic.APIError):
            answers.append(ask(stack.url, timeout_s=10))
        return bool(answers)

    wait_until(answered, 20, "a request to succeed after Redis came back")
    print(f"first success {time.monotonic() - restarted_at:.2f}s after Redis came back")
    assert answers == ["Hello from the fake upstream."]
    assert all(p.proc.poll() is None for p in [*stack.apis, *stack.workers]), "nothing restarted"


def test_a_job_queued_while_no_worker_runs_survives_a_redis_restart(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "/health")
    stack.upstream.enqueue(TextReply("Kept through the restart."))
    waiting = redis.Redis.from_url(stack.redis.url)
    try:
        with ThreadPoolExecutor(1) as pool:
            reply: Future[str] = pool.submit(ask, stack.url, 60)
            wait_until(
                lambda: waiting.zcard(redis_keys.lane_waiting("interactive")) == 1,
                10,
                "a queued job",
            )
            stack.redis.stop()
            wait_until(
                lambda: "redis unavailable (" in stack.apis[0].log_text(),
                10,
                "the waiting relay to find Redis gone (at its next journal check)",
            )
            stack.redis.start()
            stack.add_worker()
            text = reply.result(timeout=45)
    finally:
        waiting.close()
    assert text == "Kept through the restart."
    assert len(messages_requests(stack)) == 1


# -- graceful stops -------------------------------------------------------------------------


def test_sigterm_drains_a_worker_without_cutting_its_stream(make_stack: StackFactory) -> None:
    stack = make_stack(workers=1, CCFLEET_WORKER_DRAIN_S="30")
    reply = slow_text(3)
    stack.upstream.enqueue(reply)
    worker = stack.workers[0]
    with loopback.stream(
        "POST", f"{stack.url}/v1/messages", json=body(stream=True), timeout=STREAM_TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
        before = read_stream(events, until=text_deltas(1), timeout_s=15)
        worker.signal(signal.SIGTERM)
        wait_until(lambda: worker_states(stack.url) == ["draining"], 3, "the worker to drain")
        after = read_stream(events, until=ended, timeout_s=20)
    assert after.names[-1:] == ["message_stop"], (after.names, after.broken_by, stack.logs())
    assert before.text + after.text == reply.text
    assert worker.proc.wait(timeout=10) == 0, worker.log_text()[-3000:]
    assert no_cli_left(stack)


def test_sigterm_lets_a_front_end_finish_its_streams(make_stack: StackFactory) -> None:
    stack = make_stack(workers=1, apis=2)
    reply = slow_text(3)
    stack.upstream.enqueue(reply)
    api0 = stack.apis[0]
    with loopback.stream(
        "POST", f"{stack.api_urls[0]}/v1/messages", json=body(stream=True), timeout=STREAM_TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_events(response)
        before = read_stream(events, until=text_deltas(1), timeout_s=15)
        api0.signal(signal.SIGTERM)
        after = read_stream(events, until=ended, timeout_s=20)
    assert after.names[-1:] == ["message_stop"], (after.names, after.broken_by, stack.logs())
    assert before.text + after.text == reply.text
    # uvicorn re-raises the signal it handled once it has shut down: -SIGTERM, not a crash.
    assert api0.proc.wait(timeout=10) == -signal.SIGTERM, api0.log_text()[-3000:]
    assert "Finished server process" in api0.log_text()
    assert ask(stack.api_urls[1]) == "Hello from the fake upstream."


# -- resuming a stream -------------------------------------------------------------------------


def test_last_event_id_resumes_a_stream_on_another_front_end_with_nothing_missing_or_repeated(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=1, apis=2)
    reply = slow_text(3)
    stack.upstream.enqueue(reply)
    with loopback.stream(
        "POST",
        f"{stack.api_urls[0]}/v1/messages",
        json=body(stream=True),
        headers={"x-ccfleet-resume-window": "30"},
        timeout=STREAM_TIMEOUT,
    ) as response:
        assert response.status_code == 200, response.read()
        first = read_stream(sse_events(response), until=text_deltas(3), timeout_s=15).events
    first = [e for e in first if e.id]  # pings carry no id
    job_id = first[-1].job_id
    wait_until(
        lambda: journal_length(stack, job_id) >= first[-1].seq + 5,
        10,
        "the job to go on while no client listens",
    )
    with loopback.stream(
        "POST",
        f"{stack.api_urls[1]}/v1/messages",
        json=body(stream=True),
        headers={"last-event-id": first[-1].id},
        timeout=STREAM_TIMEOUT,
    ) as response:
        assert response.status_code == 200, response.read()
        second = read_stream(sse_events(response), until=ended, timeout_s=20)
    assert second.names[-1:] == ["message_stop"], (second.names, second.broken_by)
    chunks = first + [e for e in second.events if e.id]
    assert {e.job_id for e in chunks} == {job_id}
    assert [e.seq for e in chunks] == list(range(1, len(chunks) + 1))
    assert text_of(chunks) == reply.text
    assert [e.event for e in chunks].count("message_start") == 1
    assert len(messages_requests(stack)) == 1


def test_resuming_a_stream_whose_client_left_without_a_resume_window_is_an_error(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=1, apis=2)
    stack.upstream.enqueue(slow_text(10, pieces=40))
    with loopback.stream(
        "POST", f"{stack.api_urls[0]}/v1/messages", json=body(stream=True), timeout=STREAM_TIMEOUT
    ) as response:
        first = read_stream(sse_events(response), until=text_deltas(2), timeout_s=15).events
    last_id = [e.id for e in first if e.id][-1]
    wait_until(lambda: no_cli_left(stack), 5, "the job to be cancelled")
    started = time.monotonic()
    with loopback.stream(
        "POST",
        f"{stack.api_urls[1]}/v1/messages",
        json=body(stream=True),
        headers={"last-event-id": last_id},
        timeout=STREAM_TIMEOUT,
    ) as response:
        if response.status_code == 200:
            resumed = read_stream(sse_events(response), until=ended, timeout_s=15)
            assert not resumed.timed_out, resumed.names
            assert resumed.names[-1:] == ["error"], (resumed.names, resumed.broken_by)
            assert "message_stop" not in resumed.names
        else:
            error = orjson.loads(response.read())
            assert response.status_code in (404, 500), error
            assert error["type"] == "error"
    print(f"resume refused after {time.monotonic() - started:.2f}s ({response.status_code})")
    assert len(messages_requests(stack)) == 1
