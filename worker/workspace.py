"""A fresh, empty working directory and TMPDIR for each CLI run, removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


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


@contextmanager
def job_workspace(root: str | None, job_id: str) -> Iterator[Workspace]:
    base = tempfile.mkdtemp(prefix=f"ccfleet-{job_id[:12]}-", dir=root or None)
    try:
        cwd = os.path.join(base, "work")
        tmp_dir = os.path.join(base, "tmp")
        os.mkdir(cwd)
        os.mkdir(tmp_dir)
        yield Workspace(cwd=cwd, tmp_dir=tmp_dir, base=base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
