"""Settings catch mistakes: a CCFLEET_ variable that names no setting is refused with the
nearest valid name, while the variables ccfleet sets for itself stay allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import (
    OTHER_VARIABLES,
    Settings,
    UnknownSetting,
    flat_names,
    refuse_unknown_variables,
    setting_names,
)

ROOT = Path(__file__).parents[2]


def test_a_mistyped_setting_is_refused_naming_the_nearest_valid_name() -> None:
    with pytest.raises(UnknownSetting) as refused:
        refuse_unknown_variables({"CCFLEET_WORKER_SLOT": "3", "PATH": "/bin"})
    assert str(refused.value) == (
        "unknown setting CCFLEET_WORKER_SLOT; did you mean CCFLEET_WORKER_SLOTS?"
    )


def test_every_unknown_variable_is_named_even_in_lowercase_and_without_a_near_name() -> None:
    with pytest.raises(UnknownSetting) as refused:
        refuse_unknown_variables({"ccfleet_redis_ur": "redis://x", "CCFLEET_FOO": "1"})
    assert str(refused.value).splitlines() == [
        "unknown setting CCFLEET_FOO; the settings are listed in docs/configuration.md.",
        "unknown setting ccfleet_redis_ur; did you mean CCFLEET_REDIS_URL?",
    ]


def test_every_setting_and_every_variable_ccfleet_sets_for_itself_is_allowed() -> None:
    environ = {name: "1" for name in [*setting_names(), *OTHER_VARIABLES]}
    environ["ccfleet_worker_slots"] = "3"  # pydantic-settings reads names in any case
    refuse_unknown_variables(environ)


def test_settings_are_not_built_from_an_environment_with_a_mistake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCFLEET_JOB_TIMEOUT", "30")
    with pytest.raises(UnknownSetting, match="did you mean CCFLEET_JOB_TIMEOUT_S"):
        Settings()


def test_tests_still_build_settings_from_keyword_overrides() -> None:
    assert Settings(worker_slots=5, redis_url="redis://r:1").worker.slots == 5


def test_every_ccfleet_variable_the_deployment_files_set_is_known() -> None:
    files = [
        ROOT / "docker-compose.yml",
        ROOT / ".env.example",
        ROOT / "tests" / "run.sh",
        *(ROOT / "k8s").rglob("*.yaml"),
        *(ROOT / "scripts").iterdir(),
    ]
    named = {n for f in files for n in re.findall(r"CCFLEET_[A-Z0-9_]*[A-Z0-9]", f.read_text())}
    assert len(named) > 10, "the files were read"
    assert named <= {*setting_names(), *OTHER_VARIABLES}


def test_settings_are_grouped_and_each_still_reads_its_own_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCFLEET_WORKER_SLOTS", "7")
    monkeypatch.setenv("CCFLEET_ACCOUNT", "alice")
    monkeypatch.setenv("CCFLEET_REDIS_URL", "redis://from-env:6379")
    monkeypatch.setenv("ccfleet_models", '["m1", "m2"]')
    settings = Settings(redis_url="redis://override:6379", worker_slots=3)
    assert (settings.worker.slots, settings.worker.account) == (3, "alice")
    assert Settings().worker.slots == 7
    assert settings.redis.url == "redis://override:6379"  # an override beats the environment
    assert settings.api.models == ["m1", "m2"]


def test_a_group_can_be_overridden_as_a_whole_and_bounds_still_hold() -> None:
    assert Settings(worker={"slots": 3}).worker.slots == 3
    with pytest.raises(ValidationError, match=r"worker\.slots"):
        Settings(worker_slots=0)


def test_an_override_naming_no_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="worker_slot"):
        Settings(worker_slot=3)


def test_no_flat_name_is_also_a_group_name() -> None:
    assert not set(flat_names()) & set(Settings.model_fields)
