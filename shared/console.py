"""The `ccfleet` command: run a front end, a worker, or the whole stack on one machine.

Each role runs in its own process from its own entry point (`api.app:create_app`,
`worker.main:run_worker`), loaded by import string as uvicorn and arq do, so this
module stays free of both.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from shared.log import configure_logging
from shared.redis_server import EmbeddedRedis
from shared.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

_STOP_TIMEOUT_S = 20.0


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8080,
) -> None:
    """Run one stateless front end (uvicorn)."""
    settings = Settings()
    configure_logging(settings.log_level)
    create_app = importlib.import_module("api.app").create_app
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
    )


@app.command()
def worker() -> None:
    """Run one worker (arq) serving the Claude account of this environment."""
    settings = Settings()
    configure_logging(settings.log_level)
    importlib.import_module("worker.main").run_worker(settings)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address for the front end.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the front end.")] = 8080,
) -> None:
    """Run the whole stack here: Redis (embedded unless CCFLEET_REDIS_URL is set), one front
    end and one worker using the local `claude` login. Ctrl-C stops everything."""
    settings = Settings()
    configure_logging(settings.log_level)
    redis_server = None
    env = dict(os.environ)
    if not settings.redis_url:
        data_dir = Path(tempfile.gettempdir()) / "ccfleet-up-redis"
        redis_server = EmbeddedRedis(data_dir).start()
        env["CCFLEET_REDIS_URL"] = redis_server.url
        typer.echo(f"embedded redis on {redis_server.url}")
    me = [sys.executable, "-m", "shared.console"]
    children = [
        subprocess.Popen([*me, "worker"], env=env),
        subprocess.Popen([*me, "api", "--host", host, "--port", str(port)], env=env),
    ]
    typer.echo(f"ccfleet serving http://{host}:{port}/v1/messages  (Ctrl-C stops)")
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Set explicitly: a shell starting us in the background leaves SIGINT ignored.
        signal.signal(signum, lambda received, _frame: stopping.append(received))
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        _stop_all(children)
        if redis_server is not None:
            redis_server.stop()


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    app()
