"""No client content on the CLI's command line: `ps` shows argv to every local user, and Linux
caps one argument at 128 KiB. The system prompt and the tools go in over stdin (`initialize`,
`mcp_set_servers`), the model in the environment; nothing of the client's is written to disk.
The real CLI is run here, against the fake upstream."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path

from redis.asyncio import Redis

from shared.queue.job_queue import JobQueue
from shared.wire.messages import MessagesRequest
from tests.fakes.upstream import FakeUpstream, RecordedRequest
from tests.processes import cli_processes
from worker.cli.config import CliConfig
from worker.reply.answer import answer_with_cli
from worker.reply.chunk_publisher import ChunkPublisher

BOUND_S = 60.0


def cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cli_argvs_under(claude_bin: str, root: Path) -> list[list[str]]:
    """argv of the CLIs running with a working directory under `root` (other tests' CLIs may
    run beside ours)."""
    found = []
    for pid in cli_processes(claude_bin):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            if cwd.startswith(str(root)):
                found.append(cmdline(pid))
        except OSError:
            continue
    return found


def private_files_under(root: Path) -> dict[str, int]:
    """Mode bits of each job directory and of the files the job wrote in it."""
    modes = {}
    for job_dir in root.iterdir():
        modes[job_dir.name] = stat.S_IMODE(job_dir.stat().st_mode)
        for entry in job_dir.iterdir():
            if entry.is_file():
                modes[entry.name] = stat.S_IMODE(entry.stat().st_mode)
    return modes


async def test_a_1_mb_system_prompt_reaches_upstream_intact_and_no_client_text_is_on_argv(
    claude_bin: str, upstream: FakeUpstream, redis: Redis, job_queue: JobQueue, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    system = f"SYSTEM-{marker} " + "x" * (1024 * 1024) + f" END-{marker}"
    model = f"claude-argv-probe-{marker[:8]}"
    tool_text = f"TOOL-{marker}"
    work_root = tmp_path / "jobs"
    work_root.mkdir()
    seen_argvs: list[list[str]] = []
    seen_modes: list[dict[str, int]] = []

    def while_the_cli_asks(_request: RecordedRequest) -> None:
        seen_argvs.extend(cli_argvs_under(claude_bin, work_root))
        seen_modes.append(private_files_under(work_root))

    upstream.set_responder(while_the_cli_asks)
    request = MessagesRequest.model_validate(
        {
            "model": model,
            "max_tokens": 64,
            "system": system,
            "tools": [
                {
                    "name": "probe",
                    "description": tool_text,
                    "input_schema": {"type": "object", "properties": {}},
                }
            ],
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    job = await job_queue.submit(request, request_id="req_argv", lane="interactive", lane_limit=10)
    config = CliConfig(
        claude_bin=claude_bin,
        base_env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "ANTHROPIC_BASE_URL": upstream.url,
            "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake-test-token",
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"),
        },
        work_root=str(work_root),
        timeout_s=BOUND_S,
        kill_grace_s=0.5,
    )
    publisher = ChunkPublisher(redis, job.job_id, attempt=1, ttl_s=600, max_chunks=1000)
    async with asyncio.timeout(BOUND_S):
        await answer_with_cli(request, job.job_id, publisher, config)

    sent = upstream.requests[-1].body
    assert sent["system"][-1]["text"] == system
    assert sent["model"] == model
    assert [tool["description"] for tool in sent["tools"]] == [tool_text]
    assert len(seen_argvs) == 1, "exactly our one CLI was running when the request came"
    argv = seen_argvs[0]
    assert argv[1] == "-p", argv
    assert not [arg for arg in argv if marker[:8] in arg]
    assert all(len(arg) < 4096 for arg in argv)
    modes = seen_modes[0]
    assert "tools.json" not in modes, "the tools went over stdin"
    assert all(mode in (0o600, 0o700) for mode in modes.values()), modes
