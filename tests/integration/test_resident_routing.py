"""A conversation's next turn goes to the worker whose resident CLI holds it, and continues
there; when that worker is gone, another worker replays the history.

Two workers of one account run the zero-cost fake CLI, which (FAKE_CLI_STAYS=1) answers every
turn written to it until its stdin closes, as the real CLI does. Which worker served a turn is
read from the job's record; hits and misses from /v1/fleet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Stack, StackFactory
from tests.conversations import conversation, turn, workers
from tests.fakes import fake_cli
from tests.processes import wait_until

pytestmark = pytest.mark.xdist_group("resident-routing")

# Generous, so a loaded test machine cannot turn a head start into a coin toss.
ENV = {
    "CCFLEET_AFFINITY_WAIT_MS": "5000",
    "CCFLEET_ACCOUNT": "alice",
    "CCFLEET_RESIDENT_MAX": "4",  # the stacks of tests keep none by default
}


@pytest.fixture(scope="module")
def fake_claude(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("fake-cli")
    return str(fake_cli.install(directory / "fake-claude", FAKE_CLI_STAYS="1"))


@pytest.fixture
def two_workers(make_stack: StackFactory, fake_claude: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=fake_claude, **ENV)
    for _ in range(2):
        stack.add_worker(CCFLEET_CLAUDE_BIN=fake_claude, **ENV)
    stack.wait_ready()
    wait_until(lambda: len(workers(stack)) == 2, 20, "both workers beating")
    return stack


def test_follow_ups_continue_in_the_worker_holding_them_and_replay_elsewhere_once_it_is_gone(
    two_workers: Stack,
) -> None:
    holders = []
    for n in range(3):
        first, *later = conversation(n, 3)
        holder = turn(two_workers, first)
        holders.append(holder)
        assert [turn(two_workers, messages) for messages in later] == [holder, holder]
    wait_until(
        lambda: sum(w["resident_hits"] for w in workers(two_workers).values()) == 6,
        10,
        "6 resident hits in the heartbeats",
    )
    # Their memory is measured at the residents' own check, a few seconds apart.
    wait_until(
        lambda: all(workers(two_workers)[holder]["resident_bytes"] > 0 for holder in holders),
        20,
        "the resident CLIs' memory in the heartbeats",
    )

    first, second = conversation(9, 2)
    holder = turn(two_workers, first)
    gone = next(p for p in two_workers.workers if f"-{p.pid}-" in holder)
    gone.stop()  # drains and leaves the fleet
    wait_until(lambda: holder not in workers(two_workers), 30, "the holder leaving the fleet")
    [survivor] = workers(two_workers).values()
    misses = survivor["resident_misses"]
    assert turn(two_workers, second) == survivor["id"]
    wait_until(
        lambda: workers(two_workers)[survivor["id"]]["resident_misses"] == misses + 1,
        10,
        "the survivor replaying the turn",
    )


def test_a_turn_whose_resident_cli_died_between_turns_is_replayed_not_failed(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    # This fake CLI stays after its first answer and ends at the next turn's first line, as a
    # resident CLI killed or crashed between turns: only that turn finds it gone.
    dies = fake_cli.install(tmp_path / "claude", FAKE_CLI_STAYS="1", FAKE_CLI_TURNS="1")
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(dies), **ENV)
    first, second = conversation(7, 2)
    holder = turn(stack, first)
    assert turn(stack, second) == holder  # answered (turn() fails on any error)
