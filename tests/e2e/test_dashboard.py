"""GET /dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

The stack is real (Redis, a worker with the real CLI, two front ends). The second worker and
the cooldown are written as workers write them (the worker's own heartbeat loop, the fleet's
cooldown function), where running a second real CLI would add nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest
from anthropic.types import MessageParam
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from pydantic import SecretStr
from redis.asyncio import Redis

from shared.access.client_keys import KeyLimits, KeyStore
from shared.batches.store import BatchStore, NewBatch, StoredRequest
from shared.batches.wire import errored, new_batch_id, succeeded
from shared.fleet.headroom import UsageWindow, mark_slow, record_windows
from shared.fleet.registry import set_account_cooling
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.fakes.upstream import MidStreamErrorReply, TextReply
from tests.processes import http_ok, wait_until
from worker.context import WorkerState
from worker.heartbeat import beat_forever

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the suite runs as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LIVE_S = 3.0  # what "live" means here: a change in Redis is on the page within 3 s
MODEL = "claude-sonnet-4-5"
TIME_PATTERN = re.compile(r"^\d+(\.\d+)? m?s$")  # "468 ms", "1.20 s"
AUTH_SECRET = "dashboard-test-secret-" + "0123456789abcdef" * 2
# How chromium logs a fetch answered 401/403: expected while the page asks for a key.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 40[13]")
SPENT_PATTERN = re.compile(r"^\$(?!0\.0+$)\d+\.\d+$")  # "$0.01", "$0.000036", not "$0.00"


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("No chromium: run the suite with tests/run.sh, which installs it.")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def two_front_ends(make_stack: StackFactory) -> Stack:
    # Streams of 2 s: the page goes through several reconnects during the test.
    return make_stack(workers=1, apis=2, CCFLEET_DASHBOARD_STREAM_S="2")


@pytest.fixture
def lone_front_end(make_stack: StackFactory) -> Stack:
    """A front end without workers: nothing runs a batch's requests but the test."""
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    return stack


@contextlib.asynccontextmanager
async def beating_worker(redis: Redis, state: WorkerState) -> AsyncIterator[None]:
    """A worker's heartbeat loop (the worker's own code), owned by the test."""
    task = asyncio.create_task(beat_forever(redis, state, interval_s=0.5, ttl_s=10))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def script_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    return errors


