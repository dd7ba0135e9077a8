"""Where the CLI runs and everything it writes: one private directory per worker, one per job.

```
<work root>/                       0700; default ~/.cache/ccfleet/work, never the shared temp dir
  worker-<random>/                 0700, flock-ed on .lock while its worker lives; HOME and
    .credentials.json                CLAUDE_CONFIG_DIR of start-up checks; holds only the
    job-<job id>-<random>/           credential (config-dir accounts: a copy of it)
      work/                        the CLI's working directory (empty)
      tmp/                         TMPDIR (the CLI's claude-<uid>/ directories)
      home/                        HOME: caches, MCP logs, heap dumps, anything written to ~
      home/.claude/                CLAUDE_CONFIG_DIR: settings, session-env, projects; at the
                                   start nothing but the credential
```

The CLI tells the model its working directory (and so any client who asks the model), so
no name on that path says which host or process runs it: random hex, and the job's own id.

A job's directory goes with its job. A worker that was killed leaves its directory unlocked
(the kernel drops a dead process's flock): any worker on the host removes it, at start-up and
every `work_sweep_interval_s`. The work root is not the temp dir because the CLI reads
instruction files (CLAUDE.md) from every parent of its working directory, and anyone may
write to /tmp.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_WORKER_PREFIX = "worker-"
_NEW_PREFIX = ".new-"  # a worker directory before its lock is held: never swept
_LOCK_NAME = ".lock"
_PRIVATE = 0o700
_NAME_BYTES = 6  # random hex in directory names: unguessable, and no host or pid in them


@dataclass(frozen=True)
class Workspace:
    cwd: str
    tmp_dir: str
    home: str
    base: str

    @property
    def config_dir(self) -> str:
        """The CLI's CLAUDE_CONFIG_DIR, private to this job."""
        return os.path.join(self.home, ".claude")


def private_directory(path: str) -> str:
    """`path` created if needed, owned by us and mode 0700 (a looser one is tightened)."""
    os.makedirs(path, mode=_PRIVATE, exist_ok=True)
    info = os.stat(path)
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; choose another work root")
    if info.st_mode & 0o777 != _PRIVATE:
        os.chmod(path, _PRIVATE)
    return path


class WorkerDirectory:
    """This worker's directory under the work root, locked for as long as the worker lives."""

    def __init__(self, path: str, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def create(cls, work_root: str) -> WorkerDirectory:
        root = private_directory(work_root)
        # Locked before it gets the name a sweeper looks for.
        staging = tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=root)
        lock_fd = os.open(os.path.join(staging, _LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = os.path.join(root, f"{_WORKER_PREFIX}{secrets.token_hex(_NAME_BYTES)}")
        os.rename(staging, path)
        return cls(path, lock_fd)

    def close(self) -> None:
        """Remove the directory and let the lock go (at shutdown)."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def remove_dead_workers(work_root: str) -> int:
    """Remove the directories of workers that are gone (their lock is free); how many."""
    try:
        entries = list(os.scandir(work_root))
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        if entry.name.startswith(_WORKER_PREFIX) and entry.is_dir(follow_symlinks=False):
            removed += _remove_if_unlocked(entry.path)
    return removed


def _remove_if_unlocked(path: str) -> int:
    try:
        lock_fd = os.open(os.path.join(path, _LOCK_NAME), os.O_RDWR)
    except FileNotFoundError:
        shutil.rmtree(path, ignore_errors=True)  # half removed already
        return 1
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return 0  # its worker lives
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(lock_fd)
    logger.info("removed the files of a dead worker: %s", os.path.basename(path))
    return 1


async def sweep_forever(work_root: str, *, interval_s: float) -> None:
    """Remove dead workers' files every `interval_s` (a worker killed beside this one)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(remove_dead_workers, work_root)
        except OSError:
            logger.exception("sweeping the work root failed")


def create_workspace(root: str, label: str) -> Workspace:
    """Fresh, empty private directories for one CLI run under `root` (its worker's directory)."""
    base = os.path.join(root, f"job-{label[:16]}-{secrets.token_hex(_NAME_BYTES)}")
    os.mkdir(base, _PRIVATE)
    workspace = Workspace(
        cwd=os.path.join(base, "work"),
        tmp_dir=os.path.join(base, "tmp"),
        home=os.path.join(base, "home"),
        base=base,
    )
    for path in (workspace.cwd, workspace.tmp_dir, workspace.home, workspace.config_dir):
        os.mkdir(path, _PRIVATE)
    return workspace


def remove_workspace(workspace: Workspace) -> None:
    shutil.rmtree(workspace.base, ignore_errors=True)


@contextmanager
def job_workspace(root: str, job_id: str) -> Iterator[Workspace]:
    workspace = create_workspace(root, job_id)
    try:
        yield workspace
    finally:
        remove_workspace(workspace)
