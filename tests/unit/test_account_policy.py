"""The account policy (shared/fleet/account_policy.py): which account a new job goes to."""

from __future__ import annotations

from shared.fleet.account_policy import AccountPolicy, choose_account
from shared.fleet.headroom import Headroom, UsageWindow
from shared.fleet.registry import AccountInfo, FleetSnapshot, WorkerInfo

NOW_S = 1_800_000_000.0


def account(
    name: str, used: float, *, priority: int = 0, busy: int = 0, **fields: object
) -> AccountInfo:
    window = UsageWindow(
        name="five_hour", utilization=used, resets_at=NOW_S + 3600, status="allowed"
    )
    return AccountInfo.model_validate(
        {
            "name": name,
            "workers": 1,
            "slots": 2,
            "busy": busy,
            "priority": priority,
            "headroom": Headroom(windows=[window]),
            **fields,
        }
    )


def fleet(*accounts: AccountInfo) -> FleetSnapshot:
    workers = [
        WorkerInfo(id=f"w-{a.name}", host="h", account=a.name, slots=2, busy=a.busy, state="ready")
        for a in accounts
    ]
    return FleetSnapshot(workers=workers, accounts=list(accounts), lanes=[])


def chosen(snapshot: FleetSnapshot, policy: AccountPolicy, conversation: str = "") -> str:
    return choose_account(
        snapshot, policy=policy, threshold=0.9, conversation_account=conversation, now_s=NOW_S
    )


def test_fill_first_takes_accounts_in_drain_order_each_until_past_the_threshold() -> None:
    accounts = [account("team", 0.5, priority=1), account("personal", 0.1, priority=2)]
    assert chosen(fleet(*accounts), "fill-first") == "team"
    accounts = [account("team", 0.91, priority=1), account("personal", 0.1, priority=2)]
    assert chosen(fleet(*accounts), "fill-first") == "personal"


def test_most_headroom_takes_the_account_that_used_least_of_its_tightest_window() -> None:
    snapshot = fleet(account("a", 0.5, priority=1), account("b", 0.2, priority=2))
    assert chosen(snapshot, "most-headroom") == "b"


def test_most_headroom_counts_work_in_flight_so_new_conversations_spread() -> None:
    """The least used account is already running three jobs (their conversations stay on it
    and will add to it before its figures show it); one nearly as low and idle gets the
    next conversation. A clearly less used account still wins however busy it is."""
    busy_low = account("a", 0.30, busy=3, slots=6)
    assert chosen(fleet(busy_low, account("b", 0.33, slots=6)), "most-headroom") == "b"
    assert chosen(fleet(busy_low, account("b", 0.50, slots=6)), "most-headroom") == "a"


def test_a_conversation_stays_on_its_account_while_it_is_under_the_threshold() -> None:
    snapshot = fleet(account("a", 0.1), account("b", 0.85))
    assert chosen(snapshot, "most-headroom", conversation="b") == "b"
    assert chosen(snapshot, "fill-first", conversation="b") == "b"


def test_a_conversation_keeps_its_account_while_its_slots_are_momentarily_all_busy() -> None:
    """Its workers get the head start (CCFLEET_AFFINITY_WAIT_MS): a slot that frees within it
    keeps the conversation on its account's prompt cache; naming another account would move
    the conversation for good (the answering worker notes its own account)."""
    snapshot = fleet(account("a", 0.1, busy=2), account("b", 0.0))
    assert chosen(snapshot, "most-headroom", conversation="a") == "a"
    assert chosen(snapshot, "fill-first", conversation="a") == "a"


def test_a_conversation_whose_account_passed_the_threshold_hops_to_one_with_room() -> None:
    snapshot = fleet(account("a", 0.95), account("b", 0.3), account("c", 0.6))
    assert chosen(snapshot, "most-headroom", conversation="a") == "b"


def test_when_every_account_is_past_the_threshold_the_one_with_most_headroom_still_serves() -> None:
    snapshot = fleet(account("a", 0.99, priority=1), account("b", 0.93, priority=2))
    assert chosen(snapshot, "fill-first") == "b"
    assert chosen(snapshot, "most-headroom", conversation="a") == "b"


def test_a_busy_cooling_or_slow_account_is_not_named() -> None:
    snapshot = fleet(
        account("busy", 0.0, busy=2),
        account("cooling", 0.0, cooling_until=NOW_S * 2),
        account("slow", 0.0, headroom=Headroom(slow_at=NOW_S - 5)),
        account("fine", 0.5),
    )
    assert chosen(snapshot, "most-headroom") == "fine"


def test_no_account_is_named_when_none_can_take_the_job_now() -> None:
    assert chosen(fleet(account("a", 0.1, busy=2)), "most-headroom") == ""


def test_an_api_key_account_s_headroom_is_its_monthly_budget() -> None:
    key_account = AccountInfo(name="key", workers=1, slots=2, busy=0, month_usd=45, monthly_usd=50)
    assert key_account.utilization(NOW_S) == 0.9
    assert chosen(fleet(key_account, account("oauth", 0.5)), "most-headroom") == "oauth"


def test_a_window_that_has_reset_counts_as_unused() -> None:
    past = UsageWindow(name="five_hour", utilization=0.99, resets_at=NOW_S - 1, status="allowed")
    assert account("a", 0.0, headroom=Headroom(windows=[past])).utilization(NOW_S) == 0.0


def test_a_retry_is_named_the_best_account_among_those_it_does_not_avoid() -> None:
    snapshot = fleet(account("a", 0.1, priority=1), account("b", 0.95), account("c", 0.3))
    named = choose_account(
        snapshot, policy="fill-first", threshold=0.9, conversation_account="", now_s=NOW_S,
        avoid=["a"],
    )  # fmt: skip
    assert named == "c"
