"""Log lines carry no client content and no secrets."""

from __future__ import annotations

import logging
import sys

from redis import Redis
from redis.exceptions import ResponseError

from shared.telemetry.log import JsonFormatter


def test_a_failed_redis_pipeline_command_is_logged_without_its_arguments() -> None:
    error = ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    pipeline = Redis().pipeline()  # never connects: only redis-py's own error annotation
    pipeline.annotate_exception(  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
        error, 1, ("HSET", "ccfleet:job:job_1", "payload", '{"messages":"MY SECRET PROMPT"}')
    )
    try:
        raise error
    except ResponseError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "MY SECRET PROMPT" not in line
    assert "HSET ccfleet:job:job_1" in line
    assert "OOM command not allowed" in line
