"""A tiny stand-in for the `claude` CLI, for what the real one cannot do on demand.

Run it with `sys.executable tests/fakes/fake_cli.py [ignored CLI arguments]`. It prints
stream-json lines as the real CLI does; its behaviour is chosen by environment variables:

FAKE_CLI_MODE
    answer          (default) Read stream-json lines from stdin. A control request gets a
                    success `control_response`. A user line with
                    `"shouldQuery": false` is acknowledged with a `result` line; assistant lines
                    get no reply; the querying user line is answered with the JSON lines of the
                    file FAKE_CLI_OUTPUT (a complete "Hello" answer when unset). Then exit with
                    FAKE_CLI_EXIT_CODE (default 0). With FAKE_CLI_STAYS=1 it answers every
                    querying line until its stdin closes, as the real CLI does; with
                    FAKE_CLI_TURNS=N too, only N of them: the next one ends it unanswered,
                    as a CLI that died between turns.
    sleep           Print a `system` line with its pid, then sleep; SIGTERM ends it.
    ignore_sigterm  Like sleep, but SIGTERM is ignored (only SIGKILL ends it). With
                    FAKE_CLI_SIGNAL_FILE set, each SIGTERM it ignores appends a line
                    `SIGTERM` to that file, so a test can wait for the signal to arrive.
    spawn_child     Start a grandchild that ignores SIGTERM and holds none of the CLI's pipes,
                    print a `system` line with both pids (once the grandchild is ready), then
                    sleep; SIGTERM ends only the parent.
    long_line       Print one stream_event line whose text delta is FAKE_CLI_LINE_BYTES long
                    (default 2 MiB), then a success `result`, then exit.
    upstream        Like answer, but the querying user line is sent (non-streaming) to the
                    fake upstream at ANTHROPIC_BASE_URL with the login the worker gave it, and
                    its reply printed as the real CLI prints it: a `rate_limit_event` from the
                    unified rate-limit headers (OAuth logins only, as measured), the text as
                    stream events, or an error `result` with the HTTP status.
    stream_forever  Read stdin up to the querying user line (control requests answered as in
                    `answer`), start an answer, then print a text delta of
                    FAKE_CLI_LINE_BYTES (default 1) every FAKE_CLI_DRIP_S (default 0.05)
                    seconds until killed: a CLI still answering. With FAKE_CLI_DRIP_COUNT
                    set, it ends the answer after that many deltas (a slow but whole answer).

In mode `answer`, called as `--version` or `auth status` (as a worker checks its CLI), it
answers as the pinned CLI does: a version line, and the JSON of a CLI logged in with an OAuth
token, or of one not logged in at all (exit code 1) when FAKE_CLI_LOGGED_IN=0.

With FAKE_CLI_PID_FILE set, every mode first writes its pid to that file.
Every sleeping mode gives up after FAKE_CLI_SLEEP_S (default 120) so that a broken test cannot
leave it running for ever.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

_GRANDCHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def stream_event(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stream_event", "event": event, "parent_tool_use_id": None, "session_id": "s"}


def success_result(text: str) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "api_error_status": None,
        "result": text,
        "session_id": "s",
    }


def hello_answer() -> list[dict[str, Any]]:
    message: dict[str, Any] = {
        "id": "msg_fake_cli",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    return [*(stream_event(e) for e in events), success_result("Hello")]


def scripted_output() -> list[dict[str, Any]]:
    path = os.environ.get("FAKE_CLI_OUTPUT")
    if not path:
        return hello_answer()
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def text_answer(text: str) -> list[dict[str, Any]]:
    """`hello_answer`'s events, saying `text`."""
    events = hello_answer()
    start, block, _hel, _lo, *closing, _result = events
    delta = {"type": "text_delta", "text": text}
    middle = stream_event({"type": "content_block_delta", "index": 0, "delta": delta})
    return [start, block, middle, *closing, success_result(text)]


