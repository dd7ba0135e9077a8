"""`ccfleet batch` against a running stack: the real command line, real workers and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.conftest import Stack, StackFactory
from tests.processes import http_ok, wait_until

MODEL = "claude-sonnet-4-5"


def ccfleet_batch(
    stack: Stack, *args: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCFLEET_URL": url or stack.url, "CCFLEET_API_KEY": "client-key"}
    return subprocess.run(
        [sys.executable, "-m", "ccfleet", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_requests(path: Path, prompts: dict[str, str]) -> Path:
    lines = [
        orjson.dumps(
            {
                "custom_id": custom_id,
                "params": {
                    "model": MODEL,
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": prompt}],
                },
            }
        )
        for custom_id, prompt in prompts.items()
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_submit_wait_writes_every_result_and_exits_0(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(CCFLEET_WORKER_SLOTS="3")
    requests = write_requests(tmp_path / "in.jsonl", {"one": "first", "two": "second"})
    out = tmp_path / "out.jsonl"

    submitted = ccfleet_batch(stack, "submit", str(requests), "--wait", "--out", str(out))

    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("msgbatch_")
    assert "succeeded 2" in submitted.stderr
    results = {r["custom_id"]: r["result"] for r in map(orjson.loads, out.read_text().splitlines())}
    assert set(results) == {"one", "two"}
    assert all(r["type"] == "succeeded" for r in results.values())
    status = ccfleet_batch(stack, "status", batch_id)
    assert status.returncode == 0
    assert '"processing_status": "ended"' in status.stdout
    listed = ccfleet_batch(stack, "list")
    assert listed.returncode == 0
    assert batch_id in listed.stdout


def test_a_batch_not_ended_exits_3_and_errors_exit_1_with_a_message(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, f"{stack.url}/health")
    requests = write_requests(tmp_path / "in.jsonl", {"one": "first"})
    batch_id = ccfleet_batch(stack, "submit", str(requests)).stdout.strip()

    assert ccfleet_batch(stack, "status", batch_id).returncode == 3
    assert ccfleet_batch(stack, "results", batch_id).returncode == 3
    canceled = ccfleet_batch(stack, "cancel", batch_id)
    assert canceled.returncode == 0
    assert "ended" in canceled.stderr
    assert ccfleet_batch(stack, "results", batch_id).stdout.count('"canceled"') == 1

    missing = ccfleet_batch(stack, "status", "msgbatch_nope")
    assert missing.returncode == 1
    assert "404 not_found_error" in missing.stderr
    (tmp_path / "bad.jsonl").write_text('{"custom_id": "a", "params": {}}\nnot json\n')
    bad = ccfleet_batch(stack, "submit", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 1
    assert "bad.jsonl:2: not JSON" in bad.stderr
    unreachable = ccfleet_batch(stack, "list", url="http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
