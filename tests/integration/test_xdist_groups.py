"""The suite's xdist groups hold: tests marked xdist_group(NAME) run in one pytest-xdist process.

Stacks that several modules share (tests/e2e/conftest.py's package fixtures) are started once
only if their tests run in one process; pytest 9.2 with pytest-xdist 3.8 silently dropped every
group (pytest-xdist#1386), so an upgrade of either is checked here, on a suite of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED = """
import os
import pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("n", range(4))
def test_grouped(n):
    with open("workers.txt", "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("n", range(4))
def test_free(n):
    pass
"""


def test_tests_of_one_xdist_group_run_in_one_process(tmp_path: Path) -> None:
    for module in ("test_a.py", "test_b.py"):  # one group across modules, as the suite's are
        (tmp_path / module).write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this repository's configuration
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *("-p", "xdist"),
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        # Only xdist, the plugin under test: the others installed (schemathesis, hypothesis) cost
        # each of the three processes seconds of CPU to import, for nothing this suite uses.
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 8, workers
    assert len(set(workers)) == 1, f"the group ran in {sorted(set(workers))}"
