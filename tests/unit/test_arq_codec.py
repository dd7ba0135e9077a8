"""arq jobs as JSON (shared/queue/arq_codec.py)."""

from __future__ import annotations

from typing import Any

from arq.jobs import serialize_job
from arq.utils import args_to_string

from shared.queue import arq_codec


def test_arq_logs_a_job_by_its_ids_never_its_request() -> None:
    payload: dict[str, Any] = {"job_id": "job_1", "attempt": 2, "request": {"text": "x" * 10**6}}
    raw = serialize_job("run_messages", (payload,), {}, None, 0, serializer=arq_codec.serialize)
    arguments = arq_codec.deserialize(raw)["a"]
    assert args_to_string(arguments, {}) == "<job job_1 attempt 2>"
    assert arguments == [payload], "still the payload the job function reads"
