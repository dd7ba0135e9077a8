"""Settings for every ccfleet process: pydantic-settings, each from a CCFLEET_ variable.

Each process builds one Settings object at its entry point and passes it down.
Nothing else in the code base reads the environment for ccfleet's own configuration.

Settings are grouped by what they are about (settings.redis.url, settings.worker.slots);
each field names its environment variable (its alias: CCFLEET_REDIS_URL,
CCFLEET_WORKER_SLOTS), as operators have always written it. Tests override settings by
those flat names, lower-case and without the prefix: Settings(redis_url=..., worker_slots=3)
puts each in its group; the environment fills the rest.

A CCFLEET_ variable that names no setting is refused when Settings is built (a typo must not
silently leave the default in force), naming the nearest valid name. The few CCFLEET_
variables that are not settings are listed in OTHER_VARIABLES, each with its reason.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CCFLEET_"

OTHER_VARIABLES = {
    "CCFLEET_URL": "`ccfleet batch`: the front end to talk to (ccfleet/batch_cli.py)",
    "CCFLEET_API_KEY": "`ccfleet batch`: the client key it sends (ccfleet/batch_cli.py)",
    "CCFLEET_REDIS_PASSWORD": "docker-compose.yml's .env: the password of its Redis",
    "CCFLEET_BIND_ADDRESS": "docker-compose.yml's .env: where the front ends publish",
    "CCFLEET_CLAUDE_CODE_VERSION": "tests/run.sh: the CLI version the suite runs against",
    "CCFLEET_TEST_CLAUDE_BIN": "tests/run.sh and tests/conftest.py: the CLI the tests run",
    "CCFLEET_TEST_CODEX_BIN": "tests/run.sh and tests/e2e/test_codex.py: the Codex CLI they run",
    "CCFLEET_TEST_DASHBOARD_SCREENSHOT": "tests/e2e/test_dashboard.py: where to save it",
    "CCFLEET_TEST_ROLE_FORKS": "tests/role_forks.py: 0 starts roles with python -m, not forks",
}
"""CCFLEET_ variables that are not settings, yet are set where ccfleet runs: allowed."""


class UnknownSetting(ValueError):
    """A CCFLEET_ environment variable that names no setting; the message says which, and
    the nearest valid name."""


class _Group(BaseSettings):
    """A group of settings, each read from the environment variable its alias names."""

    model_config = SettingsConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)


class RedisSettings(_Group):
    """Where Redis is, how long to wait for it, and how much of its memory requests may use."""

    url: str = Field(
        alias="CCFLEET_REDIS_URL",
        default="",
        description="Redis URL; empty: `ccfleet up` starts an embedded one, api/worker use "
        "`redis://127.0.0.1:6379`. A password: `redis://:PASSWORD@HOST:6379/0` (percent-escape "
        "`/ @ : %`); TLS: `rediss://…`, with `?ssl_ca_certs=/path/ca.pem` for a private CA "
        "(also `ssl_cert_reqs`, `ssl_certfile`, `ssl_keyfile`)",
    )
    sentinels: str = Field(
        alias="CCFLEET_REDIS_SENTINELS",
        default="",
        pattern=r"^$|^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$",
        description="Redis Sentinel: `host:port,host:port,…` of the sentinels; every client "
        "then finds the primary through them, and the new one after a failover. "
        "CCFLEET_REDIS_URL gives only the password, database and TLS (its host is not used); "
        "the sentinels take the same password and TLS",
    )
    sentinel_master: str = Field(
        alias="CCFLEET_REDIS_SENTINEL_MASTER",
        default="mymaster",
        min_length=1,
        description="the name the sentinels monitor the primary under",
    )
    outage_grace_s: float = Field(
        alias="CCFLEET_REDIS_OUTAGE_GRACE_S",
        default=5.0,
        ge=0,
        description="a Redis outage (a restart, a failover) this short is waited out: requests "
        "queued, streaming or arriving meanwhile complete; a longer one fails them with 529",
    )
    connect_timeout_s: float = Field(
        alias="CCFLEET_REDIS_CONNECT_TIMEOUT_S",
        default=5.0,
        gt=0,
        description="longest wait to connect to Redis",
    )
    command_timeout_s: float = Field(
        alias="CCFLEET_REDIS_COMMAND_TIMEOUT_S",
        default=10.0,
        gt=0,
        description="longest wait for one Redis command's reply",
    )
    health_check_s: float = Field(
        alias="CCFLEET_REDIS_HEALTH_CHECK_S",
        default=15.0,
        ge=0,
        description="a Redis connection idle this long is PINGed before it is used again",
    )
    memory_budget_bytes: int = Field(
        alias="CCFLEET_REDIS_MEMORY_BUDGET_BYTES",
        default=0,
        ge=0,
        description="a request or batch whose copies would push Redis's `used_memory` past "
        "this is 529 before it is queued; 0: 80 % of Redis's `maxmemory`, no check if Redis "
        "has none ([Sizing Redis](operations.md#sizing-redis))",
    )

    def effective_url(self) -> str:
        return self.url or "redis://127.0.0.1:6379"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels as (host, port); none: Redis is reached at its URL."""
        pairs = (entry.rsplit(":", 1) for entry in self.sentinels.split(",") if entry)
        return [(host, int(port)) for host, port in pairs]


