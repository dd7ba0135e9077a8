"""What the front end's routes need, built once by the lifespan and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import Request

from api.chunk_hub import ChunkHub
from api.job_queue import JobQueue
from shared.settings import Settings


@dataclass
class FrontEnd:
    settings: Settings
    redis: ArqRedis
    hub: ChunkHub
    queue: JobQueue


def front_end(request: Request) -> FrontEnd:
    """FastAPI dependency: the front end's shared objects."""
    state: FrontEnd = request.app.state.front_end
    return state
