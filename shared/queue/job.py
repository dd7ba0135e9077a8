"""What travels from front ends to workers: the job and its attempts."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from shared.fleet.lanes import Lane
from shared.wire.messages import MessagesRequest

RUN_MESSAGES_JOB = "run_messages"
"""Name of the arq job function that answers a Messages request."""


class BatchItem(BaseModel):
    """Which request of which message batch a job answers."""

    batch_id: str
    index: int
    custom_id: str


class JobRequest(BaseModel):
    """The arq job payload (sent as JSON). One ccfleet job may take several attempts
    (each its own arq job); its chunks, journal and record are keyed by `job_id`."""

    job_id: str
    request_id: str
    request: MessagesRequest
    enqueued_at_ms: int
    lane: Lane = "interactive"
    priority_ms: int = 0
    attempt: int = 1
    avoid_accounts: list[str] = Field(default_factory=list)
    client_key: str | None = None  # the name of the client key it was sent with
    # A head start for one account's workers until this time (shared/fleet/affinity.py).
    prefer_account: str = ""
    prefer_until_ms: int = 0
    prefer_worker: str = ""  # the worker holding the conversation: it goes first, until then
    # The conversation its client named (a Responses prompt_cache_key), keyed for affinity
    # (shared/fleet/affinity.py `named_conversation`); '': its first message names it.
    conversation: str = ""
    batch: BatchItem | None = None  # a request of a message batch: its result goes there


@dataclass(frozen=True)
class AttemptId:
    """The arq job id of one attempt:
    `<lane initial>|<job id>|<attempt>|<avoided accounts>|<preferred account>@<until ms>`,
    then `|<preferred worker>` when there is one.

    Workers choose what to start from the queue's ids alone (lane limits, accounts to
    avoid, an account's head start), without reading each job, so that information lives in
    the id.
    """

    lane: Lane
    job_id: str
    attempt: int
    avoid_accounts: tuple[str, ...] = ()
    prefer_account: str = ""
    prefer_until_ms: int = 0
    prefer_worker: str = ""

    def __str__(self) -> str:
        avoid = ",".join(self.avoid_accounts)
        prefer = f"{self.prefer_account}@{self.prefer_until_ms}" if self.prefer_account else ""
        worker = f"|{self.prefer_worker}" if self.prefer_worker else ""
        return f"{self.lane[0]}|{self.job_id}|{self.attempt}|{avoid}|{prefer}{worker}"

    @classmethod
    def of(cls, job: JobRequest) -> AttemptId:
        return cls(
            job.lane,
            job.job_id,
            job.attempt,
            tuple(job.avoid_accounts),
            job.prefer_account,
            job.prefer_until_ms,
            job.prefer_worker,
        )

    @classmethod
    def parse(cls, raw: str) -> AttemptId | None:
        parts = raw.split("|")
        if len(parts) not in (4, 5, 6) or parts[0] not in ("i", "b") or not parts[2].isdigit():
            return None
        lane: Lane = "interactive" if parts[0] == "i" else "batch"
        avoid = tuple(name for name in parts[3].split(",") if name)
        prefer, _, until = (parts[4] if len(parts) >= 5 else "").partition("@")
        worker = parts[5] if len(parts) == 6 else ""
        until_ms = int(until) if until.isdigit() else 0
        return cls(lane, parts[1], int(parts[2]), avoid, prefer, until_ms, worker)

    def held_for_another(self, account: str, now_ms: int) -> bool:
        """Another account has a head start on this attempt, and it has not run out."""
        return (
            bool(self.prefer_account)
            and self.prefer_account != account
            and (now_ms < self.prefer_until_ms)
        )

    def held_for_another_worker(self, worker_id: str, now_ms: int) -> bool:
        """Another worker holds this conversation's CLI and its head start has not run out."""
        return (
            bool(self.prefer_worker)
            and self.prefer_worker != worker_id
            and (now_ms < self.prefer_until_ms)
        )
