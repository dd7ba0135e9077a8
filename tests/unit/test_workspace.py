"""Private directories for workers and jobs, dead workers' files, and the account's one login."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from worker.cli.login import CREDENTIALS_FILE, AccountLogin
from worker.cli.workspace import WorkerDirectory, job_workspace, remove_dead_workers


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_job_gets_private_empty_directories_that_go_with_it(tmp_path: Path) -> None:
    with job_workspace(str(tmp_path), "job_1234") as workspace:
        assert workspace.config_dir == os.path.join(workspace.home, ".claude")
        listing = [os.listdir(p) for p in (workspace.cwd, workspace.tmp_dir, workspace.home)]
        assert listing == [[], [], [".claude"]]
        assert os.listdir(workspace.config_dir) == []
        for path in (workspace.cwd, workspace.tmp_dir, workspace.home, workspace.config_dir):
            assert mode(path) == 0o700
    assert not os.path.exists(workspace.base)


def test_a_worker_directory_is_private_and_survives_sweeps_while_its_worker_lives(
    tmp_path: Path,
) -> None:
    root = tmp_path / "work"
    root.mkdir(mode=0o755)
    own = WorkerDirectory.create(str(root))
    assert os.path.basename(own.path).startswith("worker-")
    assert (mode(root), mode(own.path)) == (0o700, 0o700)
    assert remove_dead_workers(str(root)) == 0
    assert os.path.isdir(own.path)
    own.close()
    assert not os.path.exists(own.path)


def test_a_dead_workers_directory_is_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = tmp_path / "worker-host-99-dead"
    (dead / "job-x" / "home").mkdir(parents=True)
    (dead / ".lock").touch()  # nobody holds it: its worker was SIGKILLed
    half_removed = tmp_path / "worker-host-98-gone"
    half_removed.mkdir()
    starting = tmp_path / ".new-abc"  # a worker between mkdir and its lock
    starting.mkdir()
    other = tmp_path / "notes"
    other.mkdir()
    live = WorkerDirectory.create(str(tmp_path))
    try:
        assert remove_dead_workers(str(tmp_path)) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".new-abc",
            "notes",
            os.path.basename(live.path),
        ]
    finally:
        live.close()


def test_a_missing_work_root_has_no_dead_workers(tmp_path: Path) -> None:
    assert remove_dead_workers(str(tmp_path / "absent")) == 0


def test_an_api_key_wins_and_no_other_login_is_passed_on(tmp_path: Path) -> None:
    environ = {"ANTHROPIC_API_KEY": "sk-ant-api03-k", "CLAUDE_CODE_OAUTH_TOKEN": "t"}
    login = AccountLogin.from_environ(environ, str(tmp_path))
    assert login.environment == {"ANTHROPIC_API_KEY": "sk-ant-api03-k"}
    token = AccountLogin.from_environ(
        {"CLAUDE_CODE_OAUTH_TOKEN": "t", "CLAUDE_CONFIG_DIR": str(tmp_path)}, str(tmp_path)
    )
    assert token.environment == {"CLAUDE_CODE_OAUTH_TOKEN": "t"}
    assert os.listdir(tmp_path) == []


def _config_dir_account(tmp_path: Path) -> tuple[Path, Path]:
    account = tmp_path / "account"
    (account / "skills" / "secret").mkdir(parents=True)
    (account / "CLAUDE.md").write_text("host instructions")
    (account / "settings.json").write_text('{"hooks": {}}')
    (account / CREDENTIALS_FILE).write_text(json.dumps({"claudeAiOauth": {"accessToken": "a"}}))
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir(mode=0o700)
    return account, worker_dir


def test_a_config_dir_account_lends_each_job_its_credential_alone(tmp_path: Path) -> None:
    account, worker_dir = _config_dir_account(tmp_path)
    login = AccountLogin.from_environ({"CLAUDE_CONFIG_DIR": str(account)}, str(worker_dir))
    assert login.environment == {}
    assert os.listdir(worker_dir) == [CREDENTIALS_FILE]
    job_config = tmp_path / "job" / ".claude"
    job_config.mkdir(parents=True)

    login.install(str(job_config))

    assert os.listdir(job_config) == [CREDENTIALS_FILE]
    assert mode(job_config / CREDENTIALS_FILE) == 0o600
    assert (job_config / CREDENTIALS_FILE).read_bytes() == (account / CREDENTIALS_FILE).read_bytes()


def test_a_credential_the_cli_refreshed_is_kept_for_later_jobs_and_the_account(
    tmp_path: Path,
) -> None:
    account, worker_dir = _config_dir_account(tmp_path)
    login = AccountLogin.from_environ({"CLAUDE_CONFIG_DIR": str(account)}, str(worker_dir))
    job_config = tmp_path / "job"
    job_config.mkdir()
    login.install(str(job_config))
    refreshed = json.dumps({"claudeAiOauth": {"accessToken": "b"}})
    (job_config / CREDENTIALS_FILE).write_text(refreshed)

    login.collect(str(job_config))

    assert (worker_dir / CREDENTIALS_FILE).read_text() == refreshed
    assert (account / CREDENTIALS_FILE).read_text() == refreshed
    assert mode(account / CREDENTIALS_FILE) == 0o600
