"""Answers one Messages request with one CLI run (or one turn of a resident CLI,
worker/cli/resident.py), publishing the raw stream events as chunks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from shared.errors import CliFailed, JobTimedOut, UpstreamSilent
from shared.wire.messages import MessagesRequest
from worker.cli.command import (
    SpawnShape,
    StdinLine,
    cli_argv,
    cli_environment,
    cli_messages,
    control_lines,
    message_lines,
    spawn_shape,
    uses_api_key,
)
from worker.cli.config import CliConfig
from worker.cli.outcome import result_error
from worker.cli.pool import CliPool, WarmCli
from worker.cli.process import CliProcess
from worker.cli.resident import (
    ReplyRecorder,
    ResidentCli,
    ResidentConversations,
    continuation_of,
    conversation_digest,
)
from worker.cli.workspace import Workspace, job_workspace, remove_workspace
from worker.reply.chunk_publisher import ChunkPublisher
from worker.reply.run_meter import RunMeter
from worker.reply.stop_sequences import StopSequenceCutter
from worker.tools.client_tools import answer_cli_request, rename_for_client, tools_for_cli

logger = logging.getLogger(__name__)


async def answer_with_cli(
    request: MessagesRequest,
    job_id: str,
    publisher: ChunkPublisher,
    config: CliConfig,
    *,
    meter: RunMeter | None = None,
    pool: CliPool | None = None,
    residents: ResidentConversations | None = None,
    client_key: str = "",
    after_hand_off: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the CLI for `request`: the resident CLI holding its conversation so far (then only
    the new messages go in), else a ready one from `pool` of the request's shape, else a cold
    one; raises a FleetError when it does not answer completely. With `residents`, a CLI that
    answered completely stays for the conversation's next turn. `meter` learns what the run
    used, whether it answers or not. `after_hand_off` runs once the CLI has the request
    (again if a dead resident CLI's turn is replayed): what waits for it costs the request
    nothing while the CLI sends it upstream."""
    meter = meter or RunMeter()
    messages = cli_messages(request)
    continuation = continuation_of(client_key, request, messages) if residents else None
    resident = residents.take(continuation) if residents is not None else None
    if resident is not None and continuation is not None:
        try:
            await _answer_once(
                request, job_id, publisher, config, meter=meter, pool=pool, residents=residents,
                client_key=client_key, resident=resident, new_messages=continuation.new_messages,
                after_hand_off=after_hand_off,
            )  # fmt: skip
            return
        except CliFailed:
            if publisher.seq:  # something went out: the answer cannot start again
                raise
            # A resident CLI that died between turns (killed, crashed) costs a replay, not
            # the request: the conversation goes in whole to a fresh CLI.
            logger.warning(
                "resident cli pid=%s ended before answering; replaying", resident.process.pid
            )
    await _answer_once(
        request, job_id, publisher, config, meter=meter, pool=pool, residents=residents,
        client_key=client_key, resident=None, new_messages=None, after_hand_off=after_hand_off,
    )  # fmt: skip


async def _answer_once(
    request: MessagesRequest,
    job_id: str,
    publisher: ChunkPublisher,
    config: CliConfig,
    *,
    meter: RunMeter,
    pool: CliPool | None,
    residents: ResidentConversations | None,
    client_key: str,
    resident: ResidentCli | None,
    new_messages: list[dict[str, Any]] | None,
    after_hand_off: Callable[[], Awaitable[None]] | None,
) -> None:
    """One run of a CLI for `request`: `resident` with only `new_messages`, else a ready or
    cold CLI with the whole conversation."""
    messages = cli_messages(request)
    tools = tools_for_cli(request)
    shape = spawn_shape(request, bare=uses_api_key(config.base_env))
    warm = pool.take(shape) if pool is not None and resident is None else None
    with contextlib.ExitStack() as cleanup:
        process, workspace = _cli_for(request, job_id, config, shape, resident or warm, cleanup)
        # Before the workspace goes: a refreshed credential goes back to the account.
        cleanup.callback(config.login.collect, workspace.config_dir)
        cutter = StopSequenceCutter(request.stop_sequences)
        reply = ReplyRecorder()
        stays: ResidentCli | None = None
        try:
            meter.spawned_at = time.monotonic()
            async with asyncio.timeout(config.timeout_s), process:
                meter.handed_off_at = time.time()
                cli = _AnsweringCli(process, tools)
                if resident is None:
                    await _configure(cli, control_lines(request))
                lines = message_lines(
                    new_messages if resident is not None and new_messages else messages,
                    request.model,
                )
                logger.info("cli pid=%s (%s) took the request", process.pid, _kind(warm, resident))
                await _replay_history(cli, lines[:-1], meter)
                await process.write_line(lines[-1].payload)
                if after_hand_off is not None:
                    await after_hand_off()
                await _relay_answer_in_time(cli, publisher, cutter, meter, config, reply)
                if residents is not None and _may_stay(process, cutter, reply, shape.bare):
                    holds = conversation_digest(client_key, request, [*messages, reply.message()])
                    stays = ResidentCli(process, workspace, holds)
                    process.keep_running()
                    cleanup.pop_all()  # the workspace is the resident CLI's now
                    cleanup.callback(config.login.collect, workspace.config_dir)
                elif cutter.matched is None:
                    process.close_stdin()  # nothing more to ask: the CLI exits
                    await process.wait_exit(config.kill_grace_s)
        except TimeoutError as exc:
            _log_stderr_tail(process, job_id)
            raise JobTimedOut(f"The request ran past {config.timeout_s:.0f} s.") from exc
        except Exception:
            _log_stderr_tail(process, job_id)
            raise
    if stays is not None and residents is not None:
        residents.keep(stays)


