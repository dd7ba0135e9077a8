"""The `ccfleet` command: run a front end, a worker, or the whole stack on one machine.

Each role runs in its own process: `ccfleet up` starts `python -m ccfleet api` and
`python -m ccfleet worker` children beside an embedded Redis.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.live import Live

from ccfleet.access_commands import keys_app, usage
from ccfleet.accounts_file import AccountsFileError, load_accounts, worker_environments
from ccfleet.batch_cli import batch_app
from ccfleet.embedded_redis import EmbeddedRedis
from ccfleet.settings_table import settings_table, with_table
from ccfleet.status_table import render_fleet
from shared.access.client_keys import MIN_SERVER_SECRET_CHARS
from shared.broker.connection import redis_client
from shared.fleet.registry import read_fleet
from shared.process.parent_death import dying_with_parent
from shared.settings import Settings, UnknownSetting, refuse_unknown_variables
from shared.telemetry.log import configure_logging
from worker.cli.check import CliCheck, check_cli

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(keys_app, name="keys")
app.command()(usage)
app.add_typer(batch_app, name="batch")

UP_REDIS_URL_FILE = Path.home() / ".cache" / "ccfleet" / "up-redis-url"
"""Where `ccfleet up` keeps its embedded Redis's URL (with the password) for the other commands."""

_STOP_TIMEOUT_S = 20.0
_REDIS_TIMEOUT_S = 3.0


@app.callback()
def _every_command() -> None:
    # Before any command runs: a mistyped CCFLEET_ variable stops it, rather than leaving
    # that setting at its default unnoticed.
    try:
        refuse_unknown_variables(os.environ)
    except UnknownSetting as exc:
        for problem in str(exc).splitlines():
            typer.echo(f"ccfleet: {problem}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to bind; default CCFLEET_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind; default CCFLEET_PORT.")] = None,
) -> None:
    """Run one stateless front end (uvicorn)."""
    # Imported by the role that runs it: a worker, or a command like `ccfleet batch`, starts
    # without loading FastAPI (and a front end without the worker), ~0.2-0.5 s of CPU less.
    from api.app import front_end_server

    settings = Settings()
    configure_logging(settings.log.level)
    host = host or settings.api.host
    _check_access(settings, host)
    server, vital = front_end_server(settings, host=host, port=port or settings.api.port)
    server.run()
    if vital.failed is not None:
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run one worker (arq) serving the Claude account of this environment."""
    from worker.main import run_worker  # imported by its role, as in `api`

    settings = Settings()
    configure_logging(settings.log.level)
    raise typer.Exit(run_worker(settings))


@app.command("check-cli")
def check_cli_command(
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each CLI call may take.")] = 20.0,
) -> None:
    """Check that the claude CLI (CCFLEET_CLAUDE_BIN) runs and is logged in, as a worker
    would start it; exit code 1 if not. The workers' startup probe in k8s/."""
    from worker.main import private_cli_environment  # imported by its role, as in `api`

    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="ccfleet-check-") as private_dir:
        env, _ = private_cli_environment(os.environ, private_dir)
        check = asyncio.run(check_cli(settings.cli.claude_bin, env, timeout_s=timeout))
    if check.problem:
        typer.echo(f"{check.problem}\nFix: {check.fix}", err=True)
        raise typer.Exit(1)
    typer.echo(f"claude {check.version}: logged in")


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address for the front end.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the front end.")] = 8080,
    accounts: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of Claude accounts, one worker each (format: README, ccfleet up).",
        ),
    ] = None,
) -> None:
    """Run the whole stack here: Redis (embedded unless CCFLEET_REDIS_URL is set), one front
    end, and one worker using the local `claude` login, or one worker per account of
    --accounts FILE. Ctrl-C stops everything."""
    settings = Settings()
    configure_logging(settings.log.level)
    env = dict(os.environ)
    settings = auth_for_up(settings, host, env)
    _check_access(settings, host)
    worker_envs = [env]
    if accounts is not None:
        worker_envs = _account_environments(accounts, env, default_slots=settings.worker.slots)
    _ensure_a_worker_can_serve(settings.cli.claude_bin, worker_envs)
    redis_server = None
    if not settings.redis.url:
        data_dir = Path(tempfile.gettempdir()) / "ccfleet-up-redis"
        # Loopback only, and a password: anyone who reaches a Redis reads every prompt.
        redis_server = EmbeddedRedis(
            data_dir, password=secrets.token_urlsafe(24), die_with_parent=True
        ).start()
        for child_env in [env, *worker_envs]:
            child_env["CCFLEET_REDIS_URL"] = redis_server.url
        url_file = _private_file(UP_REDIS_URL_FILE, redis_server.url)
        typer.echo(
            f"embedded redis on 127.0.0.1:{redis_server.port} with a password; for `ccfleet "
            f'keys|status|usage|batch`: export CCFLEET_REDIS_URL="$(cat {url_file})"'
        )
    me = [sys.executable, "-m", "ccfleet"]
    # Should `up` itself be killed (SIGKILL, OOM), its children stop too, as on Ctrl-C.
    with_up = dying_with_parent(signal.SIGTERM)
    children = [
        subprocess.Popen([*me, "worker"], env=worker_env, preexec_fn=with_up)
        for worker_env in worker_envs
    ]
    children.append(
        subprocess.Popen(
            [*me, "api", "--host", host, "--port", str(port)], env=env, preexec_fn=with_up
        )
    )
    typer.echo(f"ccfleet serving http://{host}:{port}/v1/messages  (Ctrl-C stops)")
    typer.echo(auth_banner(settings, host))
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
            UP_REDIS_URL_FILE.unlink(missing_ok=True)