class QueueSettings(_Group):
    """The job queue: its lanes' bounds and waits, and conversation affinity
    (shared/fleet/affinity.py)."""

    name: str = Field(
        alias="CCFLEET_QUEUE_NAME",
        default="ccfleet:queue:interactive",
        description="the arq queue (a Redis sorted set) every lane's jobs wait in; KEDA's "
        "scalers count it (k8s/)",
    )
    interactive_max_waiting: int = Field(
        alias="CCFLEET_INTERACTIVE_MAX_WAITING",
        default=1000,
        ge=1,
        description="jobs the interactive lane holds (529 beyond)",
    )
    batch_max_waiting: int = Field(
        alias="CCFLEET_BATCH_MAX_WAITING",
        default=100_000,
        ge=1,
        description="jobs the batch lane holds (batch requests wait)",
    )
    interactive_max_wait_s: float = Field(
        alias="CCFLEET_INTERACTIVE_MAX_WAIT_S",
        default=120.0,
        gt=0,
        description="longest an interactive job waits for a worker (529)",
    )
    batch_max_wait_s: float = Field(
        alias="CCFLEET_BATCH_MAX_WAIT_S",
        default=86_400.0,
        gt=0,
        description="longest a batch-lane job waits for a worker",
    )
    affinity_wait_ms: int = Field(
        alias="CCFLEET_AFFINITY_WAIT_MS",
        default=500,
        ge=0,
        description="head start of a conversation's account on its next turn; 0 turns affinity off",
    )
    affinity_ttl_s: int = Field(
        alias="CCFLEET_AFFINITY_TTL_S",
        default=3600,
        ge=1,
        description="how long a conversation's account is remembered",
    )
    account_policy: Literal["fill-first", "most-headroom"] = Field(
        alias="CCFLEET_ACCOUNT_POLICY",
        default="most-headroom",
        description="front end: which account a new conversation goes to; `fill-first` drains "
        "accounts in `CCFLEET_ACCOUNT_PRIORITY` order, `most-headroom` takes the least used "
        "(shared/fleet/account_policy.py)",
    )
    headroom_threshold: float = Field(
        alias="CCFLEET_HEADROOM_THRESHOLD",
        default=0.9,
        gt=0,
        le=1,
        description="front end: an account whose window is used past this takes no new "
        "conversations while another has room",
    )


