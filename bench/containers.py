"""The containers' figures: image size, each role's start to ready, RSS idle and with a CLI.

`uv run python bench/containers.py [--runs 3] [--claude-bin PATH]` (root, with a Docker engine
running: the images are tests/containers' own, made or found by tests/containers/engine.py).

Each run starts Redis, a front end and a worker as tests/containers/test_image.py does (as the
manifests run them, on a bridge network), with no ready CLI (CCFLEET_PREWARM_CLIS=0) so the
idle worker is the worker alone. It measures
- the front end: `docker run` to its /health answering 200 (through the published port);
- the worker: `docker run` to the front end's /ready answering 200 (it needs the worker's
  first heartbeat);
- RSS: the sum of VmRSS of the container's processes (`docker top`, read on the host), idle
  after both are ready, and the worker's again while a request holds its CLI (the fake upstream
  keeps the request open).
Prints each figure's median and min-max over the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.*

import anthropic

from tests.containers.conftest import Images
from tests.containers.engine import base_image, bridge_gateway, ccfleet_image, docker, redis_image
from tests.containers.pods import API_MANIFEST, WORKER_MANIFEST, Sandbox, pod_shape, published_url
from tests.fakes.upstream import FakeUpstream, HangReply
from tests.processes import http_ok, wait_until

Figures = dict[str, float]


def container_rss_mb(container: str) -> float:
    pids = docker("top", container, "-o", "pid").splitlines()[1:]
    total_kb = 0
    for pid in pids:
        status = Path(f"/proc/{pid.strip()}/status").read_text()
        total_kb += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
    return total_kb / 1024


def timed(start: Callable[[], object], ready: Callable[[], bool], what: str) -> float:
    began = time.monotonic()
    start()
    wait_until(ready, 120.0, what)
    return time.monotonic() - began


def one_run(images: Images, upstream: FakeUpstream) -> Figures:
    sandbox = Sandbox()
    try:
        network = sandbox.network()
        url_of_redis = f"redis://:bench@{sandbox.prefix}-redis:6379/0"
        sandbox.run(
            "redis",
            images.redis,
            "redis-server",
            "--requirepass",
            "bench",
            "--appendonly",
            "yes",
            options=["--network", network],
        )
        common = [
            "--network",
            network,
            "--env",
            f"CCFLEET_REDIS_URL={url_of_redis}",
            "--env",
            "CCFLEET_AUTH=off",
        ]
        api_options = [
            *pod_shape(API_MANIFEST).docker_options(),
            *common,
            "--publish",
            "127.0.0.1::8080",
        ]
        api = f"{sandbox.prefix}-api"
        urls: list[str] = []

        def api_health() -> bool:
            if not urls:
                urls.append(published_url(api, 8080))
            return http_ok(f"{urls[0]}/health")

        api_s = timed(
            partial(
                sandbox.run,
                "api",
                images.ccfleet,
                "api",
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                options=api_options,
            ),
            api_health,
            "the front end's /health",
        )
        worker_options = [
            *pod_shape(WORKER_MANIFEST).docker_options(),
            *common,
            *("--env", "CCFLEET_PREWARM_CLIS=0", "--env", "CLAUDE_CODE_OAUTH_TOKEN=bench-token"),
            *("--env", f"ANTHROPIC_BASE_URL={upstream.url}"),
        ]
        worker = f"{sandbox.prefix}-worker"
        worker_s = timed(
            partial(sandbox.run, "worker", images.ccfleet, "worker", options=worker_options),
            partial(http_ok, f"{urls[0]}/ready"),
            "the front end's /ready (a worker's heartbeat)",
        )
        time.sleep(3.0)  # settle: imports done, first polls made
        figures = {
            "api start to /health (s)": api_s,
            "worker start to ready (s)": worker_s,
            "api RSS idle (MB)": container_rss_mb(api),
            "worker RSS idle (MB)": container_rss_mb(worker),
        }
        figures["worker RSS with a CLI running (MB)"] = _rss_with_cli(urls[0], worker, upstream)
        return figures
    finally:
        sandbox.remove()


def _rss_with_cli(url: str, worker: str, upstream: FakeUpstream) -> float:
    upstream.reset()
    released = threading.Event()
    upstream.enqueue(HangReply(until=released))

    def ask() -> None:
        with anthropic.Anthropic(
            base_url=url, api_key="bench", max_retries=0, timeout=120
        ) as client:
            client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=16,
                messages=[{"role": "user", "content": "Hi"}],
            )

    request = threading.Thread(target=ask, daemon=True)
    request.start()
    try:
        if not upstream.wait_for_requests(1, timeout_s=120.0):
            raise RuntimeError("the worker's CLI never reached the fake upstream")
        time.sleep(1.0)  # the CLI waits on the upstream: its memory as it holds a request
        return container_rss_mb(worker)
    finally:
        released.set()
        request.join(timeout=60)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f}   min-max {min(values):.1f}-{max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--claude-bin",
        default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN")
        or str(Path.home() / ".cache/ccfleet/claude-code-2.1.332/node_modules/.bin/claude"),
    )
    args = parser.parse_args()
    base = base_image()
    images = Images(ccfleet=ccfleet_image(base, args.claude_bin), redis=redis_image(base))
    size_mb = int(docker("image", "inspect", "--format", "{{.Size}}", images.ccfleet)) / 1e6
    cli_mb = Path(args.claude_bin).resolve().stat().st_size / 1e6
    print(f"image {images.ccfleet}: {size_mb:.0f} MB (the CLI binary: {cli_mb:.0f} MB)")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.1f} at the start; {args.runs} runs")
    runs: list[Figures] = []
    with FakeUpstream(host=bridge_gateway()) as upstream:
        for _ in range(args.runs):
            runs.append(one_run(images, upstream))
    for name in runs[0]:
        print(f"{name:38} {summary([run[name] for run in runs])}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