def _private_file(path: Path, content: str) -> Path:
    """`content` in a file only this user can read (mode 0600, written as such)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume the world can reach it


def auth_for_up(settings: Settings, host: str, env: dict[str, str]) -> Settings:
    """`up` without CCFLEET_AUTH: off on loopback (only this machine reaches it), else on;
    written into `env`, which its front end inherits."""
    if settings.access.auth is not None:
        return settings
    env["CCFLEET_AUTH"] = "off" if is_loopback(host) else "on"
    access = settings.access.model_copy(update={"auth": env["CCFLEET_AUTH"]})
    return settings.model_copy(update={"access": access})


def auth_banner(settings: Settings, host: str) -> str:
    if settings.access.auth_enabled:
        return "auth on: clients need a key (`ccfleet keys create NAME`)"
    where = "loopback only" if is_loopback(host) else f"{host} is NOT loopback"
    return f"auth OFF ({where}): anyone who reaches the port uses the fleet; CCFLEET_AUTH=on"


def _check_access(settings: Settings, host: str) -> None:
    """Exit 2 when auth is on without a usable server secret; warn loudly when it is off
    on an address other machines reach (only an explicit CCFLEET_AUTH=off gets there)."""
    if settings.access.auth_enabled and len(settings.access.auth_secret) < MIN_SERVER_SECRET_CHARS:
        typer.echo(
            f"ccfleet: auth is on and needs CCFLEET_AUTH_SECRET, at least "
            f"{MIN_SERVER_SECRET_CHARS} characters (`openssl rand -hex 32`), the same on "
            "every front end and for `ccfleet keys`; or CCFLEET_AUTH=off",
            err=True,
        )
        raise typer.Exit(2)
    if not settings.access.auth_enabled and not is_loopback(host):
        typer.echo(f"ccfleet: WARNING: {auth_banner(settings, host)}", err=True)


def _account_environments(
    path: Path, env: dict[str, str], *, default_slots: int
) -> list[dict[str, str]]:
    """One worker environment per account of the file; a bad file ends `up` with exit code 2."""
    try:
        accounts = load_accounts(path, environ=env, default_slots=default_slots)
    except AccountsFileError as exc:
        typer.echo(f"ccfleet up: {exc}", err=True)
        raise typer.Exit(2) from exc
    for account in accounts:
        typer.echo(
            f"worker for account {account.name}: {account.slots} slots, "
            f"login by {account.login_variable}"
        )
    return worker_environments(accounts, env)


def _ensure_a_worker_can_serve(claude_bin: str, worker_envs: list[dict[str, str]]) -> None:
    """Check each worker's CLI as the worker will; name every problem with its fix, and end
    `up` with exit code 1 if no worker could serve."""
    from worker.main import private_cli_environment  # imported by its role, as in `api`

    async def check_all(cli_envs: list[dict[str, str]]) -> list[CliCheck]:
        return await asyncio.gather(*(check_cli(claude_bin, env) for env in cli_envs))

    with tempfile.TemporaryDirectory(prefix="ccfleet-check-") as root:
        cli_envs = []
        for index, worker_env in enumerate(worker_envs):
            private_dir = os.path.join(root, str(index))
            os.mkdir(private_dir, 0o700)
            cli_envs.append(private_cli_environment(worker_env, private_dir)[0])
        checks = asyncio.run(check_all(cli_envs))
    for worker_env, check in zip(worker_envs, checks, strict=True):
        if check.problem:
            account = worker_env.get("CCFLEET_ACCOUNT", "default")
            typer.echo(f"ccfleet up: the worker for account {account} cannot serve.", err=True)
            typer.echo(f"  {check.problem}\n  Fix: {check.fix}", err=True)
    if all(check.problem for check in checks):
        raise typer.Exit(1)


@app.command("settings-table", hidden=True)
def settings_table_command(
    into: Annotated[
        Path | None,
        typer.Option(help="Rewrite this document's copy of the table (docs/configuration.md)."),
    ] = None,
) -> None:
    """Print the Configuration table (docs/configuration.md), generated from the settings."""
    if into is None:
        typer.echo(settings_table(), nl=False)
        return
    into.write_text(with_table(into.read_text(), settings_table()))


@app.command()
def status(
    watch: Annotated[bool, typer.Option("--watch", help="Redraw until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between redraws with --watch.")
    ] = 2.0,
) -> None:
    """Show the fleet (workers, accounts, queue depths), read from CCFLEET_REDIS_URL."""
    settings = Settings()
    url = settings.redis.effective_url()
    try:
        asyncio.run(_show_fleet(settings, watch=watch, interval_s=interval))
    except (RedisError, OSError, ValueError) as exc:
        typer.echo(f"ccfleet status: cannot read the fleet from {_shown_url(url)}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass  # how --watch ends


async def _show_fleet(settings: Settings, *, watch: bool, interval_s: float) -> None:
    heartbeat_ttl_s = settings.worker.heartbeat_ttl_s
    redis = redis_client(settings, timeout_s=_REDIS_TIMEOUT_S)
    try:
        snapshot = await read_fleet(redis, heartbeat_ttl_s=heartbeat_ttl_s)
        if not watch:
            Console().print(render_fleet(snapshot, now_s=time.time()))
            return
        with Live(render_fleet(snapshot, now_s=time.time()), auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval_s)
                snapshot = await read_fleet(redis, heartbeat_ttl_s=heartbeat_ttl_s)
                live.update(render_fleet(snapshot, now_s=time.time()), refresh=True)
    finally:
        await redis.aclose()


def _shown_url(url: str) -> str:
    """The Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


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
