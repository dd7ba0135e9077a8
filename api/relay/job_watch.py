"""Watching a quiet job: is it still waiting, running on a live worker, or lost?

A relay asks this whenever its job has been silent for a while (`journal_check_s`). A job
that waited too long, or waits while every account cools or no worker can serve, is
cancelled with an error; a job whose worker died is handed to another worker if the client
has been sent nothing yet, else ended with an error. So a client never waits on a job nobody runs.

One script reads all a check needs: the journal past what the relay has (chunks whose live
message it lost), the job's state and whether its worker lives (shared/fleet/liveness.py: a
killed worker is found at the first check after it died). A relay of a slow stream (a chunk
a second, say) checks about once per chunk, so a check must cost one round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from api.relay.cancel import cancel_job
from shared.broker import redis_keys
from shared.broker.coalesced_calls import CoalescedCalls
from shared.broker.lua_script import LuaScript
from shared.errors import CliFailed, FleetError, Overloaded
from shared.fleet import liveness
from shared.fleet.fleet_reader import FleetReader
from shared.fleet.lanes import lane_policies
from shared.fleet.registry import admission_error
from shared.queue.job_queue import JobQueue, JobState
from shared.queue.requeue import Failure, next_attempt
from shared.settings import Settings
from shared.stream import journal

logger = logging.getLogger(__name__)


_QUIET_READ = LuaScript.beside(
    __file__, "job_watch.quiet_read.lua", uses=[journal.LUA, liveness.LUA]
)


_GATHERED_PER_INTERVAL = 20
"""A quiet check waits this fraction of the check interval for others to share its round trip:
it is about a job silent for a whole interval, and the chunks it finds come 5 % later."""


@dataclass(frozen=True)
class _QuietAsk:
    job_id: str
    after_seq: int
    still_quiet: Callable[[], bool]

    def script_values(self) -> dict[str, Any]:
        return {
            "journal": redis_keys.job_journal(self.job_id),
            "record": redis_keys.job_record(self.job_id),
            "after_seq": self.after_seq,
            "fields": JobState.FIELDS,
            **liveness.prefixes(),
        }


QuietRead = tuple[list[bytes], list[Any], int]
"""A quiet check's read: the journal's chunks after the relay's last (raw), the job's record
fields (JobState.FIELDS, raw), and whether its worker lives (1) or not (0)."""


@dataclass(frozen=True)
class QuietCheck:
    journal: list[bytes]
    """The journaled chunks after the relay's last one (raw)."""
    lives: bool
    """False once the job ended: `journal` then holds its last chunks."""


class JobWatch:
    def __init__(
        self,
        redis: Redis,
        queue: JobQueue,
        settings: Settings,
        fleet_reader: FleetReader | None = None,
    ) -> None:
        """`fleet_reader`: the process's own (admission shares it), else one of the watch's."""
        self._redis = redis
        self._queue = queue
        self._settings = settings
        self._lanes = lane_policies(settings)
        self._quiet_read = _QUIET_READ.bind(redis)
        self._quiet_reads = CoalescedCalls(
            self._read_quiet_jobs, gather_s=settings.journal.check_s / _GATHERED_PER_INTERVAL
        )
        # Jobs waiting in the queue (a thousand requests arriving together) each ask whether
        # the fleet can serve them: the fleet read once serves those asking meanwhile.
        self._read_fleet = fleet_reader or FleetReader(
            redis, heartbeat_ttl_s=settings.worker.heartbeat_ttl_s
        )

    async def check(
        self, job_id: str, *, after_seq: int, still_quiet: Callable[[], bool] = lambda: True
    ) -> QuietCheck:
        """Raise if the job cannot answer any more; else what the journal holds after
        `after_seq` and whether the job lives. A job no longer quiet when the check is sent
        (`still_quiet` false: a chunk came while it waited for others) lives: nothing is read."""
        read = await self.read(job_id, after_seq=after_seq, still_quiet=still_quiet)
        return await self.judge(job_id, after_seq=after_seq, read=read)

    async def read(
        self, job_id: str, *, after_seq: int, still_quiet: Callable[[], bool] = lambda: True
    ) -> QuietRead | None:
        """`check`'s read, in a round trip shared with other relays' (waiting for them a
        moment): safe to cancel, the others' reads go on without it. None if the job was no
        longer quiet when it was sent."""
        read: QuietRead | None = await self._quiet_reads(_QuietAsk(job_id, after_seq, still_quiet))
        return read

    async def judge(self, job_id: str, *, after_seq: int, read: QuietRead | None) -> QuietCheck:
        """`check` from its `read`: raise if the job cannot answer any more (re-queueing or
        cancelling it as its state says), else what the journal holds and whether it lives."""
        if read is None:
            return QuietCheck([], lives=True)
        chunks, raw_state, worker_alive = read
        state = JobState.parse(raw_state)
        if state is None and not chunks and after_seq == 0:
            # Never answered and no record: the job was lost (a Redis restart lost its last
            # second of writes, or its memory was flushed). Nothing can run it again.
            raise Overloaded("The job queue lost this request; please retry.", retry_after_s=1)
        if state is None:
            return QuietCheck(chunks, lives=False)
        if state.status == "waiting":
            await self._check_waiting(job_id, state)
            return QuietCheck(chunks, lives=True)
        if state.status == "running" and not worker_alive:
            lives = await self._take_over_from_dead_worker(job_id, state.worker)
            return QuietCheck(chunks, lives=lives)
        return QuietCheck(chunks, lives=state.status == "running")

    async def _read_quiet_jobs(self, asks: Sequence[_QuietAsk]) -> list[Any]:
        """For each job still quiet: the journal after `after_seq`, the job's state and its
        worker's life; None for the others."""
        quiet = [ask.still_quiet() for ask in asks]
        reads = iter(
            await self._quiet_read.many(
                [ask.script_values() for ask, is_quiet in zip(asks, quiet, strict=True) if is_quiet]
            )
        )
        return [next(reads) if is_quiet else None for is_quiet in quiet]

    async def _check_waiting(self, job_id: str, state: JobState) -> None:
        limit_s = self._lanes[state.lane].max_wait_s
        error: FleetError | None = None
        if time.time() * 1000 - state.enqueued_at_ms > limit_s * 1000:
            error = Overloaded("No worker was free to take the request in time.", retry_after_s=10)
        else:
            error = admission_error(await self._read_fleet())
        if error is not None:
            await cancel_job(self._redis, self._queue, job_id)
            raise error

    async def _take_over_from_dead_worker(self, job_id: str, worker: str) -> bool:
        if await journal.count(self._redis, job_id) == 0:
            # Nothing sent, so the record still holds the request: run it again.
            record = await self._queue.record(job_id)
            if record is None:
                return False
            retry = next_attempt(
                Failure.of(record.job, "worker_died", sent=False),
                max_attempts=self._settings.jobs.max_attempts,
            )
            if retry is not None:
                logger.warning("worker %s died before answering; re-queued", worker)
                await self._queue.requeue(record.job, avoid_accounts=retry.avoid_accounts)
                return True
        logger.warning("worker %s died mid-answer", worker)
        await self._queue.cancel(job_id)
        raise CliFailed("The worker answering this request stopped mid-answer; please retry.")
