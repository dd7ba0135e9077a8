"""The one place a front end and a worker build their shared objects from Settings.

Both processes need the same Redis client, job queue, batch store, batch dispatch and
quotas, configured the same way: built twice, the copies drift (a worker's queue
once lost the Redis memory budget, so batch jobs it fed ignored it). So each process calls
`FleetServices.build` once at its entry point and takes what it needs from the result.

Building does no I/O: the Redis client connects on first use, and scripts are registered
locally. The usage ledger (shared/access/ledger.py) is functions over the Redis client, so
there is nothing to build for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis

from shared.access.admission import lease_s
from shared.access.client_keys import KeyStore
from shared.access.quotas import Quotas
from shared.batches.dispatch import BatchAdmission, BatchDispatch
from shared.batches.store import BatchStore
from shared.broker.connection import arq_redis
from shared.fleet.fleet_reader import FleetReader
from shared.fleet.lanes import LanePolicies, lane_policies
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings


@dataclass(frozen=True)
class FleetServices:
    settings: Settings
    lanes: LanePolicies
    redis: ArqRedis
    """Bounded waits (shared/broker/connection.py); a worker hands it to arq as its pool."""
    queue: JobQueue
    batch_store: BatchStore
    batch_dispatch: BatchDispatch
    quotas: Quotas
    fleet_reader: FleetReader
    """The fleet as Redis knows it, one read for the callers asking at once."""

    @classmethod
    def build(cls, settings: Settings) -> FleetServices:
        redis = arq_redis(settings)
        lanes = lane_policies(settings)
        queue = JobQueue(
            redis,
            queue_name=settings.queue.name,
            lifetimes=JobLifetimes.of(settings),
            memory_budget_bytes=settings.redis.memory_budget_bytes,
        )
        batch_store = BatchStore(
            redis,
            retention_s=settings.batches.retention_s,
            memory_budget_bytes=settings.redis.memory_budget_bytes,
        )
        quotas = Quotas(redis)
        return cls(
            settings=settings,
            lanes=lanes,
            redis=redis,
            queue=queue,
            batch_store=batch_store,
            batch_dispatch=BatchDispatch(
                redis,
                batch_store,
                queue,
                batch_max_waiting=lanes.batch.max_waiting,
                max_runs=settings.jobs.max_attempts,
                admission=BatchAdmission(quotas, lease_s=lease_s(lanes.batch, settings)),
                redis_outage_s=settings.redis.outage_grace_s,
            ),
            quotas=quotas,
            fleet_reader=FleetReader(redis, heartbeat_ttl_s=settings.worker.heartbeat_ttl_s),
        )

    def client_keys(self) -> KeyStore | None:
        """The client keys a front end checks; None when they are off (CCFLEET_AUTH=off).
        Workers never check a key, so they need no CCFLEET_AUTH_SECRET and do not call this."""
        if not self.settings.access.auth_enabled:
            return None
        return KeyStore(self.redis, self.settings.access.auth_secret)

    async def close(self) -> None:
        """Close the Redis client (and its connections); the objects built on it go with it."""
        await self.redis.aclose()
