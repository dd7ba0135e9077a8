"""An attempt's arq job id carries what workers decide on without reading the job."""

from __future__ import annotations

from shared.queue.job import AttemptId


def test_an_attempt_id_with_a_preferred_worker_reads_back_as_written() -> None:
    attempt = AttemptId("interactive", "job_1", 2, ("bob",), "alice", 5000, "host-12-ab")
    assert str(attempt) == "i|job_1|2|bob|alice@5000|host-12-ab"
    assert AttemptId.parse(str(attempt)) == attempt


def test_an_id_written_before_worker_preferences_still_reads() -> None:
    attempt = AttemptId.parse("b|job_1|1||alice@5000")
    assert attempt == AttemptId("batch", "job_1", 1, (), "alice", 5000, "")


def test_only_the_preferred_worker_may_start_the_attempt_until_its_head_start_ends() -> None:
    attempt = AttemptId("interactive", "job_1", 1, (), "alice", 5000, "w1")
    assert attempt.held_for_another_worker("w2", now_ms=4999)
    assert not attempt.held_for_another_worker("w1", now_ms=4999)
    assert not attempt.held_for_another_worker("w2", now_ms=5000)
