"""Background responses: queued as a job with no client attached, polled, cancelled.

`background: true` admits and queues the job as any request is (api/admission.py's
`queue_job`, on the batch lane unless `x-ccfleet-lane` says otherwise) and stores the response
`queued` with its job id. Nobody relays the job: a `GET` reads what its journal holds so far
through the same translator a stream uses (events.py) and, once the job has ended, stores the
final response, which then outlives the journal. So a background response must be fetched
within `CCFLEET_JOURNAL_TTL_S` of its end; after that, and until `CCFLEET_RESPONSES_TTL_S`, a
response never fetched reads `failed`. `cancel` ends the job's quota lease and aborts the job
(its worker kills the CLI), as a relay does when its client leaves.
"""

from __future__ import annotations

from typing import Any

from api.openai.errors import openai_error
from api.responses.events import ResponseTranslator
from api.responses.request import ResponsesRequest
from api.responses.store import ResponseStore, StoredResponse
from api.responses.translation import ToolNames
from api.services import FrontEndServices
from shared.access.quotas import QuotaLease
from shared.errors import FleetError, InvalidRequest, from_error
from shared.stream import journal
from shared.stream.chunk import Chunk

Json = dict[str, Any]

PENDING = ("queued", "in_progress")


async def current(services: FrontEndServices, store: ResponseStore, stored: StoredResponse) -> Json:
    """The response as it stands: a finished one as stored, a background one as its job's
    journal has it (stored once the job has ended)."""
    if stored.response["status"] not in PENDING or not stored.job_id:
        return stored.response
    translator = translator_of(stored)
    for raw in await journal.read_after(services.redis, stored.job_id):
        _feed(translator, Chunk.from_json(raw))
    if not translator.done:
        state = await services.fleet.queue.state(stored.job_id)
        if state is None or state.status in ("done", "cancelled"):
            lost = FleetError("The background response's job ended without an answer.")
            translator.failed(openai_error(lost))
        else:
            translator.response["status"] = "queued" if state.status == "waiting" else "in_progress"
            return translator.response
    stored.response = translator.response
    await store.save(stored)
    return stored.response


async def cancel(services: FrontEndServices, store: ResponseStore, stored: StoredResponse) -> Json:
    """Stop a background response's job; a finished response is left as it is."""
    if not stored.job_id:
        raise InvalidRequest("Only a background response can be cancelled.")
    response = await current(services, store, stored)
    if response["status"] not in PENDING:
        return response
    if stored.lease is not None:  # as a relay does when its client leaves (job_relay.py)
        await services.fleet.quotas.release(QuotaLease(**stored.lease))
    await services.fleet.queue.cancel(stored.job_id, unqueue=True)
    response["status"] = "cancelled"
    stored.response = response
    await store.save(stored)
    return response


def translator_of(stored: StoredResponse) -> ResponseTranslator:
    """A fresh translator of the job's chunks: a poll or a stream replays them from the first."""
    request = ResponsesRequest.model_validate(stored.request)
    fresh = {**stored.response, "output": [], "status": "in_progress"}
    return ResponseTranslator(
        fresh, ToolNames.of(request), encrypted_reasoning=request.wants_encrypted_reasoning
    )


def _feed(translator: ResponseTranslator, chunk: Chunk) -> None:
    if chunk.kind == "error":
        translator.failed(openai_error(from_error(chunk.data)))
    else:
        translator.feed(chunk.data)
