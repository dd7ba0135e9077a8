"""The role zygote (tests/role_zygote.py, tests/role_forks.py): a forked role is the process
`python -m` would start, seen through the same ManagedProcess, so stacks can be forked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import ManagedProcess, wait_until
from tests.role_forks import RoleForks

PROBE = "tests.fakes.role_probe"


@pytest.fixture(scope="module")
def forks() -> Iterator[RoleForks]:
    forks = RoleForks()
    yield forks
    forks.close()


def probe_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "PROBE_ONLY_HERE": "yes",
    }


def run_probe(
    forks: RoleForks | None, tmp_path: Path, *args: str
) -> tuple[ManagedProcess, int, str]:
    probe = ManagedProcess(
        list(args),
        env=probe_env(tmp_path),
        log_path=tmp_path / f"{'forked' if forks else 'started'}-{args[0]}.log",
        module=PROBE,
        forks=forks,
    )
    try:
        code = probe.proc.wait(timeout=60)
    finally:
        probe.stop()
    return probe, code, probe.log_text()


def report(forks: RoleForks | None, tmp_path: Path) -> dict[str, Any]:
    _, code, log = run_probe(forks, tmp_path, "report")
    assert code == 0, log
    seen: dict[str, Any] = json.loads(log)
    return seen


def test_a_forked_role_runs_in_its_own_session_with_exactly_the_given_environment(
    forks: RoleForks, tmp_path: Path
) -> None:
    seen = report(forks, tmp_path)
    assert seen["pid"] != forks.pid
    assert seen["sid"] == seen["pid"]
    assert seen["environ"] == probe_env(tmp_path)
    assert seen["tmpdir"] == str(tmp_path)
    assert seen["cwd"] == os.getcwd()
    assert seen["path0"] == os.getcwd()


def test_a_forked_role_starts_as_python_m_would(forks: RoleForks, tmp_path: Path) -> None:
    forked, started = report(forks, tmp_path), report(None, tmp_path)
    for same in ("argv", "path0", "threads", "handlers", "blocked", "stdout_encoding"):
        assert forked[same] == started[same], same
    assert forked["argv"][0].endswith("tests/fakes/role_probe.py")
    assert forked["fds"] == [0, 1, 2, 3]  # 3: the listing's own; none of the zygote's pipes
    assert forked["stdin"] == "/dev/null"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("exit", "0"), 0),
        (("exit", "3"), 3),
        (("raise",), 1),
        (("signal", str(int(signal.SIGTERM))), -signal.SIGTERM),
        (("signal", str(int(signal.SIGKILL))), -signal.SIGKILL),
    ],
)
def test_a_forked_role_ends_with_the_exit_status_python_m_gives(
    forks: RoleForks, tmp_path: Path, args: tuple[str, ...], expected: int
) -> None:
    forked, forked_code, forked_log = run_probe(forks, tmp_path, *args)
    _, started_code, started_log = run_probe(None, tmp_path, *args)
    assert forked_code == started_code == expected
    assert forked.proc.poll() == forked.proc.returncode == expected
    if args[0] == "exit":
        assert forked_log == started_log == f"exiting {args[1]}\n"
    if args[0] == "raise":
        assert forked_log.endswith("LookupError: the probe's uncaught exception\n"), forked_log


@pytest.fixture(params=["forked", "started"])
def waiting_probe(
    request: pytest.FixtureRequest, forks: RoleForks, tmp_path: Path
) -> Iterator[ManagedProcess]:
    probe = ManagedProcess(
        ["wait"],
        env=probe_env(tmp_path),
        log_path=tmp_path / "wait.log",
        module=PROBE,
        forks=forks if request.param == "forked" else None,
    )
    wait_until(lambda: "waiting" in probe.log_text(), 60, "the probe to wait")
    yield probe
    probe.stop()


def test_a_signal_from_the_test_ends_a_role_as_it_ends_a_popen(
    waiting_probe: ManagedProcess,
) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        waiting_probe.proc.wait(timeout=0.01)
    assert waiting_probe.proc.poll() is None
    waiting_probe.signal(signal.SIGTERM)
    assert waiting_probe.proc.wait(timeout=30) == -signal.SIGTERM


def test_a_role_left_running_dies_with_its_zygote(tmp_path: Path) -> None:
    forks = RoleForks()
    probe = ManagedProcess(
        ["wait"], env=probe_env(tmp_path), log_path=tmp_path / "wait.log", module=PROBE, forks=forks
    )
    wait_until(lambda: "waiting" in probe.log_text(), 60, "the probe to wait")
    forks.close()  # as when the test process ends: the zygote's stdin closes
    assert probe.proc.wait(timeout=30) == -signal.SIGKILL
    probe.stop()


def test_an_environment_with_other_interpreter_settings_is_not_forked(
    forks: RoleForks, tmp_path: Path
) -> None:
    assert forks.can_serve(probe_env(tmp_path))
    assert not forks.can_serve({**probe_env(tmp_path), "PYTHONHASHSEED": "1"})
    assert not forks.can_serve({**probe_env(tmp_path), "LANG": "C"})
    probe = ManagedProcess(
        ["exit", "0"],
        env={**probe_env(tmp_path), "PYTHONHASHSEED": "1"},
        log_path=tmp_path / "exit.log",
        module=PROBE,
        forks=forks,
    )
    assert probe.proc.wait(timeout=60) == 0
    probe.stop()
    assert isinstance(probe.proc, subprocess.Popen)


def test_a_role_left_running_dies_when_the_test_process_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from tests.processes import ManagedProcess;"
        "from tests.role_forks import RoleForks; from tests.waiting import wait_until;"
        f"log = Path({str(tmp_path / 'wait.log')!r});"
        f"probe = ManagedProcess(['wait'], env={probe_env(tmp_path)!r}, log_path=log,"
        f" module={PROBE!r}, forks=RoleForks());"
        "wait_until(lambda: 'waiting' in log.read_text(), 60, 'the probe');"
        "print(probe.pid, flush=True); sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as tests_process:
        assert tests_process.stdout is not None
        probe_pid = int(tests_process.stdout.readline())
        assert (tmp_path / "wait.log").read_text() == "waiting\n"
        tests_process.kill()
    wait_until(lambda: not Path(f"/proc/{probe_pid}").exists(), 30, "the probe to be gone")
