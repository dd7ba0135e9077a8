"""Whether a client key may send a request now: the one check every path makes.

Interactive and OpenAI-shaped requests (api/admission.py), resumed streams (api/resume.py)
and each request of a batch when it is dispatched (shared/batches/dispatch.py) all come here:
the key's lanes and models (403), then its quotas in one Lua script (429: requests and tokens
per minute, concurrent requests, the monthly budget; shared/access/quotas.py). A new job
reserves its estimated input (shared/wire/token_estimate.py, the one estimate) plus its
`max_tokens`; a resume starts no job, so it reserves nothing and takes no concurrency lease.
When every account of the fleet has spent its own monthly budget, batch work is refused too
(`accounts_budget_spent`): a batch is not created, its waiting requests end `errored`.
"""

from __future__ import annotations

import time

from shared.access.client_keys import ClientKey
from shared.access.quotas import BUDGET_LIMIT, QuotaLease, Quotas
from shared.errors import BudgetSpent, PermissionDenied
from shared.fleet.lanes import Lane, LanePolicy
from shared.fleet.registry import FleetSnapshot
from shared.settings import Settings
from shared.wire.messages import MessagesRequest
from shared.wire.token_estimate import estimate_input_tokens

# After its wait and its run, how long a lease outlives a job whose ender died.
_LEASE_MARGIN_S = 60


def lease_s(lane: LanePolicy, settings: Settings) -> float:
    """How long a concurrency lease lasts unless its job's end releases it first: the job's
    longest wait and run, and a margin."""
    return lane.max_wait_s + settings.jobs.timeout_s + _LEASE_MARGIN_S


def reserved_tokens(body: MessagesRequest) -> int:
    """What a new job reserves against tokens per minute: estimated input plus max_tokens."""
    estimate = estimate_input_tokens(
        messages=body.messages, system=body.system, tools=body.tools, tool_choice=body.tool_choice
    )
    return estimate + body.max_tokens


async def admit(
    quotas: Quotas,
    key: ClientKey,
    body: MessagesRequest,
    *,
    lane: Lane,
    request_id: str,
    lease_s: float,
    new_job: bool = True,
) -> QuotaLease:
    """403 for a lane or model `key` may not use; 429 over one of its quotas; else its lease."""
    if not key.allows_lane(lane):
        raise PermissionDenied(f"This API key may not use the {lane} lane.")
    if not key.allows_model(body.model):
        raise PermissionDenied(f"This API key may not use the model {body.model!r}.")
    tokens = reserved_tokens(body) if new_job else 0
    return await quotas.admit(key, request_id, lease_s=lease_s, tokens=tokens, new_job=new_job)


def accounts_budget_spent(fleet: FleetSnapshot) -> BudgetSpent | None:
    """429 when every account with a live worker cools for its monthly budget (until the
    month turns): nothing sent now could run this month."""
    live = {w.account for w in fleet.workers if w.state != "broken"}
    accounts = [a for a in fleet.accounts if a.name in live]
    if not accounts or not all(a.cooling and a.cooling_reason == BUDGET_LIMIT for a in accounts):
        return None
    return BudgetSpent(
        f"Every Claude account of this fleet has reached its {BUDGET_LIMIT}.",
        retry_after_s=max(1.0, min(a.cooling_until for a in accounts) - time.time()),
        should_retry=False,
    )
