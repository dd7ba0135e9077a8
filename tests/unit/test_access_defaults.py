"""Auth defaults: on unless told otherwise; `ccfleet up` on loopback may go without keys."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ccfleet.main import app, auth_banner, auth_for_up, is_loopback
from shared.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "ccfleet.example.com"])
def test_addresses_others_reach_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_auth_is_on_unless_turned_off() -> None:
    assert Settings(auth=None).access.auth_enabled
    assert Settings(auth="on").access.auth_enabled
    assert not Settings(auth="off").access.auth_enabled


def test_up_on_loopback_defaults_to_no_keys_and_its_banner_says_so() -> None:
    env: dict[str, str] = {}
    settings = auth_for_up(Settings(auth=None), "127.0.0.1", env)
    assert env["CCFLEET_AUTH"] == "off" and not settings.access.auth_enabled
    assert "auth OFF (loopback only)" in auth_banner(settings, "127.0.0.1")


def test_up_on_another_address_defaults_to_keys() -> None:
    env: dict[str, str] = {}
    settings = auth_for_up(Settings(auth=None), "0.0.0.0", env)
    assert env["CCFLEET_AUTH"] == "on" and settings.access.auth_enabled
    assert auth_banner(settings, "0.0.0.0").startswith("auth on")


def test_up_keeps_what_it_was_told() -> None:
    env: dict[str, str] = {}
    settings = auth_for_up(Settings(auth="on"), "127.0.0.1", env)
    assert settings.access.auth_enabled and env == {}
    assert "NOT loopback" in auth_banner(Settings(auth="off"), "0.0.0.0")


def test_a_front_end_with_auth_on_and_no_server_secret_refuses_to_start() -> None:
    result = CliRunner().invoke(
        app,
        ["api", "--host", "0.0.0.0", "--port", "1"],
        env={"CCFLEET_AUTH": None, "CCFLEET_AUTH_SECRET": "too-short"},
    )
    assert result.exit_code == 2
    assert "CCFLEET_AUTH_SECRET" in result.output


def test_keys_without_a_usable_server_secret_exit_2_naming_it() -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "create", "alice"],
        env={"CCFLEET_AUTH_SECRET": "short", "CCFLEET_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.exit_code == 2
    assert "CCFLEET_AUTH_SECRET" in result.output


def test_keys_with_an_unknown_lane_exit_2_naming_it() -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "create", "alice", "--lanes", "interactive,express"],
        env={"CCFLEET_AUTH_SECRET": "s" * 40, "CCFLEET_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.exit_code == 2
    assert "lanes" in result.output


def test_usage_by_something_else_exits_2() -> None:
    result = CliRunner().invoke(app, ["usage", "--by", "team"])
    assert result.exit_code == 2