class JobSettings(_Group):
    """One job: its time limit, its runs and attempts."""

    timeout_s: float = Field(
        alias="CCFLEET_JOB_TIMEOUT_S", default=600.0, gt=0, description="hard limit for one CLI run"
    )
    max_tries: int = Field(
        alias="CCFLEET_JOB_MAX_TRIES",
        default=2,
        ge=1,
        description="arq runs of one attempt (a re-run after a worker crash)",
    )
    max_attempts: int = Field(
        alias="CCFLEET_JOB_MAX_ATTEMPTS",
        default=4,
        ge=1,
        description="attempts of one job across accounts (limits, 5xx, 529)",
    )
    retry_backoff_s: float = Field(
        alias="CCFLEET_RETRY_BACKOFF_S",
        default=0.5,
        ge=0,
        description="first backoff before retrying a transient error",
    )
    first_byte_timeout_s: float = Field(
        alias="CCFLEET_FIRST_BYTE_TIMEOUT_S",
        default=60.0,
        gt=0,
        description="upstream silent this long after the CLI's request: the attempt is "
        "abandoned and the job re-runs on another account (if nothing was streamed)",
    )


class JournalSettings(_Group):
    """A job's journal of chunks: how long it is kept, how big it may grow, how often a
    quiet relay reads it."""

    ttl_s: int = Field(
        alias="CCFLEET_JOURNAL_TTL_S",
        default=3600,
        ge=1,
        description="how long a finished job's chunks and record are kept (resumes with "
        "`Last-Event-ID`). Until it ends, a job's record and chunks live as long as it may "
        "wait (its lane's longest wait) and run (`CCFLEET_JOB_TIMEOUT_S`), whatever this says",
    )
    max_chunks: int = Field(
        alias="CCFLEET_JOURNAL_MAX_CHUNKS",
        default=200_000,
        description="a job's journal keeps about this many of its latest chunks (older ones "
        "are trimmed)",
    )
    max_bytes: int = Field(
        alias="CCFLEET_JOURNAL_MAX_BYTES",
        default=16 * 1024 * 1024,
        ge=1024,
        description="an answer whose journal would grow past this (16 MiB) fails (`api_error`)",
    )
    check_s: float = Field(
        alias="CCFLEET_JOURNAL_CHECK_S",
        default=1.0,
        gt=0,
        description="how often a quiet relay checks on its job",
    )


class WorkerSettings(_Group):
    """A worker: its account, slots, polling, heartbeat, files and draining."""

    slots: int = Field(
        alias="CCFLEET_WORKER_SLOTS",
        default=2,
        ge=1,
        description="concurrent CLI processes per worker",
    )
    account: str = Field(
        alias="CCFLEET_ACCOUNT",
        default="default",
        description="label of this worker's Claude account",
    )
    poll_delay_s: float = Field(
        alias="CCFLEET_WORKER_POLL_DELAY_S",
        default=1.0,
        gt=0,
        description="longest an idle worker goes without reading the queue; queued jobs, "
        "cancels and freed slots wake it at once",
    )
    wake_on_queue: bool = Field(
        alias="CCFLEET_WORKER_WAKE_ON_QUEUE",
        default=True,
        description="wake idle workers by pub/sub; `false`: find work only by reading the queue "
        "every poll delay",
    )
    drain_s: float = Field(
        alias="CCFLEET_WORKER_DRAIN_S",
        default=300.0,
        ge=0,
        description="SIGTERM: time a worker's running jobs get",
    )
    reserved_interactive_slots: int = Field(
        alias="CCFLEET_RESERVED_INTERACTIVE_SLOTS",
        default=1,
        ge=0,
        description="slots per worker batch work may not take",
    )
    work_root: str = Field(
        alias="CCFLEET_WORK_ROOT",
        default="",
        description="private (0700) directory for each worker's directory and each CLI run's "
        "working directory, TMPDIR and HOME (an emptyDir on Kubernetes); empty: "
        "`~/.cache/ccfleet/work`. Never a directory others can write to, nor below one: the "
        "CLI reads instruction files from its working directory's parents",
    )
    work_sweep_interval_s: float = Field(
        alias="CCFLEET_WORK_SWEEP_INTERVAL_S",
        default=60.0,
        gt=0,
        description="how often a worker removes the directories of dead workers (also done "
        "at start)",
    )
    heartbeat_interval_s: float = Field(
        alias="CCFLEET_HEARTBEAT_INTERVAL_S",
        default=2.0,
        gt=0,
        description="how often a worker writes its heartbeat",
    )
    heartbeat_ttl_s: float = Field(
        alias="CCFLEET_HEARTBEAT_TTL_S",
        default=10.0,
        gt=0,
        description="a worker whose heartbeat is older counts as gone (one whose process "
        "died, at once: its life line); `/ready` needs one younger than this. Keep it longer "
        "than `CCFLEET_REDIS_OUTAGE_GRACE_S` plus the interval",
    )
    metrics_port: int = Field(
        alias="CCFLEET_METRICS_PORT",
        default=0,
        ge=0,
        description="worker: serve `/metrics` on this port (0: not at all)",
    )
    metrics_host: str = Field(
        alias="CCFLEET_METRICS_HOST",
        default="127.0.0.1",
        description="worker: the address its `/metrics` binds; the metrics name keys and "
        "accounts, so loopback unless the scraper is elsewhere (`0.0.0.0` in a pod)",
    )
    account_monthly_usd: float = Field(
        alias="CCFLEET_ACCOUNT_MONTHLY_USD",
        default=0.0,
        ge=0,
        description="worker: its account cools once its month's spend reaches this (0: no budget)",
    )
    account_priority: int = Field(
        alias="CCFLEET_ACCOUNT_PRIORITY",
        default=0,
        description="worker: its account's place in the drain order of `fill-first` (lower first)",
    )
    models_refresh_s: float = Field(
        alias="CCFLEET_MODELS_REFRESH_S",
        default=3600.0,
        gt=0,
        description="API-key workers: how often they read upstream's model list (`GET "
        "/v1/models` on their `ANTHROPIC_BASE_URL`) and publish it to Redis (kept three "
        "periods)",
    )

    def effective_work_root(self) -> str:
        return self.work_root or str(Path.home() / ".cache" / "ccfleet" / "work")


