"""Every Redis key and channel name ccfleet uses, built by functions."""

from __future__ import annotations

PREFIX = "ccfleet"


def job_channel(job_id: str) -> str:
    """Pub/sub channel carrying a job's chunks as they are produced."""
    return f"{PREFIX}:job:{job_id}:live"


def job_journal(job_id: str) -> str:
    """Stream holding every chunk of a job, numbered; late readers catch up from it."""
    return f"{PREFIX}:job:{job_id}:journal"


def worker_heartbeat(worker_id: str) -> str:
    """Hash describing one live worker; expires when the worker stops beating."""
    return f"{PREFIX}:worker:{worker_id}"


def worker_life_channel(worker_id: str) -> str:
    """Pub/sub channel only its worker subscribes to: no subscriber once the worker died."""
    return f"{PREFIX}:life:{worker_id}"


def workers_index() -> str:
    """Sorted set of worker ids scored by their last heartbeat (epoch ms)."""
    return f"{PREFIX}:workers"


def account_state(account: str) -> str:
    """Hash with an account's cooldown (cooling_until epoch s, reason); expires at the reset."""
    return f"{PREFIX}:account:{account}"


def account_headroom(account: str) -> str:
    """Hash of an account's usage windows as the upstream last reported them (JSON by
    `window:<name>`) and its first-byte timeouts (shared/fleet/headroom.py)."""
    return f"{PREFIX}:account:{account}:headroom"


def lane_waiting(lane: str) -> str:
    """Sorted set of the lane's jobs waiting for a worker, scored by enqueue time (epoch ms)."""
    return f"{PREFIX}:lane:{lane}:waiting"


def job_record(job_id: str) -> str:
    """Hash describing a job across its attempts: payload, lane, priority, attempt, worker."""
    return f"{PREFIX}:job:{job_id}"


def job_readers(job_id: str) -> str:
    """Count of relays currently attached to a job (a resumed stream adds one)."""
    return f"{PREFIX}:job:{job_id}:readers"


def client_key(digest: str) -> str:
    """JSON record of one client key, found by the keyed hash (HMAC) of its secret."""
    return f"{PREFIX}:client_key:{digest}"


def client_key_names() -> str:
    """Hash of client key name -> the keyed hash of its current secret."""
    return f"{PREFIX}:client_keys"


def quota_requests(key_name: str) -> str:
    """Sorted set of a client key's requests of the last minute, scored by time (epoch ms)."""
    return f"{PREFIX}:quota:{key_name}:requests"


def quota_tokens(key_name: str) -> str:
    """Sorted set of `<job>:<tokens>` of the last minute, scored by time (epoch ms)."""
    return f"{PREFIX}:quota:{key_name}:tokens"


def quota_in_flight(key_name: str) -> str:
    """Sorted set of a client key's requests in flight, scored by when their lease ends."""
    return f"{PREFIX}:quota:{key_name}:in_flight"


def month_spend(kind: str, name: str, month: str) -> str:
    """USD spent by a key or an account (`kind`) in a month (YYYY-MM), as the CLI reported it."""
    return f"{PREFIX}:spend:{kind}:{name}:{month}"


def usage_day(day: str, dimension: str, name: str) -> str:
    """Hash of one day's (YYYY-MM-DD) counters for one key, account or model (`dimension`)."""
    return f"{PREFIX}:usage:{day}:{dimension}:{name}"


def usage_day_names(day: str, dimension: str) -> str:
    """Set of the keys, accounts or models with counters on a day."""
    return f"{PREFIX}:usage:{day}:{dimension}"


def queue_wake_channel() -> str:
    """Pub/sub channel that wakes idle workers when an attempt is queued or aborted."""
    return f"{PREFIX}:queue:wake"


def conversation_account(conversation_key: str) -> str:
    """The account that served a conversation's latest turn (shared/fleet/affinity.py)."""
    return f"{PREFIX}:conversation:{conversation_key}:account"


def stored_response(response_id: str) -> str:
    """A stored /v1/responses response, its input and its owner (JSON; api/responses/store.py)."""
    return f"{PREFIX}:response:{response_id}"


def stored_item(item_digest: str) -> str:
    """The id of the stored response holding an input or output item, by a digest of its
    owner and the item's id (api/responses/store.py)."""
    return f"{PREFIX}:response-item:{item_digest}"


def conversation_worker(conversation_key: str) -> str:
    """The worker whose resident CLI holds a conversation (shared/fleet/affinity.py)."""
    return f"{PREFIX}:conversation:{conversation_key}:worker"


def batch(batch_id: str) -> str:
    """Hash of a message batch: owner, times, status, request counts, dispatch position."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_requests(batch_id: str) -> str:
    """Hash of a batch's requests by index (`{"custom_id", "params"}` JSON), each held once."""
    return f"{PREFIX}:batch:{batch_id}:requests"


def batch_results(batch_id: str) -> str:
    """Hash of a batch's results by index (one JSONL line each), written as each finishes."""
    return f"{PREFIX}:batch:{batch_id}:results"


def batch_inflight(batch_id: str) -> str:
    """Hash of a batch's dispatched, unfinished requests: index -> `<job id>|<claimed ms>`."""
    return f"{PREFIX}:batch:{batch_id}:inflight"


def batches_index() -> str:
    """Sorted set of every batch id, scored by creation time (epoch ms): the list, newest first."""
    return f"{PREFIX}:batches"


def batches_open() -> str:
    """Sorted set of batches not yet ended, scored by their expiry (epoch ms)."""
    return f"{PREFIX}:batches:open"


def batches_active() -> str:
    """List of batches with requests still to dispatch, rotated for round-robin dispatch."""
    return f"{PREFIX}:batches:active"


def batches_check_turn() -> str:
    """Held for one check interval by the worker whose turn it is to check open batches."""
    return f"{PREFIX}:batches:check-turn"


def request_stats(bucket_start_s: int) -> str:
    """Hash of the requests that ended in one 10-second bucket (counts, TTFT histogram)."""
    return f"{PREFIX}:stats:requests:{bucket_start_s}"


def upstream_models() -> str:
    """JSON {fetched_at_ms, models}: upstream's model list, as an API-key worker last read it."""
    return f"{PREFIX}:models:upstream"
