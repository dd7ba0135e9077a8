"""The arq job functions: thin, validate -> run -> publish."""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.errors import CliFailed, FleetError
from shared.jobs import JobRequest
from shared.log import job_id_var, request_id_var
from worker.answer import answer_with_cli
from worker.chunk_publisher import ChunkPublisher
from worker.context import WorkerContext

logger = logging.getLogger(__name__)


async def run_messages(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """Answer one Messages request; every outcome ends the job's chunk stream."""
    worker: WorkerContext = ctx["worker"]
    job = JobRequest.model_validate(payload)
    job_id_var.set(job.job_id)
    request_id_var.set(job.request_id)
    publisher = ChunkPublisher(
        ctx["redis"],
        job.job_id,
        ttl_s=worker.settings.journal_ttl_s,
        max_chunks=worker.settings.journal_max_chunks,
    )
    if await _resumed_after_crash(publisher):
        return
    started = time.monotonic()
    wait_ms = int(time.time() * 1000) - job.enqueued_at_ms
    logger.info("job started after %d ms in queue (try %s)", wait_ms, ctx.get("job_try"))
    with worker.state.occupied_slot():
        try:
            await answer_with_cli(job.request, job.job_id, publisher, worker.cli)
        except FleetError as error:
            worker.state.last_error = error.message
            logger.warning("job failed: %s (%s)", error.error_type, error.message)
            if not publisher.ended:
                await publisher.publish_error(error)
        except Exception:
            logger.exception("job crashed")
            if not publisher.ended:
                await publisher.publish_error(FleetError("Internal server error"))
    logger.info("job done in %.2fs, %d chunks", time.monotonic() - started, publisher.seq)


async def _resumed_after_crash(publisher: ChunkPublisher) -> bool:
    """A re-run of a job whose earlier run already streamed must not start a second answer."""
    previous = await publisher.last_published()
    if previous is None:
        return False
    publisher.seq = previous.seq
    publisher.ended = previous.is_terminal
    if not previous.is_terminal:
        await publisher.publish_error(
            CliFailed("The worker answering this request stopped mid-answer; please retry.")
        )
    return True
