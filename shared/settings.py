"""Settings for every ccfleet process: pydantic-settings with the CCFLEET_ prefix.

Each process builds one Settings object at its entry point and passes it down.
Nothing else in the code base reads the environment for ccfleet's own configuration.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCFLEET_", extra="ignore")

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
    worker_poll_delay_s: float = Field(default=0.01, gt=0)
    job_timeout_s: float = Field(default=600.0, gt=0, description="Hard limit for one CLI run.")
    kill_grace_s: float = Field(default=0.5, ge=0, description="SIGTERM to SIGKILL grace.")
    job_max_tries: int = Field(default=3, ge=1)
    work_root: str = Field(default="", description="Where per-job dirs go; empty: system temp.")
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    heartbeat_ttl_s: float = Field(default=10.0, gt=0)

    # api
    host: str = "127.0.0.1"
    port: int = 8080
    ping_interval_s: float = Field(default=10.0, gt=0, description="SSE ping events while waiting.")
    journal_check_s: float = Field(
        default=1.0, gt=0, description="How often a waiting relay re-reads the job journal."
    )
    max_body_bytes: int = 32 * 1024 * 1024
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="SIGTERM: time to finish streams."
    )

    # both
    journal_ttl_s: int = Field(default=3600, ge=60, description="How long a job's chunks are kept.")
    journal_max_chunks: int = 200_000
    log_level: str = "INFO"

    # api: GET /v1/models (JSON list in CCFLEET_MODELS); ids and aliases the claude CLI accepts
    models: list[str] = Field(
        default=[
            "claude-opus-4-1",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
            "opus",
            "sonnet",
            "haiku",
        ],
        min_length=1,
        description="Model ids listed by GET /v1/models.",
    )

    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379"
