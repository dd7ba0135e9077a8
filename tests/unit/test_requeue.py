"""Re-queue or fail (shared/queue/requeue.py): each case the worker, the relay's quiet check
and the batch dispatch decide."""

from __future__ import annotations

import pytest

from shared.queue.requeue import Failure, FailureCause, Requeue, next_attempt

MAX = 3


def failed(
    cause: FailureCause,
    *,
    attempt: int = 1,
    sent: bool = False,
    batch: bool = False,
    avoid: tuple[str, ...] = (),
    account: str = "a",
) -> Failure:
    return Failure(cause, attempt, sent, batch, avoid_accounts=avoid, account=account)


def test_an_account_limit_moves_the_job_to_another_free_account_at_once() -> None:
    decided = next_attempt(failed("account_limit", avoid=("z",)), max_attempts=MAX,
                           free_accounts=["a", "b"], backoff_s=2.0)  # fmt: skip
    assert decided == Requeue(["z", "a"], backoff_s=0.0)


def test_an_account_limit_with_no_other_free_account_fails_an_interactive_job() -> None:
    assert next_attempt(failed("account_limit"), max_attempts=MAX, free_accounts=["a"]) is None


def test_a_batch_request_waits_out_an_account_limit_when_no_other_account_is_free() -> None:
    decided = next_attempt(failed("account_limit", batch=True), max_attempts=MAX)
    assert decided == Requeue([], backoff_s=0.0)


def test_an_upstream_failure_tries_another_account_after_a_doubling_backoff() -> None:
    first = next_attempt(failed("upstream_failed"), max_attempts=MAX, free_accounts=["b"],
                         backoff_s=2.0)  # fmt: skip
    second = next_attempt(failed("upstream_failed", attempt=2, avoid=("a",), account="b"),
                          max_attempts=MAX, free_accounts=["c"], backoff_s=2.0)  # fmt: skip
    assert first == Requeue(["a"], backoff_s=2.0)
    assert second == Requeue(["a", "b"], backoff_s=4.0)


def test_an_upstream_failure_with_no_other_free_account_may_run_anywhere_again() -> None:
    decided = next_attempt(failed("upstream_failed", avoid=("z",)), max_attempts=MAX,
                           free_accounts=["a", "z"], backoff_s=1.0)  # fmt: skip
    assert decided == Requeue([], backoff_s=1.0)


def test_a_silent_upstream_moves_the_job_to_another_free_account_at_once() -> None:
    decided = next_attempt(failed("upstream_silent"), max_attempts=MAX, free_accounts=["a", "b"],
                           backoff_s=2.0)  # fmt: skip
    assert decided == Requeue(["a"], backoff_s=0.0)


def test_a_silent_upstream_with_no_other_free_account_fails_an_interactive_job() -> None:
    assert next_attempt(failed("upstream_silent"), max_attempts=MAX, free_accounts=["a"]) is None


@pytest.mark.parametrize("cause", ["cli_broken", "worker_died", "lost"])
def test_a_broken_cli_a_dead_worker_or_a_lost_job_runs_again_avoiding_what_it_avoided(
    cause: FailureCause,
) -> None:
    decided = next_attempt(failed(cause, avoid=("z",)), max_attempts=MAX, backoff_s=5.0)
    assert decided == Requeue(["z"], backoff_s=0.0)


@pytest.mark.parametrize(
    "cause",
    ["account_limit", "upstream_failed", "upstream_silent", "cli_broken", "worker_died", "lost"],
)
def test_a_client_sent_anything_is_never_given_a_second_answer(cause: FailureCause) -> None:
    decided = next_attempt(failed(cause, sent=True), max_attempts=MAX, free_accounts=["b"])
    assert decided is None


def test_a_batch_request_runs_again_whatever_it_had_produced() -> None:
    decided = next_attempt(failed("worker_died", sent=True, batch=True), max_attempts=MAX)
    assert decided == Requeue([])


@pytest.mark.parametrize(
    "cause", ["account_limit", "upstream_failed", "cli_broken", "worker_died", "lost"]
)
@pytest.mark.parametrize("batch", [False, True])
def test_no_job_runs_more_than_its_maximum_attempts(cause: FailureCause, batch: bool) -> None:
    last = failed(cause, attempt=MAX, batch=batch)
    assert next_attempt(last, max_attempts=MAX, free_accounts=["b"]) is None
    assert next_attempt(failed(cause, attempt=MAX - 1, batch=batch), max_attempts=MAX,
                        free_accounts=["b"]) is not None  # fmt: skip
