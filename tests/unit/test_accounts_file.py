"""The accounts file of `ccfleet up --accounts`: validation, resolution, worker environments."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccfleet.accounts_file import (
    AccountsFileError,
    WorkerAccount,
    load_accounts,
    parse_accounts,
    worker_environments,
)

SOURCE = Path("/etc/ccfleet/accounts.toml")
SECRET = "sk-ant-oat01-very-secret"


def parse(text: str, environ: dict[str, str] | None = None) -> list[WorkerAccount]:
    return parse_accounts(text, source=SOURCE, environ=environ or {}, default_slots=2)


def error_of(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(AccountsFileError) as caught:
        parse(text, environ)
    return str(caught.value)


def test_each_kind_of_credential_resolves_to_its_login_variable(tmp_path: Path) -> None:
    (tmp_path / "carol-config").mkdir()
    text = f"""
        [[account]]
        name = "alice"
        oauth_token = "{SECRET}"
        slots = 3

        [[account]]
        name = "bob"
        api_key = "sk-ant-api03-bob"

        [[account]]
        name = "carol_2"
        config_dir = "carol-config"
    """
    accounts = parse_accounts(text, source=tmp_path / "accounts.toml", environ={}, default_slots=2)
    summary = [(a.name, a.slots, a.login_variable) for a in accounts]
    assert summary == [
        ("alice", 3, "CLAUDE_CODE_OAUTH_TOKEN"),
        ("bob", 2, "ANTHROPIC_API_KEY"),
        ("carol_2", 2, "CLAUDE_CONFIG_DIR"),
    ]
    assert accounts[0].login_value.get_secret_value() == SECRET
    assert accounts[2].login_value.get_secret_value() == str(tmp_path / "carol-config")


def test_tokens_and_keys_can_be_read_from_named_environment_variables() -> None:
    text = """
        [[account]]
        name = "alice"
        oauth_token_env = "ALICE_TOKEN"

        [[account]]
        name = "bob"
        api_key_env = "BOB_KEY"
    """
    alice, bob = parse(text, {"ALICE_TOKEN": f" {SECRET}\n", "BOB_KEY": "sk-ant-api03-bob"})
    assert (alice.login_variable, alice.login_value.get_secret_value()) == (
        "CLAUDE_CODE_OAUTH_TOKEN",
        SECRET,
    )
    assert (bob.login_variable, bob.login_value.get_secret_value()) == (
        "ANTHROPIC_API_KEY",
        "sk-ant-api03-bob",
    )


def test_a_missing_or_empty_environment_variable_is_an_error_naming_it() -> None:
    text = '[[account]]\nname = "alice"\noauth_token_env = "ALICE_TOKEN"\n'
    assert "ALICE_TOKEN is not set" in error_of(text)
    assert "ALICE_TOKEN is not set" in error_of(text, {"ALICE_TOKEN": "  "})


def test_an_oauth_worker_gets_its_token_and_no_other_login() -> None:
    (alice,) = parse(f'[[account]]\nname = "alice"\noauth_token = "{SECRET}"\n')
    base = {
        "PATH": "/usr/bin",
        "ANTHROPIC_API_KEY": "sk-ant-api03-of-the-shell",
        "ANTHROPIC_AUTH_TOKEN": "bearer-of-the-shell",
        "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-of-the-shell",
        "CCFLEET_ACCOUNT": "default",
    }
    env = alice.environment(base)
    assert env == {
        "PATH": "/usr/bin",
        "CLAUDE_CODE_OAUTH_TOKEN": SECRET,
        "CCFLEET_ACCOUNT": "alice",
        "CCFLEET_WORKER_SLOTS": "2",
    }
    assert "ANTHROPIC_API_KEY" in base  # the caller's mapping is left alone


def test_no_worker_inherits_the_variables_other_accounts_are_read_from() -> None:
    text = (
        '[[account]]\nname = "alice"\noauth_token_env = "ALICE_TOKEN"\n'
        '[[account]]\nname = "bob"\napi_key_env = "BOB_KEY"\n'
        '[[account]]\nname = "carol"\nconfig_dir = "/"\n'
    )
    base = {
        "PATH": "/usr/bin",
        "ALICE_TOKEN": "sk-ant-oat01-alice",
        "BOB_KEY": "sk-ant-api03-bob",
        "CLAUDE_CONFIG_DIR": "/home/me/.claude",
    }
    alice, bob, carol = worker_environments(parse(text, base), base)
    assert alice == {**labelled("alice"), "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-alice"}
    assert bob == {**labelled("bob"), "ANTHROPIC_API_KEY": "sk-ant-api03-bob"}
    assert carol == {**labelled("carol"), "CLAUDE_CONFIG_DIR": "/"}


def labelled(name: str) -> dict[str, str]:
    """What every worker of these tests gets besides its login."""
    return {"PATH": "/usr/bin", "CCFLEET_ACCOUNT": name, "CCFLEET_WORKER_SLOTS": "2"}


def test_an_api_key_worker_gets_no_oauth_token() -> None:
    (bob,) = parse('[[account]]\nname = "bob"\napi_key = "sk-ant-api03-bob"\n')
    env = bob.environment({"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-of-the-shell"})
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-api03-bob"
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in env


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ("", "needs exactly one of oauth_token, oauth_token_env, api_key, api_key_env, "
         "config_dir (found: none)"),
        (f'oauth_token = "{SECRET}"\napi_key = "sk-ant-api03-x"',
         "(found: oauth_token, api_key)"),
        ('oauth_token = "   "', "account 'alice' has an empty credential"),
    ],
)  # fmt: skip
def test_an_account_needs_exactly_one_non_empty_credential(credentials: str, expected: str) -> None:
    message = error_of(f'[[account]]\nname = "alice"\n{credentials}\n')
    assert expected in message
    assert message.startswith(f"{SOURCE}: invalid accounts file")


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ('name = "Alice!"\noauth_token = "t"', "account 1 > name: String should match pattern"),
        ('oauth_token = "t"', "account 1 > name: Field required"),
        ('name = "a"\noauth_token = "t"\nslots = 0', "account 1 > slots: Input should be"),
        ('name = "a"\noauth-token = "t"', "account 1 > oauth-token: Extra inputs are not"),
        ('name = "a"\noauth_token_env = "no name"', "account 1 > oauth_token_env: String should"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named_with_its_account(account: str, expected: str) -> None:
    assert expected in error_of(f"[[account]]\n{account}\n")


def test_account_names_must_be_unique() -> None:
    text = '[[account]]\nname = "a"\noauth_token = "t"\n\n[[account]]\nname = "a"\napi_key = "k"\n'
    assert "account names must be unique; repeated: a" in error_of(text)


def test_a_file_without_accounts_is_an_error() -> None:
    assert "account: Field required" in error_of('[[accounts]]\nname = "a"\n')


def test_invalid_toml_is_an_error_with_its_position() -> None:
    assert "not valid TOML" in error_of('[[account]]\nname = "a\n')


def test_error_messages_never_contain_a_secret() -> None:
    text = f'[[account]]\nname = "Bad Name"\noauth_token = "{SECRET}"\napi_key = "{SECRET}"\n'
    assert SECRET not in error_of(text)
    assert SECRET not in error_of(f'[[account]]\nname = "a"\noauth_token = ["{SECRET}"]\n')


def test_a_config_dir_must_be_an_existing_directory(tmp_path: Path) -> None:
    text = '[[account]]\nname = "carol"\nconfig_dir = "nowhere"\n'
    with pytest.raises(AccountsFileError, match=r"config_dir .*nowhere.* is not a directory"):
        parse_accounts(text, source=tmp_path / "accounts.toml", environ={}, default_slots=2)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(AccountsFileError, match=r"missing\.toml: cannot read the accounts file"):
        load_accounts(missing, environ={}, default_slots=2)


def test_a_monthly_budget_reaches_its_workers_environment() -> None:
    thrifty, free = parse(
        f"""
        [[account]]
        name = "thrifty"
        oauth_token = "{SECRET}"
        monthly_usd = 40

        [[account]]
        name = "free"
        oauth_token = "{SECRET}"
        """
    )
    assert thrifty.environment({})["CCFLEET_ACCOUNT_MONTHLY_USD"] == "40.0"
    assert "CCFLEET_ACCOUNT_MONTHLY_USD" not in free.environment({})
    assert "monthly_usd" in error_of(
        f'[[account]]\nname = "a"\noauth_token = "{SECRET}"\nmonthly_usd = 0'
    )


def test_an_account_s_priority_reaches_its_worker_as_its_place_in_the_drain_order() -> None:
    text = f"""
        [[account]]
        name = "team"
        oauth_token = "{SECRET}"
        priority = 1

        [[account]]
        name = "personal"
        oauth_token = "{SECRET}-2"
    """
    team, personal = worker_environments(parse(text), {})
    assert team["CCFLEET_ACCOUNT_PRIORITY"] == "1"
    assert "CCFLEET_ACCOUNT_PRIORITY" not in personal, "unset: the worker's default"