class CliSettings(_Group):
    """The claude CLI a worker runs."""

    claude_bin: str = Field(
        alias="CCFLEET_CLAUDE_BIN", default="claude", description="the CLI, path or name on PATH"
    )
    kill_grace_s: float = Field(
        alias="CCFLEET_KILL_GRACE_S",
        default=0.5,
        ge=0,
        description="SIGTERM → SIGKILL grace for the CLI",
    )
    check_interval_s: float = Field(
        alias="CCFLEET_CLI_CHECK_INTERVAL_S",
        default=300.0,
        gt=0,
        description="how often a worker checks its CLI runs and is logged in (also at start)",
    )


class PrewarmSettings(_Group):
    """Ready CLIs a worker keeps started for the request shapes most asked for."""

    clis: int = Field(
        alias="CCFLEET_PREWARM_CLIS",
        default=2,
        ge=0,
        description="ready CLIs a worker keeps for the request shapes most asked for lately "
        "(~150-190 MB each); 0: every CLI starts cold",
    )
    idle_s: float = Field(
        alias="CCFLEET_PREWARM_IDLE_S",
        default=600.0,
        gt=0,
        description="a ready CLI unused this long is replaced",
    )
    demand_window_s: float = Field(
        alias="CCFLEET_PREWARM_DEMAND_WINDOW_S",
        default=900.0,
        gt=0,
        description="requests this recent decide which shapes are kept ready",
    )


class ResidentSettings(_Group):
    """CLIs that stay alive after a turn, holding their conversation for its next turn."""

    max: int = Field(
        alias="CCFLEET_RESIDENT_MAX",
        default=4,
        ge=0,
        description="CLIs a worker keeps holding a conversation for its next turn (~150-250 MB "
        "each), the least recently used stopped first; 0: every turn replays its history",
    )
    idle_s: float = Field(
        alias="CCFLEET_RESIDENT_IDLE_S",
        default=300.0,
        gt=0,
        description="a resident CLI whose conversation has no next turn this long is stopped",
    )


