"""Logging: JSON lines with the request and job ids of the current context, secrets redacted.

Prompts and completions are user data: they are relayed, never logged.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

# Claude credentials, ccfleet client keys (shared/access/client_keys.py) and bearer tokens.
_SECRET = re.compile(r"(sk-(?:ant|ccf)-[A-Za-z0-9_-]+|Bearer\s+[A-Za-z0-9._-]+)")
# redis-py writes a failed pipeline command into its error whole, arguments and all: a job's
# payload (the client's prompt) with it. Only the command and its key are kept.
_PIPELINE_COMMAND = re.compile(
    r"(Command # \d+ \()(\S+(?: \S+)?)(.*?)(\) of pipeline caused error)", re.DOTALL
)


def redact(text: str) -> str:
    text = _PIPELINE_COMMAND.sub(r"\1\2 …\4", text)
    return _SECRET.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, var in (("request_id", request_id_var), ("job_id", job_id_var)):
            value = var.get()
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure_logging(level: str) -> None:
    """Send JSON log lines to stderr; called once by each process's entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