def rate_limit_event(headers: Any) -> dict[str, Any] | None:
    """What the real CLI prints (OAuth logins) for the upstream's unified rate-limit headers."""
    prefix = "anthropic-ratelimit-unified"
    status = headers.get(f"{prefix}-status")
    if status is None or not os.environ.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return None
    windows = {
        name: {
            "utilization": float(headers[f"{prefix}-{short}-utilization"]),
            "resetsAt": int(headers[f"{prefix}-{short}-reset"]),
            "status": headers[f"{prefix}-{short}-status"],
        }
        for short, name in (("5h", "five_hour"), ("7d", "seven_day"))
        if headers.get(f"{prefix}-{short}-utilization") is not None
    }
    info = {
        "status": status,
        "resetsAt": int(headers[f"{prefix}-reset"]),
        "rateLimitType": headers.get(f"{prefix}-representative-claim"),
        "isUsingOverage": False,
        "unifiedWindows": windows,
    }
    return {"type": "rate_limit_event", "rate_limit_info": info, "session_id": "s"}


def ask_upstream(line: dict[str, Any]) -> list[dict[str, Any]]:
    """Send the user line to the fake upstream; what the CLI prints about its reply."""
    token = os.environ.get("CLAUDE_CODE_OAUTH_TOKEN")
    api_key = os.environ.get("ANTHROPIC_API_KEY", "")
    login = {"authorization": f"Bearer {token}"} if token else {"x-api-key": api_key}
    body = {
        "model": os.environ.get("ANTHROPIC_MODEL", "claude-fake"),
        "max_tokens": int(os.environ.get("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "50")),
        "messages": [line["message"]],
    }
    request = urllib.request.Request(
        f"{os.environ['ANTHROPIC_BASE_URL']}/v1/messages",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **login},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            reply, status, headers = json.loads(response.read()), 200, response.headers
    except urllib.error.HTTPError as error:
        reply, status, headers = {}, error.code, error.headers
    printed = [event] if (event := rate_limit_event(headers)) is not None else []
    if status != 200:
        failed = {**success_result(f"API Error: {status}"), "is_error": True}
        failed.update(subtype="error_during_execution", api_error_status=status)
        return [*printed, failed]
    return [*printed, *text_answer(reply["content"][0]["text"])]


def answer() -> int:
    emit({"type": "system", "subtype": "init", "session_id": "s"})
    turns_left = int(os.environ.get("FAKE_CLI_TURNS", "-1"))
    for raw in sys.stdin:
        if not raw.strip():
            continue
        line = json.loads(raw)
        if line.get("type") == "control_request":
            response = {"subtype": "success", "request_id": line.get("request_id"), "response": {}}
            emit({"type": "control_response", "response": response})
            continue
        if line.get("type") != "user":
            continue
        if line.get("shouldQuery") is False:
            emit(success_result(""))
            continue
        if turns_left == 0:
            break
        turns_left -= 1
        time.sleep(float(os.environ.get("FAKE_CLI_DELAY_S", "0")))
        upstream = os.environ.get("FAKE_CLI_MODE") == "upstream"
        for message in ask_upstream(line) if upstream else scripted_output():
            emit(message)
        if os.environ.get("FAKE_CLI_STAYS") != "1":
            break
    return int(os.environ.get("FAKE_CLI_EXIT_CODE", "0"))


def sleep_s() -> float:
    return float(os.environ.get("FAKE_CLI_SLEEP_S", "120"))


def sleep(*, ignore_sigterm: bool) -> int:
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, _sigterm_ignorer())
    emit({"type": "system", "subtype": "init", "pid": os.getpid()})
    time.sleep(sleep_s())
    return 0


def _sigterm_ignorer() -> signal.Handlers | Callable[[int, FrameType | None], None]:
    path = os.environ.get("FAKE_CLI_SIGNAL_FILE")
    if not path:
        return signal.SIG_IGN

    def note(_signum: int, _frame: FrameType | None) -> None:
        with open(path, "a", encoding="utf-8") as signals:
            signals.write("SIGTERM\n")

    return note


def spawn_child() -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", _GRANDCHILD, str(sleep_s())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        # Not holding the CLI's stderr: once the CLI is gone, only its process group leads
        # to the grandchild (asyncio would otherwise wait for it to close the pipe).
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    child.stdout.readline()  # it ignores SIGTERM from here on
    emit({"type": "system", "subtype": "init", "pid": os.getpid(), "child_pid": child.pid})
    time.sleep(sleep_s())
    return 0


def long_line() -> int:
    size = int(os.environ.get("FAKE_CLI_LINE_BYTES", str(2 * 1024 * 1024)))
    delta = {"type": "text_delta", "text": "x" * size}
    emit(stream_event({"type": "content_block_delta", "index": 0, "delta": delta}))
    emit(success_result(""))
    return 0


VERSION = "2.1.328"


def auth_status() -> int:
    logged_in = os.environ.get("FAKE_CLI_LOGGED_IN", "1") != "0"
    method = "oauth_token" if logged_in else "none"
    emit({"loggedIn": logged_in, "authMethod": method, "apiProvider": "firstParty"})
    return 0 if logged_in else 1


def write_executable(directory: Path, *, logged_in: bool = True) -> Path:
    """An executable `claude` in `directory` that runs this fake CLI with this interpreter;
    written again, it changes what the next run says."""
    path = directory / "claude"
    login = "" if logged_in else "FAKE_CLI_LOGGED_IN=0 "
    script = f'#!/bin/sh\n{login}exec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n'
    staged = directory / "claude.new"
    staged.write_text(script)
    staged.chmod(0o755)
    staged.replace(path)  # atomic: a run never sees half a script
    return path


def stream_forever() -> int:
    for raw in sys.stdin:
        line = json.loads(raw) if raw.strip() else {}
        if line.get("type") == "control_request":
            response: dict[str, Any] = {
                "subtype": "success",
                "request_id": line.get("request_id"),
                "response": {},
            }
            emit({"type": "control_response", "response": response})
        elif line.get("type") == "user" and line.get("shouldQuery") is not False:
            break
    start, block_start = (event["event"] for event in hello_answer()[:2])
    emit(stream_event(start))
    emit(stream_event(block_start))
    delta = {"type": "text_delta", "text": "x" * int(os.environ.get("FAKE_CLI_LINE_BYTES", "1"))}
    drip_s = float(os.environ.get("FAKE_CLI_DRIP_S", "0.05"))
    count = int(os.environ.get("FAKE_CLI_DRIP_COUNT", "0"))
    deadline = time.monotonic() + sleep_s()
    sent = 0
    while time.monotonic() < deadline and (count == 0 or sent < count):
        emit(stream_event({"type": "content_block_delta", "index": 0, "delta": delta}))
        sent += 1
        time.sleep(drip_s)
    if count:
        for message in hello_answer()[4:-1]:  # the block's stop, the message's delta and stop
            emit(message)
        emit(success_result(delta["text"] * count))
    return 0


def install(path: Path, **env: str) -> Path:
    """An executable `claude` at `path` running this fake with `env` set (a worker passes its
    CLI only some of its own variables, so they are written in). A worker's checks of its CLI
    (`--version`, `auth status`) are answered in mode `answer`, as a logged-in CLI, whatever
    `env` says."""
    me = f"{shlex.quote(sys.executable)} {shlex.quote(__file__)}"
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version|auth)\n'
        f'  FAKE_CLI_MODE=answer FAKE_CLI_PID_FILE= FAKE_CLI_LOGGED_IN=1 exec {me} "$@";;\n'
        "esac\n"
        f'{exports}exec {me} "$@"\n'
    )
    path.chmod(0o755)
    return path


def main() -> int:
    pid_file = os.environ.get("FAKE_CLI_PID_FILE")
    if pid_file:
        with open(pid_file, "w", encoding="utf-8") as out:
            out.write(str(os.getpid()))
    mode = os.environ.get("FAKE_CLI_MODE", "answer")
    if mode == "answer" and sys.argv[1:] == ["--version"]:
        print(f"{VERSION} (Claude Code)", flush=True)
        return 0
    if mode == "answer" and sys.argv[1:3] == ["auth", "status"]:
        return auth_status()
    if mode in ("answer", "upstream"):
        return answer()
    if mode in ("sleep", "ignore_sigterm"):
        return sleep(ignore_sigterm=mode == "ignore_sigterm")
    if mode == "spawn_child":
        return spawn_child()
    if mode == "long_line":
        return long_line()
    if mode == "stream_forever":
        return stream_forever()
    sys.stderr.write(f"fake_cli: unknown FAKE_CLI_MODE {mode!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