def _cli_for(
    request: MessagesRequest,
    job_id: str,
    config: CliConfig,
    shape: SpawnShape,
    started: ResidentCli | WarmCli | None,
    cleanup: contextlib.ExitStack,
) -> tuple[CliProcess, Workspace]:
    """The process to run and its workspace, removed by `cleanup` unless a resident keeps it."""
    if started is not None:
        cleanup.callback(remove_workspace, started.workspace)
        return started.process, started.workspace
    workspace = cleanup.enter_context(job_workspace(config.work_root, job_id))
    config.login.install(workspace.config_dir)
    process = CliProcess(
        cli_argv(config.claude_bin, shape),
        env=cli_environment(config.base_env, workspace.tmp_dir, shape, home=workspace.home),
        cwd=workspace.cwd,
        kill_grace_s=config.kill_grace_s,
    )
    return process, workspace


def _may_stay(
    process: CliProcess, cutter: StopSequenceCutter, reply: ReplyRecorder, bare: bool
) -> bool:
    """A complete answer the CLI holds as the client got it. Not after a stop sequence (the
    CLI holds more than the client got), nor a bare run's tool call (with no hook to defer
    it, the CLI answered the call itself with a refusal)."""
    if process.returncode is not None or cutter.matched is not None:
        return False
    return not (bare and reply.ends_with_tool_use())


def _kind(warm: WarmCli | None, resident: ResidentCli | None) -> str:
    if resident is not None:
        return "resident"
    return "cold" if warm is None else "from the ready pool"


def _log_stderr_tail(process: CliProcess, job_id: str) -> None:
    """What the CLI said on stderr before a failure: the operator's first clue."""
    if process.stderr_tail:
        logger.warning(
            "cli of job %s failed (rc=%s); its stderr ends:\n%s",
            job_id,
            process.returncode,
            "\n".join(process.stderr_tail),
        )


