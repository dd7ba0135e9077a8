"""Fixtures: a real Redis server, the fake upstream, and whole ccfleet stacks as processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sse_starlette.sse import AppStatus

from ccfleet.embedded_redis import EmbeddedRedis
from tests.fakes.upstream import FakeUpstream
from tests.processes import ManagedProcess, PortReservations, cli_processes, http_ok, wait_until
from tests.role_forks import shared_role_forks

if TYPE_CHECKING:
    from tests.sdk import SdkClients


def _pinned_cli() -> str | None:
    """Where tests/run.sh installs the pinned CLI (~/.cache/ccfleet/claude-code-<version>)."""
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    version = pyproject["tool"]["ccfleet"]["claude-code-version"]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "ccfleet" / f"claude-code-{version}" / "node_modules" / ".bin" / "claude"
    return str(path) if path.exists() else None


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """The pinned real CLI (tests/run.sh installs it), else one on PATH."""
    path = os.environ.get("CCFLEET_TEST_CLAUDE_BIN") or _pinned_cli() or shutil.which("claude")
    if not path:
        pytest.fail("No claude CLI: run the suite with tests/run.sh, which installs it.")
    return path


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()  # its data ends with the test: no clean shutdown to wait for (~0.1 s)


@pytest.fixture(scope="session")
def session_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(session_upstream: FakeUpstream) -> FakeUpstream:
    """The shared fake upstream, with no script and no recorded requests."""
    session_upstream.reset()
    return session_upstream


@pytest.fixture(autouse=True)
def _sse_app_status() -> Iterator[None]:
    # sse-starlette keeps a process-wide "should exit" flag once a signal was seen.
    AppStatus.should_exit = False
    yield
    AppStatus.should_exit = False


@dataclass
class Stack:
    """A running ccfleet: Redis, front ends and workers as real processes (the roles forked
    from this process's role zygote, tests/role_forks.py)."""

    redis: EmbeddedRedis
    upstream: FakeUpstream
    claude_bin: str
    root: Path
    api_urls: list[str] = field(default_factory=list)
    apis: list[ManagedProcess] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)
    ports: PortReservations = field(default_factory=PortReservations)

    def __post_init__(self) -> None:
        for private in ("claude-config", "home"):  # CLAUDE_CONFIG_DIR and HOME in env()
            (self.root / private).mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return self.api_urls[0]

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            # Its own HOME: `ccfleet up` keeps its Redis URL in ~/.cache/ccfleet, and tests
            # running at the same time must not share (or delete) each other's.
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            "CCFLEET_REDIS_URL": self.redis.url,
            "CCFLEET_CLAUDE_BIN": self.claude_bin,
            "CCFLEET_WORKER_SLOTS": "2",
            "CCFLEET_PING_INTERVAL_S": "1",
            "CCFLEET_HEARTBEAT_INTERVAL_S": "0.5",
            # A job whose upstream keeps failing is tried job_max_attempts times; the default
            # backoff (0.5, 1, 2 s) would add 3.5 s to each such test and is not under test.
            "CCFLEET_RETRY_BACKOFF_S": "0.05",
            # Many tests prove a kill path by finding no CLI process left; ready CLIs would
            # be there by design. Tests of ready CLIs (and of both paths) turn them on.
            "CCFLEET_PREWARM_CLIS": "0",
            # Likewise a CLI that answered stays for the conversation's next turn by design.
            "CCFLEET_RESIDENT_MAX": "0",
            "CCFLEET_LOG_LEVEL": "INFO",
            # Tests of other features run without client keys; tests/e2e/test_access.py turns
            # them on.
            "CCFLEET_AUTH": "off",
            "ANTHROPIC_BASE_URL": self.upstream.url,
            # Like a Max account's `claude setup-token`: OAuth, so the CLI runs as it will in
            # production (not --bare). The fake upstream accepts any token.
            "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-test-token",
            "CLAUDE_CONFIG_DIR": str(self.root / "claude-config"),
            "CCFLEET_WORK_ROOT": str(self.root / "work"),
        }
        env.update(overrides)
        return env

    def add_worker(self, **env: str) -> ManagedProcess:
        index = len(self.workers)
        worker = ManagedProcess(
            ["worker"],
            env=self.env(**env),
            log_path=self.root / f"worker{index}.log",
            forks=shared_role_forks(),
        )
        self.workers.append(worker)
        return worker

    def add_api(self, **env: str) -> ManagedProcess:
        port = self.ports.take()
        index = len(self.apis)
        api = ManagedProcess(
            ["api", "--port", str(port)],
            env=self.env(**env),
            log_path=self.root / f"api{index}.log",
            forks=shared_role_forks(),
        )
        self.apis.append(api)
        self.api_urls.append(f"http://127.0.0.1:{port}")
        return api

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        for url in self.api_urls:
            wait_until(partial(http_ok, f"{url}/ready"), timeout_s, f"{url}/ready")

    def clis(self) -> list[int]:
        """Pids of this stack's CLI processes, orphans included. Other tests (in pytest-xdist's
        other processes, or other sessions on the machine) run the same binary at the same time:
        this stack's CLIs are told apart by their HOME, under the stack's work root."""
        marker = f"HOME={self.root / 'work'}/".encode()
        pids = []
        for pid in cli_processes(self.claude_bin):
            with contextlib.suppress(OSError):
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if any(entry.startswith(marker) for entry in environ):
                    pids.append(pid)
        return pids

    def stop(self) -> None:
        processes = [*self.apis, *self.workers]
        for process in processes:  # all told at once: they stop side by side, not in turn
            process.terminate()
        for process in processes:
            process.stop()
        self.ports.release()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name}\n{p.log_text()[-4000:]}" for p in [*self.apis, *self.workers]
        )


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, upstream: FakeUpstream, claude_bin: str
) -> Iterator[StackFactory]:
    """Build a stack: `make_stack(workers=1, apis=1, wait_ready=True, **env)`; stopped after."""
    stacks: list[Stack] = []

    def build(workers: int = 1, apis: int = 1, wait_ready: bool = True, **env: str) -> Stack:
        stack = Stack(redis=redis_server, upstream=upstream, claude_bin=claude_bin, root=tmp_path)
        stacks.append(stack)
        for _ in range(workers):
            stack.add_worker(**env)
        for _ in range(apis):
            stack.add_api(**env)
        if wait_ready:
            stack.wait_ready()
        return stack

    yield build
    for stack in stacks:
        stack.stop()