async def test_the_dashboard_follows_the_fleet_live_without_reloading(
    two_front_ends: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = two_front_ends
    page = await browser.new_page(viewport={"width": 1280, "height": 700})
    errors = script_errors(page)
    redis = Redis.from_url(stack.redis.url)
    try:
        await page.goto(f"{stack.api_urls[1]}/dashboard")
        real_worker = page.locator("#workers tr[data-worker-id]")
        await expect(real_worker).to_have_count(1, timeout=LIVE_S * 1000)
        await expect(real_worker).to_contain_text("default")
        # The version the real CLI under test reports (the pin, or the one being vetted).
        reported = await asyncio.to_thread(
            subprocess.run,
            [stack.claude_bin, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        version = reported.stdout.split(" ")[0]
        await expect(real_worker).to_contain_text(version)
        await page.evaluate("window.sameDocument = true")

        second = WorkerState(
            worker_id="w-second",
            host="host-b",
            account="second",
            slots=3,
            busy=1,
            cli_version="2.1.328",
            last_error="upstream 529 overloaded_error",
            monthly_usd=50.0,
        )
        broken = WorkerState(
            worker_id="w-broken",
            host="host-c",
            account="second",
            slots=2,
            cli_version="2.1.328",
            broken_reason="claude auth status: not logged in",
        )
        async with beating_worker(redis, second), beating_worker(redis, broken):
            await expect(page.locator('[data-worker-id="w-second"]')).to_be_visible(
                timeout=LIVE_S * 1000
            )
            broken_row = page.locator('[data-worker-id="w-broken"]')
            await expect(broken_row.locator(".state")).to_have_text("broken")
            await expect(broken_row).to_contain_text("not logged in")
            await expect(page.locator('[data-account="second"] .spend')).to_have_text(
                "$0.00 of $50.00"
            )

            # Each usage window as a worker records it from the CLI's rate_limit_event.
            five_hour = UsageWindow(
                name="five_hour", utilization=0.87, resets_at=time.time() + 7200, status="allowed"
            )
            await record_windows(redis, "second", [five_hour])
            await mark_slow(redis, "second", now_s=time.time())
            window = page.locator('[data-account="second"] .window[data-window="five_hour"]')
            await expect(window).to_contain_text("87 %", timeout=LIVE_S * 1000)
            await expect(window).to_contain_text("resets")
            await expect(window.locator('[role="progressbar"]')).to_have_attribute(
                "aria-valuenow", "87"
            )
            await expect(page.locator('[data-account="second"] .slow')).to_have_text("slow")

            await set_account_cooling(redis, "second", until_s=time.time() + 1800, reason="limit")
            await expect(page.locator('[data-account="second"] .state')).to_contain_text(
                "cooling until", timeout=LIVE_S * 1000
            )
            await expect(page.locator('[data-worker-id="w-second"] .state')).to_have_text("cooling")
            await expect(page.locator('[data-account="default"] .state')).to_have_text("ready")

            await requests_through(stack.api_urls[0], stack)
            minute = page.locator('#requests tr[data-window="60"]')
            await expect(minute.locator(".requests")).to_have_text("2", timeout=LIVE_S * 1000)
            await expect(minute).to_contain_text("50.0 %")  # the mid-stream error
            await expect(minute.locator(".ttft-p50")).to_have_text(TIME_PATTERN)
            # The worker books what the CLI reported the answer cost (the fake upstream bills).
            await expect(page.locator('[data-account="default"] .spend')).to_have_text(
                SPENT_PATTERN, timeout=LIVE_S * 1000
            )

            assert await page.evaluate("window.sameDocument === true"), "the page was reloaded"
            await page.screenshot(path=str(screenshot_path(tmp_path)), full_page=True)
        assert errors == []
    finally:
        await page.close()
        await redis.aclose()


async def requests_through(url: str, stack: Stack) -> None:
    """One answer, and one that fails after its 200 (an error event mid-stream)."""
    billed = TextReply("Hello.", input_tokens=1000, output_tokens=500)  # about $0.01
    stack.upstream.enqueue(billed, MidStreamErrorReply())
    client = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
    message: MessageParam = {"role": "user", "content": "Hi"}
    answer = await client.messages.create(model=MODEL, max_tokens=50, messages=[message])
    assert answer.content[0].type == "text"
    with pytest.raises(anthropic.APIStatusError):
        async with client.messages.stream(model=MODEL, max_tokens=50, messages=[message]) as s:
            async for _ in s:
                pass
    await client.close()


def screenshot_path(tmp_path: Path) -> Path:
    """docs/dashboard.png is made with CCFLEET_TEST_DASHBOARD_SCREENSHOT=docs/dashboard.png."""
    return Path(os.environ.get("CCFLEET_TEST_DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")


def dashboard_events(url: str) -> list[tuple[str, str]]:
    """(event, data) of one whole GET /dashboard/events stream."""
    events: list[tuple[str, str]] = []
    with loopback.stream("GET", f"{url}/dashboard/events", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = line.removeprefix("data:").strip()
            elif line == "" and data:
                events.append((name, data))
                name, data = "message", ""
    return events


def test_a_dashboard_stream_ends_after_its_lifetime_so_a_draining_front_end_can_exit(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(
        workers=0,
        wait_ready=False,
        CCFLEET_DASHBOARD_INTERVAL_S="0.2",
        CCFLEET_DASHBOARD_STREAM_S="1",
        CCFLEET_DRAIN_TIMEOUT_S="120",
    )
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")

    events = dashboard_events(stack.url)

    assert len(events) >= 2
    assert {name for name, _ in events} == {"snapshot"}
    assert json.loads(events[-1][1])["workers"] == []

    with loopback.stream("GET", f"{stack.url}/dashboard/events", timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("event: snapshot")  # the dashboard is open
        stack.apis[0].signal(signal.SIGTERM)
        stack.apis[0].proc.wait(timeout=30)  # far less than the 120 s drain it may take


def test_a_dashboard_stream_says_so_when_redis_does_not_answer(lone_front_end: Stack) -> None:
    stack = lone_front_end
    stack.redis.kill()

    events = dashboard_events(stack.url)

    assert [name for name, _ in events] == ["error"]
    assert json.loads(events[0][1])["error"]["type"] == "overloaded_error"


@pytest.fixture
def keyed_front_end(make_stack: StackFactory) -> Stack:
    stack = make_stack(
        workers=0, wait_ready=False, CCFLEET_AUTH="on", CCFLEET_AUTH_SECRET=AUTH_SECRET
    )
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    return stack


async def test_with_client_keys_the_page_asks_once_for_an_admin_key_and_keeps_it_for_the_tab(
    keyed_front_end: Stack, browser: Browser
) -> None:
    stack = keyed_front_end
    redis = Redis.from_url(stack.redis.url)
    try:
        store = KeyStore(redis, SecretStr(AUTH_SECRET))  # as `ccfleet keys create` makes keys
        _, admin = await store.create("ops", KeyLimits(admin=True))
        _, client = await store.create("app", KeyLimits())
    finally:
        await redis.aclose()
    context = await browser.new_context()
    page = await context.new_page()
    errors = script_errors(page)
    dialog, reason = page.locator("#key-dialog"), page.locator("#key-reason")
    connection = page.locator("#connection")

    await page.goto(f"{stack.url}/dashboard")
    await expect(reason).to_have_text("This fleet needs an admin key.")
    await page.fill("#key-input", client)
    await page.click("#key-form button")
    await expect(reason).to_have_text("That key is not an admin key of this fleet.")
    await page.fill("#key-input", admin)
    await page.click("#key-form button")
    await expect(connection).to_have_attribute("data-state", "live")
    await expect(dialog).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('ccfleet.adminKey')") == admin

    await page.reload()
    await expect(connection).to_have_attribute("data-state", "live")
    await expect(dialog).to_be_hidden()

    other_session = await browser.new_context()
    other_page = await other_session.new_page()
    await other_page.goto(f"{stack.url}/dashboard")
    await expect(other_page.locator("#key-dialog")).to_be_visible()
    await other_session.close()
    await context.close()
    assert [e for e in errors if not REFUSED.search(e)] == []


async def test_a_batch_in_progress_shows_its_progress_move_and_leaves_when_it_ends(
    lone_front_end: Stack, browser: Browser
) -> None:
    page = await browser.new_page()
    errors = script_errors(page)
    redis = Redis.from_url(lone_front_end.redis.url)
    store = BatchStore(redis, retention_s=600)
    try:
        await page.goto(f"{lone_front_end.url}/dashboard")
        await expect(page.locator("#batches")).to_contain_text("no batch in progress")
        now_ms = int(time.time() * 1000)
        batch = NewBatch(new_batch_id(), "", now_ms, now_ms + 86_400_000)
        params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
        await store.create(  # as POST /v1/messages/batches stores it
            batch,
            [
                StoredRequest(i, json.dumps({"custom_id": f"r{i}", "params": params}).encode())
                for i in range(4)
            ],
        )
        row = page.locator(f'[data-batch-id="{batch.id}"]')
        progress = row.locator('[role="progressbar"]')
        await expect(row).to_contain_text("0 / 4", timeout=LIVE_S * 1000)

        # Results recorded as a worker records them.
        message = {"type": "message", "role": "assistant", "content": []}
        await store.record(batch.id, 0, "r0", succeeded(message))
        await expect(progress).to_have_attribute("aria-valuenow", "1", timeout=LIVE_S * 1000)
        await store.record(batch.id, 1, "r1", errored({"type": "api_error", "message": "x"}))
        await expect(progress).to_have_attribute("aria-valuenow", "2", timeout=LIVE_S * 1000)
        await expect(row).to_contain_text("2 / 4")

        for index in (2, 3):
            await store.record(batch.id, index, f"r{index}", succeeded(message))
        await expect(row).to_have_count(0, timeout=LIVE_S * 1000)
        assert errors == []
    finally:
        await page.close()
        await redis.aclose()
