"""The one credential of this worker's account, and how each CLI run gets it and nothing else.

The CLI runs with a private, empty CLAUDE_CONFIG_DIR per job (worker/cli/workspace.py), so no
host setting, hook, instruction file, skill, command, plugin or MCP server exists for it. The
account's login reaches it in one of two ways:
- a variable: `ANTHROPIC_API_KEY` (wins, as it does in the CLI) or `CLAUDE_CODE_OAUTH_TOKEN`;
  the other login variables are not passed on;
- a file: for a `CLAUDE_CONFIG_DIR` account (or the local `claude` login in ~/.claude), only its
  `.credentials.json` is copied: into the worker's directory at start, into each job's config
  dir before the run. The CLI refreshes an OAuth login by rewriting that file, and a refresh
  can retire the old refresh token: a changed copy is written back to the worker's copy and to
  the account's own directory, so the login outlives the job.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = ".credentials.json"
# Everything the CLI logs in with or reads its configuration from; a CLI gets its account's own.
LOGIN_VARIABLES = frozenset(
    {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR"}
)


@dataclass
class AccountLogin:
    environment: dict[str, str] = field(default_factory=dict)
    credentials_source: Path | None = None  # the account's own .credentials.json
    credentials_copy: Path | None = None  # the worker's copy of it

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], worker_dir: str) -> AccountLogin:
        for variable in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
            if environ.get(variable):
                return cls(environment={variable: environ[variable]})
        config_dir = environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
        source = Path(config_dir) / CREDENTIALS_FILE
        if not source.is_file():
            logger.warning("no credential: no login variable set and no %s", source)
            return cls()
        copy = Path(worker_dir) / CREDENTIALS_FILE
        _write_private(copy, source.read_bytes())
        return cls(credentials_source=source, credentials_copy=copy)

    def install(self, config_dir: str) -> None:
        """Give a job's private config dir the credential (file logins only)."""
        if self.credentials_copy is not None:
            _write_private(Path(config_dir) / CREDENTIALS_FILE, self.credentials_copy.read_bytes())

    def collect(self, config_dir: str) -> None:
        """Keep a credential the CLI refreshed during the job."""
        if self.credentials_copy is None or self.credentials_source is None:
            return
        used = Path(config_dir) / CREDENTIALS_FILE
        try:
            content = used.read_bytes()
        except FileNotFoundError:
            return
        if content and content != self.credentials_copy.read_bytes():
            _write_private(self.credentials_copy, content)
            _write_private(self.credentials_source, content)
            logger.info("the CLI refreshed the account's credential; kept")


def _write_private(path: Path, content: bytes) -> None:
    """Replace `path` atomically with a 0600 file holding `content`."""
    handle, staging = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
