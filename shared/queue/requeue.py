"""Re-queue or fail: the one decision on whether a job that did not answer runs again, and
where.

Asked by the worker whose attempt hit an account's limit, an upstream failure or a CLI that
cannot serve (worker/job_function.py), by a relay whose job's worker died
(api/relay/job_watch.py), and by the batch dispatch for a request whose job was lost or
whose worker died (shared/batches/dispatch.py):

- A client's stream cannot start over: once it was sent a chunk, the job fails. A batch
  request has no client stream, so it may always run again.
- No job runs more than `max_attempts` times (attempts, or a batch request's runs).
- After an account's limit, an upstream failure or an upstream that stayed silent past the
  first-byte timeout, the next attempt avoids the accounts tried so far, if another account
  is free. If none is, a transient failure may clear up anywhere (all are tried again); a
  limit ends only at its reset and a silent upstream is not waited on twice, so a client
  is told of either instead (a batch request waits them out).
- After an upstream failure the next attempt waits first, twice as long each attempt.
- Otherwise (a CLI that cannot serve, a dead worker, a lost job) the job runs again with
  the accounts it avoided already.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from shared.queue.job import JobRequest

FailureCause = Literal[
    "account_limit", "upstream_failed", "upstream_silent", "cli_broken", "worker_died", "lost"
]
_ACCOUNT_FAILURES = ("account_limit", "upstream_failed", "upstream_silent")
"""Failures of the account's upstream: the next attempt tries another account."""


@dataclass(frozen=True)
class Failure:
    """An attempt that did not answer, with what the decision needs to know about it."""

    cause: FailureCause
    attempt: int
    """The attempt (a batch request: the run) that failed, from 1."""
    sent: bool
    """Its client has been sent a chunk."""
    batch: bool
    """A batch request: no client waits on a stream."""
    avoid_accounts: tuple[str, ...] = ()
    """The accounts its job avoids already."""
    account: str = ""
    """The account it failed on (a limit or an upstream failure)."""

    @classmethod
    def of(cls, job: JobRequest, cause: FailureCause, *, sent: bool, account: str = "") -> Failure:
        return cls(
            cause=cause,
            attempt=job.attempt,
            sent=sent,
            batch=job.batch is not None,
            avoid_accounts=tuple(job.avoid_accounts),
            account=account,
        )


@dataclass(frozen=True)
class Requeue:
    """Run the job again: its next attempt avoids these accounts, after `backoff_s`."""

    avoid_accounts: list[str]
    backoff_s: float = 0.0


def next_attempt(
    failure: Failure,
    *,
    max_attempts: int,
    free_accounts: Collection[str] = (),
    backoff_s: float = 0.0,
) -> Requeue | None:
    """How the job runs again, or None if it fails. `free_accounts`: those with a live worker
    free to take it (for a limit or an upstream failure); `backoff_s`: the wait after a first
    upstream failure."""
    if failure.sent and not failure.batch:
        return None
    if failure.attempt >= max_attempts:
        return None
    if failure.cause not in _ACCOUNT_FAILURES:
        return Requeue(list(failure.avoid_accounts))
    hop_only = failure.cause != "upstream_failed"  # waiting on the same account will not help
    avoid = [*failure.avoid_accounts, failure.account]
    if not [name for name in free_accounts if name not in avoid]:
        if hop_only and not failure.batch:
            return None  # the client hears of the limit or the silence
        avoid = []
    wait_s = 0.0 if hop_only else backoff_s * 2 ** (failure.attempt - 1)
    return Requeue(avoid, backoff_s=wait_s)
