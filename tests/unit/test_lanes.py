"""Which setting applies to a lane: decided once, by `lane_policies`."""

from __future__ import annotations

from shared.fleet.lanes import LANES, lane_policies
from shared.queue.job_queue import JobLifetimes
from shared.settings import Settings

HOUR_MS = 3600 * 1000


def lane_settings(*, reserved_interactive_slots: int = 1) -> Settings:
    return Settings(
        interactive_max_waiting=3,
        batch_max_waiting=7,
        interactive_max_wait_s=5.0,
        batch_max_wait_s=11.0,
        reserved_interactive_slots=reserved_interactive_slots,
        job_timeout_s=40.0,
        journal_ttl_s=100,
    )


def test_each_lane_takes_its_own_bound_on_waiting_jobs_and_its_own_longest_wait() -> None:
    lanes = lane_policies(lane_settings())

    assert (lanes["interactive"].max_waiting, lanes["interactive"].max_wait_s) == (3, 5.0)
    assert (lanes["batch"].max_waiting, lanes["batch"].max_wait_s) == (7, 11.0)


def test_a_lane_is_the_same_policy_by_name_and_by_attribute() -> None:
    lanes = lane_policies(lane_settings())

    assert [lanes[lane] for lane in LANES] == [lanes.interactive, lanes.batch]


def test_batch_jobs_leave_the_reserved_slots_of_a_worker_to_interactive_ones() -> None:
    lanes = lane_policies(lane_settings(reserved_interactive_slots=2))

    assert (lanes["interactive"].slots_on(5), lanes["batch"].slots_on(5)) == (5, 3)
    assert lanes["batch"].slots_on(1) == 0  # never fewer than none


def test_an_interactive_job_queued_hours_after_a_batch_job_is_still_scored_ahead() -> None:
    lanes = lane_policies(lane_settings())
    batch_queued_ms = 1_000_000_000_000
    interactive_queued_ms = batch_queued_ms + 5 * HOUR_MS

    interactive_score = interactive_queued_ms - lanes["interactive"].head_start_ms
    batch_score = batch_queued_ms - lanes["batch"].head_start_ms

    assert interactive_score < batch_score


def test_a_waiting_jobs_record_outlives_its_own_lanes_longest_wait() -> None:
    lifetimes = JobLifetimes.of(lane_settings())

    assert lifetimes.waiting_s("interactive") == lifetimes.running_s() + 5
    assert lifetimes.waiting_s("batch") == lifetimes.running_s() + 11
