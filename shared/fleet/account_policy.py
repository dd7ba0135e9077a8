"""Which account a new request should go to: the operator's account policy over each
account's headroom (shared/fleet/headroom.py).

The front end names one account for each job (its workers get a head start on it, as for
conversation affinity: shared/fleet/affinity.py), chosen among the accounts that can take it
now (a ready worker with a free slot, not cooling):

- A conversation stays on the account of its earlier turns while that account is under the
  threshold (`CCFLEET_HEADROOM_THRESHOLD`), ready and not cooling, even with every slot busy
  for the moment: its workers' head start lets a slot that frees take the turn. Past the
  threshold, the turn goes where the policy says; the worker answering it notes its account
  for the turns after, so the conversation hops once and sticks.
- Accounts under the threshold (and not slow to answer lately) come first: `fill-first`
  takes the first of them in the drain order (`CCFLEET_ACCOUNT_PRIORITY`, lower first), so
  later accounts are untouched until the earlier ones pass the threshold; `most-headroom`
  takes the one that has used least of its tightest window, counting the work it is already
  running (`in_flight_utilization`).
- When every account is past the threshold, the one with the most headroom: the threshold
  orders the accounts, it never refuses a request.
- When no account can take the job now, none is named and whichever worker frees first takes it.

A job re-run after a limit or an upstream failure on one account (shared/queue/requeue.py) is
named an account the same way, among those it does not avoid.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from shared.fleet.registry import AccountInfo, FleetSnapshot

AccountPolicy = Literal["fill-first", "most-headroom"]

IN_FLIGHT_WEIGHT = 0.3
"""How much more used than its figures an account with every slot busy counts, when accounts
are ranked by headroom. An account's figures come with each answer, so they lag the jobs it is
running, and the conversations of those jobs stay on it for their next turns: without this,
new conversations pile onto the account that looks least used until its figures catch up
(bench/accounts.py; docs/benchmarks.md "Account policies"). The busy slots are as fresh as the
worker's last beat, and a worker beats when it takes a job and when it ends one
(worker/job_function.py). Small enough that an account clearly less used still wins however
busy it is."""


def choose_account(
    fleet: FleetSnapshot,
    *,
    policy: AccountPolicy,
    threshold: float,
    conversation_account: str,
    now_s: float,
    avoid: Collection[str] = (),
) -> str:
    """The account the job should go to, or '' when none can take it now."""
    ready = {a.name for a in fleet.available_accounts()} - set(avoid)
    if any(
        a.name == conversation_account and a.name in ready and _has_room(a, threshold, now_s)
        for a in fleet.accounts
    ):
        return conversation_account  # busy or not: its workers' head start covers a moment
    open_accounts = [a for a in fleet.accounts if a.name in ready and a.busy < a.slots]
    with_room = [a for a in open_accounts if _has_room(a, threshold, now_s)]
    if with_room and policy == "fill-first":
        return min(with_room, key=lambda a: (a.priority, a.utilization(now_s), a.name)).name
    candidates = with_room or open_accounts
    if not candidates:
        return ""
    return min(candidates, key=lambda a: (in_flight_utilization(a, now_s), a.priority, a.name)).name


def in_flight_utilization(account: AccountInfo, now_s: float) -> float:
    """The account's utilisation as reported, plus an estimate for the jobs it is running."""
    busy_share = account.busy / account.slots if account.slots else 0.0
    return account.utilization(now_s) + IN_FLIGHT_WEIGHT * busy_share


def _has_room(account: AccountInfo, threshold: float, now_s: float) -> bool:
    return account.utilization(now_s) < threshold and not account.headroom.slow(now_s)
