"""Which worker the front end names for a conversation's next turn (shared/fleet/affinity.py
`preferred_worker`): the one that noted itself, while it is ready with a free slot at its last
heartbeat; otherwise none, and the reason is logged (a follow-up that will replay)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shared.fleet.affinity import preferred_worker
from shared.fleet.registry import FleetSnapshot, WorkerInfo


def fleet(**holder: Any) -> FleetSnapshot:
    """The holder `w1` (its heartbeat's fields overridden by `holder`) and another worker."""
    beat: dict[str, Any] = {"host": "h", "account": "alice", "slots": 4, "busy": 1}
    workers = [
        WorkerInfo.model_validate({**beat, "state": "ready", "id": "w1", **holder}),
        WorkerInfo.model_validate({**beat, "state": "ready", "id": "w2"}),
    ]
    return FleetSnapshot(workers=workers, accounts=[], lanes=[])


def test_the_worker_that_noted_the_conversation_is_named_while_it_has_room() -> None:
    assert preferred_worker("w1", fleet(busy=3), "alice") == "w1"
    assert preferred_worker("", fleet(), "alice") == ""


@pytest.mark.parametrize(
    ("holder", "reason"),
    [
        ({"busy": 4}, "4 of 4 slots busy at its last heartbeat"),
        ({"state": "draining"}, "draining"),
        ({"account": "bob"}, "of account bob, not alice"),
        ({"id": "w3"}, "gone"),
    ],
)
def test_a_holder_that_cannot_take_the_turn_is_not_named_and_the_reason_is_logged(
    caplog: pytest.LogCaptureFixture, holder: dict[str, Any], reason: str
) -> None:
    with caplog.at_level(logging.INFO, logger="shared.fleet.affinity"):
        assert preferred_worker("w1", fleet(**holder), "alice") == ""
    assert [record.getMessage() for record in caplog.records] == [
        f"the conversation's worker w1 is not named: {reason}"
    ]
