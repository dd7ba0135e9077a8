"""The accounts file of `ccfleet up --accounts FILE`: one worker per Claude account.

```toml
[[account]]
name = "alice"                       # label, [a-z0-9_-]+
oauth_token_env = "ALICE_TOKEN"      # or oauth_token, api_key, api_key_env, config_dir
slots = 2                            # optional, default CCFLEET_WORKER_SLOTS
monthly_usd = 50                     # optional: cool the account once it spent this month
priority = 1                         # optional: place in fill-first's drain order, lower first
```

Each account gives exactly one credential. A worker's environment is `ccfleet up`'s own with
every login variable and every variable an account is read from removed, then the one its
account names set: no worker holds another account's credential.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

CREDENTIAL_FIELDS = ("oauth_token", "oauth_token_env", "api_key", "api_key_env", "config_dir")
# What the CLI logs in with from the environment; a worker keeps none of ours but its own.
LOGIN_VARIABLES = (
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class AccountsFileError(ValueError):
    """The accounts file cannot be used; the message says where and why (never a secret).

    A start-up error of `ccfleet up`, never shown to an API client: not a FleetError."""


class AccountEntry(BaseModel):
    """One `[[account]]` table as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=64)
    oauth_token: SecretStr | None = None
    oauth_token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(default=None, pattern=_ENV_NAME)
    config_dir: str | None = Field(default=None, min_length=1)
    slots: int | None = Field(default=None, ge=1)
    monthly_usd: float | None = Field(default=None, gt=0)
    priority: int | None = None

    @model_validator(mode="after")
    def _exactly_one_credential(self) -> Self:
        given = [field for field in CREDENTIAL_FIELDS if getattr(self, field) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"account {self.name!r} needs exactly one of {', '.join(CREDENTIAL_FIELDS)} "
                f"(found: {found})"
            )
        for secret in (self.oauth_token, self.api_key):
            if secret is not None and not secret.get_secret_value().strip():
                raise ValueError(f"account {self.name!r} has an empty credential")
        return self


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: list[AccountEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [a.name for a in self.account]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"account names must be unique; repeated: {', '.join(repeated)}")
        return self


@dataclass(frozen=True)
class WorkerAccount:
    """An account resolved for its worker: label, slots and the one login variable."""

    name: str
    slots: int
    login_variable: str  # CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_API_KEY or CLAUDE_CONFIG_DIR
    login_value: SecretStr
    monthly_usd: float | None = None
    source_variable: str | None = None  # the `*_env` variable the login was read from
    priority: int | None = None  # its place in fill-first's drain order

    def environment(
        self, base: Mapping[str, str], *, dropped: Collection[str] = ()
    ) -> dict[str, str]:
        """`base` without any login variable (nor `dropped`), plus this account's label,
        slots and login."""
        env = {k: v for k, v in base.items() if k not in LOGIN_VARIABLES and k not in dropped}
        env["CCFLEET_ACCOUNT"] = self.name
        env["CCFLEET_WORKER_SLOTS"] = str(self.slots)
        if self.monthly_usd is not None:
            env["CCFLEET_ACCOUNT_MONTHLY_USD"] = str(self.monthly_usd)
        if self.priority is not None:
            env["CCFLEET_ACCOUNT_PRIORITY"] = str(self.priority)
        env[self.login_variable] = self.login_value.get_secret_value()
        return env


def worker_environments(
    accounts: list[WorkerAccount], base: Mapping[str, str]
) -> list[dict[str, str]]:
    """One environment per account; none holds a variable any account was read from."""
    sources = {a.source_variable for a in accounts if a.source_variable is not None}
    return [account.environment(base, dropped=sources) for account in accounts]


def load_accounts(
    path: Path, *, environ: Mapping[str, str], default_slots: int
) -> list[WorkerAccount]:
    """Read the file and resolve its accounts (parse_accounts); AccountsFileError if unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise AccountsFileError(f"{path}: cannot read the accounts file ({reason})") from exc
    return parse_accounts(text, source=path, environ=environ, default_slots=default_slots)


def parse_accounts(
    text: str, *, source: Path, environ: Mapping[str, str], default_slots: int
) -> list[WorkerAccount]:
    """Validate and resolve accounts: `*_env` from `environ`, a relative `config_dir` from
    the directory of `source` (the file's path, also named in error messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccountsFileError(f"{source}: not valid TOML: {exc}") from exc
    try:
        parsed = AccountsFile.model_validate(data)
    except ValidationError as exc:
        raise AccountsFileError(_describe(source, exc)) from exc
    return [
        _resolve(entry, base_dir=source.parent, environ=environ, default_slots=default_slots)
        for entry in parsed.account
    ]


def _resolve(
    entry: AccountEntry, *, base_dir: Path, environ: Mapping[str, str], default_slots: int
) -> WorkerAccount:
    def account(variable: str, value: str, source: str | None = None) -> WorkerAccount:
        slots = entry.slots or default_slots
        return WorkerAccount(
            entry.name, slots, variable, SecretStr(value), entry.monthly_usd, source, entry.priority
        )

    if entry.oauth_token is not None:
        return account("CLAUDE_CODE_OAUTH_TOKEN", entry.oauth_token.get_secret_value())
    if entry.api_key is not None:
        return account("ANTHROPIC_API_KEY", entry.api_key.get_secret_value())
    if entry.oauth_token_env is not None:
        token = _from_env(entry, entry.oauth_token_env, environ)
        return account("CLAUDE_CODE_OAUTH_TOKEN", token, entry.oauth_token_env)
    if entry.api_key_env is not None:
        key = _from_env(entry, entry.api_key_env, environ)
        return account("ANTHROPIC_API_KEY", key, entry.api_key_env)
    assert entry.config_dir is not None  # the validator guarantees exactly one credential
    config_dir = base_dir / Path(entry.config_dir).expanduser()
    if not config_dir.is_dir():
        raise AccountsFileError(
            f"account {entry.name!r}: config_dir {str(config_dir)!r} is not a directory"
        )
    return account("CLAUDE_CONFIG_DIR", str(config_dir.resolve()))


def _from_env(entry: AccountEntry, variable: str, environ: Mapping[str, str]) -> str:
    value = environ.get(variable, "").strip()
    if not value:
        raise AccountsFileError(
            f"account {entry.name!r}: environment variable {variable} is not set or empty"
        )
    return value


def _describe(path: Path, exc: ValidationError) -> str:
    """One line per problem, `account 2 > slots: ...`; never the offending values."""
    lines = [f"{path}: invalid accounts file"]
    for problem in exc.errors(include_url=False, include_input=False, include_context=False):
        location = _location(problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {location}: {message}" if location else f"  {message}")
    return "\n".join(lines)


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and i > 0 and loc[i - 1] == "account":
            parts[-1] = f"account {part + 1}"
        else:
            parts.append(str(part))
    return " > ".join(parts)