class ApiSettings(_Group):
    """A front end: where it listens, what it accepts, how it streams and drains."""

    host: str = Field(
        alias="CCFLEET_HOST",
        default="127.0.0.1",
        description="`ccfleet api`: the address to bind (`--host` wins)",
    )
    port: int = Field(
        alias="CCFLEET_PORT",
        default=8080,
        description="`ccfleet api`: the port to bind (`--port` wins)",
    )
    header_timeout_s: float = Field(
        alias="CCFLEET_HEADER_TIMEOUT_S",
        default=10.0,
        gt=0,
        description="a connection must send a request's headers within this long, or it is "
        "closed (a slow client cannot hold a front end)",
    )
    max_connections: int = Field(
        alias="CCFLEET_MAX_CONNECTIONS",
        default=2000,
        ge=1,
        description="open connections one front end serves; a request on one beyond gets 503 "
        "`overloaded_error` (each stream holds one while it lasts)",
    )
    ping_interval_s: float = Field(
        alias="CCFLEET_PING_INTERVAL_S",
        default=10.0,
        gt=0,
        description="SSE `ping` events while a stream waits",
    )
    max_body_bytes: int = Field(
        alias="CCFLEET_MAX_BODY_BYTES",
        default=32 * 1024 * 1024,
        description="largest request body (413 beyond); batch creation has its own limit",
    )
    max_tokens_limit: int = Field(
        alias="CCFLEET_MAX_TOKENS_LIMIT",
        default=128_000,
        ge=1,
        description="largest `max_tokens` accepted (400 beyond)",
    )
    allowed_hosts: list[str] = Field(
        alias="CCFLEET_ALLOWED_HOSTS",
        default=[],
        description="JSON list of the host names clients reach a front end by, besides "
        "`localhost`, `127.0.0.1`, `::1` and CCFLEET_PUBLIC_URL's (a Service's, an ingress's); "
        'another `Host` is 400. `["*"]`: any (then only client keys protect the API)',
    )
    cors_origins: list[str] = Field(
        alias="CCFLEET_CORS_ORIGINS",
        default=[],
        description="JSON list of the origins (`https://app.example`) whose web pages may call "
        "the API; a request with another `Origin` (not the front end's own) is 403",
    )
    resume_window_max_s: float = Field(
        alias="CCFLEET_RESUME_WINDOW_MAX_S",
        default=60.0,
        ge=0,
        description="longest `x-ccfleet-resume-window` honoured",
    )
    drain_timeout_s: float = Field(
        alias="CCFLEET_DRAIN_TIMEOUT_S",
        default=30.0,
        ge=0,
        description="SIGTERM: time a front end's streams get",
    )
    send_timeout_s: float = Field(
        alias="CCFLEET_SEND_TIMEOUT_S",
        default=30.0,
        gt=0,
        description="a streaming client that reads nothing this long is dropped and its job "
        "cancelled",
    )
    responses_ttl_s: int = Field(
        alias="CCFLEET_RESPONSES_TTL_S",
        default=86400,
        ge=1,
        description="how long a stored `/v1/responses` response and its input are kept "
        "(`store`, `previous_response_id`, `GET /v1/responses/{id}`)",
    )
    dashboard_interval_s: float = Field(
        alias="CCFLEET_DASHBOARD_INTERVAL_S",
        default=1.0,
        gt=0,
        description="dashboard: time between snapshots",
    )
    dashboard_stream_s: float = Field(
        alias="CCFLEET_DASHBOARD_STREAM_S",
        default=15.0,
        gt=0,
        description="dashboard: life of one event stream (the page reconnects)",
    )
    # GET /v1/models; ids and aliases the claude CLI accepts. The current models, none
    # deprecated (checked 2026-11-29 against Anthropic's models overview and deprecations
    # pages). Where an API-key worker publishes upstream's own list
    # (worker/upstream_models.py), that list is served first and these ids after it.
    models: list[str] = Field(
        alias="CCFLEET_MODELS",
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


class AccessSettings(_Group):
    """Client keys (README "Client keys"): HMACs keyed by auth_secret, never the secrets."""

    auth: Literal["on", "off"] | None = Field(
        alias="CCFLEET_AUTH",
        default=None,
        description="`off`: no client keys; unset means on (`ccfleet up` on loopback "
        "defaults to `off`)",
    )
    auth_secret: SecretStr = Field(
        alias="CCFLEET_AUTH_SECRET",
        default=SecretStr(""),
        description="server secret keying the client keys' hashes, ≥ 32 characters; needed "
        "while auth is on",
    )
    usage_retention_days: int = Field(
        alias="CCFLEET_USAGE_RETENTION_DAYS", default=400, ge=1, description="days of ledger kept"
    )

    @property
    def auth_enabled(self) -> bool:
        return self.auth != "off"


class BatchSettings(_Group):
    """The Message Batches API."""

    expiry_s: float = Field(
        alias="CCFLEET_BATCH_EXPIRY_S",
        default=86_400.0,
        gt=0,
        description="a batch's requests not finished this long after creation are `expired`",
    )
    retention_s: float = Field(
        alias="CCFLEET_BATCH_RETENTION_S",
        default=29 * 86_400.0,
        gt=0,
        description="how long an ended batch and its results are kept (29 days); then 404",
    )
    max_body_bytes: int = Field(
        alias="CCFLEET_BATCH_MAX_BODY_BYTES",
        default=256 * 1024 * 1024,
        description="largest batch create body (413 beyond)",
    )
    public_url: str = Field(
        alias="CCFLEET_PUBLIC_URL",
        default="",
        description="base of a batch's `results_url`; empty: the base URL of the request that "
        "reads the batch",
    )
    check_s: float = Field(
        alias="CCFLEET_BATCH_CHECK_S",
        default=1.0,
        gt=0,
        description="how often a worker feeds the batch lane and one worker checks open batches",
    )


class LogSettings(_Group):
    """What every process logs."""

    level: str = Field(
        alias="CCFLEET_LOG_LEVEL",
        default="INFO",
        description="JSON log lines on stderr, with request and job ids",
    )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis: RedisSettings = Field(default_factory=RedisSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    cli: CliSettings = Field(default_factory=CliSettings)
    prewarm: PrewarmSettings = Field(default_factory=PrewarmSettings)
    resident: ResidentSettings = Field(default_factory=ResidentSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    def __init__(self, **values: Any) -> None:
        """`values` override the environment, by flat name (Settings(worker_slots=3)) or by
        group (Settings(worker={"slots": 3}))."""
        refuse_unknown_variables(os.environ)
        super().__init__(**values)

    @model_validator(mode="before")
    @classmethod
    def _flat_names_into_groups(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        flat = flat_names()
        grouped: dict[str, Any] = {
            k: dict(v) if isinstance(v, dict) else v for k, v in values.items() if k not in flat
        }
        for name, value in values.items():
            if name in flat:
                group, field = flat[name]
                grouped.setdefault(group, {})[field] = value
        return grouped


@cache
def flat_names() -> dict[str, tuple[str, str]]:
    """(group, field) by flat name, the variable's name without the prefix in lower case
    ("worker_slots": ("worker", "slots"))."""
    return {
        variable.removeprefix(ENV_PREFIX).lower(): (group, name)
        for group, name, variable, _field in _fields()
    }


def setting_fields() -> list[tuple[str, FieldInfo]]:
    """Every setting's environment variable and field (default, description), group by group."""
    return [(variable, field) for _group, _name, variable, field in _fields()]


def setting_names() -> list[str]:
    """The environment variable of every setting, as an operator writes it."""
    return [variable for variable, _field in setting_fields()]


def _fields() -> list[tuple[str, str, str, FieldInfo]]:
    """(group, field name, variable, field) of every setting, in the order of the groups."""
    found = []
    for group, slot in Settings.model_fields.items():
        model = slot.default_factory
        assert isinstance(model, type) and issubclass(model, _Group)
        for name, field in model.model_fields.items():
            assert field.alias is not None, f"{group}.{name} names its variable"
            found.append((group, name, field.alias, field))
    return found


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
    return f"unknown setting {name}; the settings are listed in docs/configuration.md."
