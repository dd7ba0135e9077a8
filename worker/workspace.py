"""A fresh, empty working directory and TMPDIR for each CLI run, removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_PREFIX = "ccfleet-work-"  # job dirs only: nothing else in the temp dir matches


@dataclass(frozen=True)
class Workspace:
    cwd: str
    tmp_dir: str
    base: str

    def write_file(self, name: str, content: bytes) -> str:
        """A file of the job's own (outside the CLI's working directory); returns its path."""
        path = os.path.join(self.base, name)
        with open(path, "wb") as handle:
            handle.write(content)
        return path


def remove_stale_workspaces(root: str | None, *, older_than_s: float) -> int:
    """Job dirs no live job can own any more (their worker was killed): removed at start-up."""
    base = root or tempfile.gettempdir()
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in os.scandir(base):
        if entry.name.startswith(_PREFIX) and entry.is_dir() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def create_workspace(root: str | None, label: str) -> Workspace:
    """A new private directory with an empty `work` (the CLI's cwd) and `tmp` (its TMPDIR)."""
    base = tempfile.mkdtemp(prefix=f"{_PREFIX}{label[:16]}-", dir=root or None)
    cwd = os.path.join(base, "work")
    tmp_dir = os.path.join(base, "tmp")
    os.mkdir(cwd)
    os.mkdir(tmp_dir)
    return Workspace(cwd=cwd, tmp_dir=tmp_dir, base=base)


def remove_workspace(workspace: Workspace) -> None:
    shutil.rmtree(workspace.base, ignore_errors=True)


@contextmanager
def job_workspace(root: str | None, job_id: str) -> Iterator[Workspace]:
    workspace = create_workspace(root, job_id)
    try:
        yield workspace
    finally:
        remove_workspace(workspace)