class _AnsweringCli:
    """A CLI's output lines, with the control requests it sends the worker (about the
    client's tools: worker/tools/client_tools.py) answered as they come. Its stdin stays open for
    those until the answer's `result`; closing it then lets the CLI exit."""

    def __init__(self, process: CliProcess, tools: list[dict[str, Any]]) -> None:
        self.process = process
        self._tools = tools
        self.first_byte: asyncio.Timeout | None = None
        """Running while the upstream has not answered the request; ended by its first sign."""

    async def read_message(self) -> dict[str, Any] | None:
        while (message := await self.process.read_message()) is not None:
            if message.get("type") != "control_request":
                self._heard(message)
                return message
            await self._answer(message)
        return None

    def _heard(self, message: dict[str, Any]) -> None:
        if self.first_byte is not None and message.get("type") in _UPSTREAM_SIGNS:
            self.first_byte.reschedule(None)
            self.first_byte = None

    async def _answer(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        body = answer_cli_request(message.get("request") or {}, self._tools)
        response: dict[str, Any] = (
            {"subtype": "success", "request_id": request_id, "response": body}
            if body is not None
            else {"subtype": "error", "request_id": request_id, "error": "Not served here."}
        )
        line = {"type": "control_response", "response": response}
        await self.process.write_line(orjson.dumps(line) + b"\n")


async def _configure(cli: _AnsweringCli, lines: list[bytes]) -> None:
    """Control requests, each answered by its `control_response` before the next line."""
    for line in lines:
        await cli.process.write_line(line)
        response = await _next_control_response(cli)
        if response.get("subtype") != "success":
            logger.error("cli refused a control request: %s", response.get("error"))
            raise CliFailed("The Claude Code CLI refused its set-up.")


async def _next_control_response(cli: _AnsweringCli) -> dict[str, Any]:
    while (message := await cli.read_message()) is not None:
        if message.get("type") == "control_response":
            response: dict[str, Any] = message.get("response") or {}
            return response
    raise CliFailed("The Claude Code CLI exited before it was set up.")


async def _replay_history(cli: _AnsweringCli, lines: list[StdinLine], meter: RunMeter) -> None:
    """Earlier turns, in order; a user turn must be acknowledged before the next line."""
    for line in lines:
        await cli.process.write_line(line.payload)
        if line.awaits_ack:
            result = await _next_result(cli, meter)
            if result.get("is_error"):
                raise result_error(result, None, rate_limit=None)


async def _next_result(cli: _AnsweringCli, meter: RunMeter) -> dict[str, Any]:
    while (message := await cli.read_message()) is not None:
        meter.observe(message)
        if message.get("type") == "result":
            return message
    raise CliFailed("The Claude Code CLI exited while replaying the conversation.")


# What the CLI prints only once the upstream answered its request: the response's headers
# (`rate_limit_event`, OAuth logins), its events, or the run's end.
_UPSTREAM_SIGNS = ("stream_event", "rate_limit_event", "assistant", "result")


async def _relay_answer_in_time(
    cli: _AnsweringCli,
    publisher: ChunkPublisher,
    cutter: StopSequenceCutter,
    meter: RunMeter,
    config: CliConfig,
    reply: ReplyRecorder,
) -> None:
    """`_relay_answer`, abandoned with UpstreamSilent when the CLI hears nothing from the
    upstream within the first-byte timeout after the request (leaving stops the CLI)."""
    cli.first_byte = deadline = asyncio.timeout(config.first_byte_timeout_s)
    try:
        async with deadline:
            await _relay_answer(cli, publisher, cutter, meter, reply)
    except TimeoutError as exc:
        raise UpstreamSilent(
            f"The upstream sent nothing within {config.first_byte_timeout_s:g} s."
        ) from exc


# Held back until the answer goes on or the CLI's `result` confirms it: after a mid-stream
# upstream error the CLI makes up these closing events itself, which would present half an
# answer as whole. A held content_block_stop is released by the next block's events.
_CLOSING_EVENTS = ("content_block_stop", "message_delta", "message_stop")


async def _relay_answer(
    cli: _AnsweringCli,
    publisher: ChunkPublisher,
    cutter: StopSequenceCutter,
    meter: RunMeter,
    reply: ReplyRecorder,
) -> None:
    """Publish the events of the one answer until the CLI's `result` line (or a stop
    sequence); `reply` records what the CLI added to its conversation."""
    error_line: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    held: list[dict[str, Any]] = []
    while (message := await cli.read_message()) is not None:
        meter.observe(message)
        kind = message.get("type")
        if kind == "stream_event":
            reply.feed(message["event"])
            await _publish_stream_event(message["event"], publisher, cutter, held)
            if cutter.matched is not None:
                return  # leaving the process block stops the CLI
        elif kind == "assistant" and message.get("error"):
            error_line = message
        elif kind == "rate_limit_event":
            rate_limit = message.get("rate_limit_info")
        elif kind == "result":
            await _publish_ending(message, publisher, held, error_line, rate_limit)
            return
    code = await cli.process.wait_exit(1.0)
    raise CliFailed(f"The Claude Code CLI exited (code {code}) before answering.")


async def _publish_stream_event(
    raw: dict[str, Any],
    publisher: ChunkPublisher,
    cutter: StopSequenceCutter,
    held: list[dict[str, Any]],
) -> None:
    """One upstream event, cut at a stop sequence; closing events wait in `held`. What is
    ready goes out together (one write, one live message)."""
    ready: list[dict[str, Any]] = []
    for event in cutter.feed(rename_for_client(raw)):
        if cutter.matched is None and event.get("type") in _CLOSING_EVENTS:
            held.append(event)
            continue
        ready.extend(held)  # the answer goes on: held block stops were real
        held.clear()
        ready.append(event)
    if ready:
        await publisher.publish_events(ready)


async def _publish_ending(
    result: dict[str, Any],
    publisher: ChunkPublisher,
    held: list[dict[str, Any]],
    error_line: dict[str, Any] | None,
    rate_limit: dict[str, Any] | None,
) -> None:
    """The held closing events once `result` confirms the answer; its error otherwise."""
    if result.get("is_error") and not _stopped_at_tool_use(result, held):
        raise result_error(result, error_line, rate_limit=rate_limit)
    if held:
        await publisher.publish_events(held)  # together: each relay wakes once for them
    if not publisher.ended:
        raise CliFailed("The Claude Code CLI finished without a complete answer.")


def _stopped_at_tool_use(result: dict[str, Any], held: list[dict[str, Any]]) -> bool:
    """A bare run ends with `error_max_turns` after the model's tool_use: that is the answer."""
    if result.get("terminal_reason") != "max_turns":
        return False
    return any(e.get("delta", {}).get("stop_reason") == "tool_use" for e in held)