@contextlib.contextmanager
def module_stack(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: FakeUpstream,
    claude_bin: str,
    *,
    workers: int = 0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """One front end on its own Redis (and `workers` workers: ready once one takes jobs) for a
    module's tests that leave no state a later test would see (refused input, stateless
    reads): started once, not once a test, it saves each test but the first a start-up (some
    1.5 s of CPU a process). Stopped when the block ends."""
    root = tmp_path_factory.mktemp("stack")
    with EmbeddedRedis(root / "redis") as server:
        stack = Stack(redis=server, upstream=upstream, claude_bin=claude_bin, root=root)
        try:
            for _ in range(workers):
                stack.add_worker(**(env or {}))
            stack.add_api(**(env or {}))
            path = "/ready" if workers else "/health"
            wait_until(partial(http_ok, f"{stack.url}{path}"), 30, f"{stack.url}{path}")
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    """One front end and one worker with the real CLI, against the fake upstream."""
    return make_stack()


@pytest.fixture
def sdk_clients() -> Iterator[SdkClients]:
    """SDK clients for the test, closed when it ends."""
    # Imported here, not at the top: the SDKs take some 3 s of CPU to import, and every pytest
    # process loads this file, xdist's controller too, which runs no test.
    from tests.sdk import SdkClients

    with contextlib.ExitStack() as exit_stack:
        yield SdkClients(exit_stack)
