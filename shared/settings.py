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
        description="Redis to use; empty means `ccfleet up` starts an embedded one "
        "(api and worker fall back to redis://127.0.0.1:6379).",
    )
    queue_name: str = "ccfleet:queue:interactive"

    # worker
    claude_bin: str = Field(
        default="claude", description="The claude CLI, a path or a name on PATH."
    )
    worker_slots: int = Field(default=2, ge=1, description="Concurrent CLI processes per worker.")
    account: str = Field(default="default", description="Label of this worker's Claude account.")
    worker_poll_delay_s: float = Field(
        default=1.0,
        gt=0,
        description="Longest an idle worker waits between queue reads; a queued job, a cancel "
        "or a freed slot wakes it at once.",
    )
    worker_wake_on_queue: bool = Field(
        default=True,
        description="Wake idle workers by pub/sub when a job is queued; off, they find work "
        "only by reading the queue every CCFLEET_WORKER_POLL_DELAY_S.",
    )
    job_timeout_s: float = Field(default=600.0, gt=0, description="Hard limit for one CLI run.")
    kill_grace_s: float = Field(default=0.5, ge=0, description="SIGTERM to SIGKILL grace.")
    job_max_tries: int = Field(
        default=2, ge=1, description="arq runs of one attempt (a re-run after a crash)."
    )
    job_max_attempts: int = Field(
        default=4, ge=1, description="Attempts of one job across accounts (limits, 5xx, 529)."
    )
    retry_backoff_s: float = Field(default=0.5, ge=0, description="Backoff before a retry.")
    reserved_interactive_slots: int = Field(
        default=1, ge=0, description="Slots per worker that batch jobs may not take."
    )
    worker_drain_s: float = Field(
        default=300.0, ge=0, description="SIGTERM: time running jobs get to finish."
    )
    work_root: str = Field(
        default="",
        description="Private dir (0700) for worker and job dirs; empty: ~/.cache/ccfleet/work. "
        "Never the shared temp dir: the CLI reads CLAUDE.md from every parent of its cwd.",
    )
    work_sweep_interval_s: float = Field(
        default=60.0, gt=0, description="How often a worker removes dead workers' files."
    )
    prewarm_clis: int = Field(
        default=2,
        ge=0,
        description="Ready CLI processes a worker keeps for the request shapes most asked for "
        "lately (each holds ~190 MB); 0 starts every CLI cold.",
    )
    prewarm_idle_s: float = Field(
        default=600.0, gt=0, description="A ready CLI unused this long is replaced."
    )
    prewarm_demand_window_s: float = Field(
        default=900.0, gt=0, description="Requests this recent decide which shapes are kept ready."
    )
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    heartbeat_ttl_s: float = Field(default=10.0, gt=0)
    cli_check_interval_s: float = Field(
        default=300.0, gt=0, description="How often a worker checks its CLI runs and is logged in."
    )
    models_refresh_s: float = Field(
        default=3600.0, gt=0, description="API-key workers: how often upstream's models are read."
    )

    # api
    host: str = "127.0.0.1"
    port: int = 8080
    ping_interval_s: float = Field(default=10.0, gt=0, description="SSE ping events while waiting.")
    journal_check_s: float = Field(
        default=1.0, gt=0, description="How often a waiting relay re-reads the job journal."
    )
    max_body_bytes: int = 32 * 1024 * 1024
    max_tokens_limit: int = Field(
        default=128_000, ge=1, description="Largest `max_tokens` accepted (400 beyond)."
    )
    redis_memory_budget_bytes: int = Field(
        default=0,
        ge=0,
        description="Redis memory a new request may not push past (529); 0: 80 % of Redis's "
        "maxmemory, or no check when Redis has none.",
    )
    interactive_max_waiting: int = Field(default=1000, ge=1, description="Queue bound.")
    batch_max_waiting: int = Field(default=100_000, ge=1, description="Queue bound.")
    interactive_max_wait_s: float = Field(
        default=120.0, gt=0, description="Longest wait for a worker before 529."
    )
    batch_max_wait_s: float = Field(default=86_400.0, gt=0)
    resume_window_max_s: float = Field(
        default=60.0, ge=0, description="Longest a job may outlive its client for a resume."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="SIGTERM: time to finish streams."
    )
    send_timeout_s: float = Field(
        default=30.0, gt=0, description="A stream client that reads nothing this long is dropped."
    )

    dashboard_interval_s: float = Field(
        default=1.0, gt=0, description="GET /dashboard: how often the page gets a snapshot."
    )
    dashboard_stream_s: float = Field(
        default=15.0, gt=0, description="GET /dashboard: one stream's life; the page reconnects."
    )

    # access (README "Client keys"): keys are HMACs keyed by auth_secret, never the secrets
    auth: Literal["on", "off"] | None = Field(
        default=None,
        description="Client keys required; unset means on (`ccfleet up` on loopback: off).",
    )
    auth_secret: SecretStr = Field(
        default=SecretStr(""), description="Server secret keying the client keys' hashes."
    )
    metrics_port: int = Field(
        default=0, ge=0, description="Worker: serve /metrics on this port; 0: not at all."
    )
    account_monthly_usd: float = Field(
        default=0.0, ge=0, description="Worker: the account cools once its month reaches this."
    )
    usage_retention_days: int = Field(default=400, ge=1, description="Ledger days kept.")

    # both: conversation affinity (shared/fleet/affinity.py)
    affinity_wait_ms: int = Field(
        default=500,
        ge=0,
        description="Head start a conversation's account gets on its next turn; 0: no affinity.",
    )
    affinity_ttl_s: int = Field(
        default=3600, ge=1, description="How long a conversation's account is remembered."
    )

    # batches (the Message Batches API)
    batch_expiry_s: float = Field(
        default=86_400.0, gt=0, description="A batch's requests unfinished this long: expired."
    )
    batch_retention_s: float = Field(
        default=29 * 86_400.0, gt=0, description="How long an ended batch and its results stay."
    )
    batch_max_body_bytes: int = 256 * 1024 * 1024
    public_url: str = Field(
        default="", description="Base of `results_url`; empty: the request's own base URL."
    )
    batch_check_s: float = Field(
        default=1.0, gt=0, description="How often a worker feeds and checks batch requests."
    )

    # both
    redis_outage_s: float = Field(
        default=30.0, ge=0, description="How long a Redis outage is waited out before failing."
    )
    redis_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait to connect to Redis."
    )
    redis_command_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for one Redis command's reply."
    )
    redis_health_check_s: float = Field(
        default=15.0, ge=0, description="A connection idle this long is PINGed before reuse."
    )
    journal_ttl_s: int = Field(
        default=3600, ge=1, description="How long a finished job's chunks and record are kept."
    )
    journal_max_chunks: int = 200_000
    journal_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="An answer's journal beyond: error."
    )
    log_level: str = "INFO"

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
        description="Model ids listed by GET /v1/models.",
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
