"""Whether the fleet can take a new job, from one snapshot: broken workers, cooling accounts."""

from __future__ import annotations

import time

from shared.errors import Overloaded, RateLimited
from shared.fleet.registry import AccountInfo, FleetSnapshot, WorkerInfo, admission_error

MISSING = "The Claude Code CLI claude cannot start: No such file or directory."
LOGGED_OUT = "The Claude Code CLI is not logged in."


def worker(id: str, account: str, state: str = "ready", reason: str = "") -> WorkerInfo:
    return WorkerInfo.model_validate(
        {"id": id, "host": "h", "account": account, "slots": 2, "busy": 0, "state": state}
        | {"broken_reason": reason}
    )


def fleet(workers: list[WorkerInfo], cooling: dict[str, float] | None = None) -> FleetSnapshot:
    names = sorted({w.account for w in workers})
    accounts = [
        AccountInfo(name=n, workers=1, slots=2, busy=0, cooling_until=(cooling or {}).get(n, 0))
        for n in names
    ]
    return FleetSnapshot(workers=workers, accounts=accounts, lanes=[])


def test_a_fleet_whose_every_worker_is_broken_refuses_with_529_naming_each_reason() -> None:
    error = admission_error(
        fleet(
            [
                worker("w1", "alice", "broken", MISSING),
                worker("w2", "bob", "broken", LOGGED_OUT),
                worker("w3", "bob", "broken", LOGGED_OUT),
            ]
        )
    )
    assert isinstance(error, Overloaded)
    assert error.message == f"No worker of this fleet can serve: {MISSING} {LOGGED_OUT}"
    assert error.should_retry is False


def test_one_worker_that_can_serve_is_enough() -> None:
    snapshot = fleet([worker("w1", "alice", "broken", MISSING), worker("w2", "bob")])
    assert admission_error(snapshot) is None


def test_no_live_worker_at_all_lets_a_job_wait_for_one() -> None:
    assert admission_error(fleet([])) is None


def test_a_broken_accounts_lack_of_cooldown_does_not_hide_that_the_others_cool() -> None:
    reset_s = time.time() + 3600
    error = admission_error(
        fleet(
            [worker("w1", "alice", "broken", MISSING), worker("w2", "bob", "cooling")],
            cooling={"bob": reset_s},
        )
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after_s is not None and 3590 < error.retry_after_s <= 3600
