"""Settings for every ccfleet process: pydantic-settings with the CCFLEET_ prefix.

Each process builds one Settings object at its entry point and passes it down.
Nothing else in the code base reads the environment for ccfleet's own configuration.

A CCFLEET_ variable that names no setting is refused when Settings is built (a typo must not
silently leave the default in force), naming the nearest valid name. The few CCFLEET_
variables that are not settings are listed in OTHER_VARIABLES, each with its reason.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CCFLEET_"

OTHER_VARIABLES = {
    "CCFLEET_URL": "`ccfleet batch`: the front end to talk to (ccfleet/batch_cli.py)",
    "CCFLEET_API_KEY": "`ccfleet batch`: the client key it sends (ccfleet/batch_cli.py)",
    "CCFLEET_REDIS_PASSWORD": "docker-compose.yml's .env: the password of its Redis",
    "CCFLEET_BIND_ADDRESS": "docker-compose.yml's .env: where the front ends publish",
    "CCFLEET_CLAUDE_CODE_VERSION": "tests/run.sh: the CLI version the suite runs against",
    "CCFLEET_TEST_CLAUDE_BIN": "tests/run.sh and tests/conftest.py: the CLI the tests run",
    "CCFLEET_TEST_DASHBOARD_SCREENSHOT": "tests/e2e/test_dashboard.py: where to save it",
}
"""CCFLEET_ variables that are not settings, yet are set where ccfleet runs: allowed."""


class UnknownSetting(ValueError):
    """A CCFLEET_ environment variable that names no setting; the message says which, and
    the nearest valid name."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    def __init__(self, **values: Any) -> None:
        """`values` override the environment (tests: Settings(worker_slots=3))."""
        refuse_unknown_variables(os.environ)
        super().__init__(**values)

    redis_url: str = Field(
        default="",
        description="Redis URL; empty: `ccfleet up` starts an embedded one, api/worker use "
        "`redis://127.0.0.1:6379`. A password: `redis://:PASSWORD@HOST:6379/0` (percent-escape "
        "`/ @ : %`); TLS: `rediss://…`, with `?ssl_ca_certs=/path/ca.pem` for a private CA "
        "(also `ssl_cert_reqs`, `ssl_certfile`, `ssl_keyfile`)",
    )
    queue_name: str = Field(
        default="ccfleet:queue:interactive",
        description="the arq queue (a Redis sorted set) every lane's jobs wait in; KEDA's "
        "scalers count it (k8s/)",
    )

    # worker
    claude_bin: str = Field(default="claude", description="the CLI, path or name on PATH")
    worker_slots: int = Field(default=2, ge=1, description="concurrent CLI processes per worker")
    account: str = Field(default="default", description="label of this worker's Claude account")
    worker_poll_delay_s: float = Field(
        default=1.0,
        gt=0,
        description="longest an idle worker goes without reading the queue; queued jobs, "
        "cancels and freed slots wake it at once",
    )
    worker_wake_on_queue: bool = Field(
        default=True,
        description="wake idle workers by pub/sub; `false`: find work only by reading the queue "
        "every poll delay",
    )
    job_timeout_s: float = Field(default=600.0, gt=0, description="hard limit for one CLI run")
    kill_grace_s: float = Field(
        default=0.5, ge=0, description="SIGTERM → SIGKILL grace for the CLI"
    )
    job_max_tries: int = Field(
        default=2, ge=1, description="arq runs of one attempt (a re-run after a worker crash)"
    )
    job_max_attempts: int = Field(
        default=4, ge=1, description="attempts of one job across accounts (limits, 5xx, 529)"
    )
    retry_backoff_s: float = Field(
        default=0.5, ge=0, description="first backoff before retrying a transient error"
    )
    reserved_interactive_slots: int = Field(
        default=1, ge=0, description="slots per worker batch work may not take"
    )
    worker_drain_s: float = Field(
        default=300.0, ge=0, description="SIGTERM: time a worker's running jobs get"
    )
    work_root: str = Field(
        default="",
        description="private (0700) directory for each worker's directory and each CLI run's "
        "working directory, TMPDIR and HOME (an emptyDir on Kubernetes); empty: "
        "`~/.cache/ccfleet/work`. Never a directory others can write to, nor below one: the "
        "CLI reads instruction files from its working directory's parents",
    )
    work_sweep_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="how often a worker removes the directories of dead workers (also done "
        "at start)",
    )
    prewarm_clis: int = Field(
        default=2,
        ge=0,
        description="ready CLIs a worker keeps for the request shapes most asked for lately "
        "(~150-190 MB each); 0: every CLI starts cold",
    )
    prewarm_idle_s: float = Field(
        default=600.0, gt=0, description="a ready CLI unused this long is replaced"
    )
    prewarm_demand_window_s: float = Field(
        default=900.0, gt=0, description="requests this recent decide which shapes are kept ready"
    )
    heartbeat_interval_s: float = Field(
        default=2.0, gt=0, description="how often a worker writes its heartbeat"
    )
    heartbeat_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="a worker whose heartbeat is older counts as gone; `/ready` needs one "
        "younger than this",
    )
    cli_check_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="how often a worker checks its CLI runs and is logged in (also at start)",
    )
    models_refresh_s: float = Field(
        default=3600.0,
        gt=0,
        description="API-key workers: how often they read upstream's model list (`GET "
        "/v1/models` on their `ANTHROPIC_BASE_URL`) and publish it to Redis (kept three "
        "periods)",
    )

    # api
    host: str = Field(
        default="127.0.0.1", description="`ccfleet api`: the address to bind (`--host` wins)"
    )
    port: int = Field(default=8080, description="`ccfleet api`: the port to bind (`--port` wins)")
    ping_interval_s: float = Field(
        default=10.0, gt=0, description="SSE `ping` events while a stream waits"
    )
    journal_check_s: float = Field(
        default=1.0, gt=0, description="how often a quiet relay checks on its job"
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        description="largest request body (413 beyond); batch creation has its own limit",
    )
    max_tokens_limit: int = Field(
        default=128_000, ge=1, description="largest `max_tokens` accepted (400 beyond)"
    )
    redis_memory_budget_bytes: int = Field(
        default=0,
        ge=0,
        description="a request or batch whose copies would push Redis's `used_memory` past "
        "this is 529 before it is queued; 0: 80 % of Redis's `maxmemory`, no check if Redis "
        "has none (Sizing Redis)",
    )
    interactive_max_waiting: int = Field(
        default=1000, ge=1, description="jobs the interactive lane holds (529 beyond)"
    )
    batch_max_waiting: int = Field(
        default=100_000, ge=1, description="jobs the batch lane holds (batch requests wait)"
    )
    interactive_max_wait_s: float = Field(
        default=120.0, gt=0, description="longest an interactive job waits for a worker (529)"
    )
    batch_max_wait_s: float = Field(
        default=86_400.0, gt=0, description="longest a batch-lane job waits for a worker"
    )
    resume_window_max_s: float = Field(
        default=60.0, ge=0, description="longest `x-ccfleet-resume-window` honoured"
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="SIGTERM: time a front end's streams get"
    )
    send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a streaming client that reads nothing this long is dropped and its job "
        "cancelled",
    )

    dashboard_interval_s: float = Field(
        default=1.0, gt=0, description="dashboard: time between snapshots"
    )
    dashboard_stream_s: float = Field(
        default=15.0, gt=0, description="dashboard: life of one event stream (the page reconnects)"
    )

    # access (README "Client keys"): keys are HMACs keyed by auth_secret, never the secrets
    auth: Literal["on", "off"] | None = Field(
        default=None,
        description="`off`: no client keys; unset means on (`ccfleet up` on loopback "
        "defaults to `off`)",
    )
    auth_secret: SecretStr = Field(
        default=SecretStr(""),
        description="server secret keying the client keys' hashes, ≥ 32 characters; needed "
        "while auth is on",
    )
    metrics_port: int = Field(
        default=0, ge=0, description="worker: serve `/metrics` on this port (0: not at all)"
    )
    account_monthly_usd: float = Field(
        default=0.0,
        ge=0,
        description="worker: its account cools once its month's spend reaches this (0: no budget)",
    )
    usage_retention_days: int = Field(default=400, ge=1, description="days of ledger kept")

    # both: conversation affinity (shared/fleet/affinity.py)
    affinity_wait_ms: int = Field(
        default=500,
        ge=0,
        description="head start of a conversation's account on its next turn; 0 turns affinity off",
    )
    affinity_ttl_s: int = Field(
        default=3600, ge=1, description="how long a conversation's account is remembered"
    )

    # batches (the Message Batches API)
    batch_expiry_s: float = Field(
        default=86_400.0,
        gt=0,
        description="a batch's requests not finished this long after creation are `expired`",
    )
    batch_retention_s: float = Field(
        default=29 * 86_400.0,
        gt=0,
        description="how long an ended batch and its results are kept (29 days); then 404",
    )
    batch_max_body_bytes: int = Field(
        default=256 * 1024 * 1024, description="largest batch create body (413 beyond)"
    )
    public_url: str = Field(
        default="",
        description="base of a batch's `results_url`; empty: the base URL of the request that "
        "reads the batch",
    )
    batch_check_s: float = Field(
        default=1.0,
        gt=0,
        description="how often a worker feeds the batch lane and one worker checks open batches",
    )

    # both
    redis_outage_s: float = Field(
        default=30.0,
        ge=0,
        description="how long a Redis outage is waited out before a request fails",
    )
    redis_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="longest wait to connect to Redis"
    )
    redis_command_timeout_s: float = Field(
        default=10.0, gt=0, description="longest wait for one Redis command's reply"
    )
    redis_health_check_s: float = Field(
        default=15.0,
        ge=0,
        description="a Redis connection idle this long is PINGed before it is used again",
    )
    journal_ttl_s: int = Field(
        default=3600,
        ge=1,
        description="how long a finished job's chunks and record are kept (resumes with "
        "`Last-Event-ID`). Until it ends, a job's record and chunks live as long as it may "
        "wait (its lane's longest wait) and run (`CCFLEET_JOB_TIMEOUT_S`), whatever this says",
    )
    journal_max_chunks: int = Field(
        default=200_000,
        description="a job's journal keeps about this many of its latest chunks (older ones "
        "are trimmed)",
    )
    journal_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="an answer whose journal would grow past this (16 MiB) fails (`api_error`)",
    )
    log_level: str = Field(
        default="INFO", description="JSON log lines on stderr, with request and job ids"
    )

    # api: GET /v1/models (JSON list in CCFLEET_MODELS); ids and aliases the claude CLI accepts.
    # The current models, none deprecated (checked 2026-11-29 against Anthropic's models
    # overview and deprecations pages). Where an API-key worker publishes upstream's own list
    # (worker/upstream_models.py), that list is served first and these ids after it.
    models: list[str] = Field(
        default=[
            "claude-opus-5-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
            "claude-fable-5-2",
            "opus",
            "sonnet",
            "haiku",
            "fable",
        ],
        min_length=1,
        description="JSON list served by `/v1/models` (after upstream's own list, when an "
        "API-key worker published one): the current models and the CLI's aliases",
    )

    @property
    def auth_enabled(self) -> bool:
        return self.auth != "off"

    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379"

    def effective_work_root(self) -> str:
        return self.work_root or str(Path.home() / ".cache" / "ccfleet" / "work")


def setting_names() -> list[str]:
    """The environment variable of every setting, as an operator writes it."""
    return [ENV_PREFIX + name.upper() for name in Settings.model_fields]


def refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """UnknownSetting for each CCFLEET_ variable (any case, as pydantic-settings reads them)
    that is neither a setting nor one of OTHER_VARIABLES."""
    known = [*setting_names(), *OTHER_VARIABLES]
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )
    if unknown:
        raise UnknownSetting("\n".join(_unknown_message(name, known) for name in unknown))


def _unknown_message(name: str, known: list[str]) -> str:
    # Compared without the prefix every name shares, which would make any two look alike.
    suffixes = {k.removeprefix(ENV_PREFIX): k for k in known}
    nearest = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), suffixes, n=1)
    if nearest:
        return f"unknown setting {name}; did you mean {suffixes[nearest[0]]}?"
    return f"unknown setting {name}; the settings are listed in README.md, Configuration."
