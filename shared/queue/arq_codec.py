"""arq jobs travel as JSON, never pickles; front ends and workers use the same codec."""

from __future__ import annotations

from typing import Any

import orjson


class JobArgument(dict[str, Any]):
    """A job's argument (its request, up to 32 MB) as arq formats it: arq takes the `repr` of
    every argument of every job it starts for its log line, which for a 30 MB request holds
    the worker's loop for ~90 ms; the ids are all a log needs (and prompts are never logged)."""

    def __repr__(self) -> str:
        return f"<job {self.get('job_id')} attempt {self.get('attempt')}>"


def serialize(value: dict[str, Any]) -> bytes:
    # arq also stores job results, which for a cancelled or failed job is an exception:
    # kept as its repr (nobody reads results back as objects).
    return orjson.dumps(value, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    arguments = value.get("a")
    if isinstance(arguments, list):  # a job, as arq's `serialize_job` wrote it
        value["a"] = [JobArgument(a) if isinstance(a, dict) else a for a in arguments]
    return value
