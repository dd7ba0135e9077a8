"""The Configuration table (docs/configuration.md) is the one Settings generates: a setting added,
renamed or redescribed in shared/settings.py fails here until `uv run ccfleet settings-table
--into docs/configuration.md` rewrites its copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from ccfleet.settings_table import END, START, settings_table, shown_default, table_in, with_table
from shared.settings import setting_fields, setting_names

CONFIGURATION = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_the_documented_table_is_the_one_settings_generate() -> None:
    assert table_in(CONFIGURATION.read_text()) == settings_table()


def test_the_table_has_a_row_for_every_setting_and_each_says_what_it_does() -> None:
    table = settings_table()
    for name in setting_names():
        assert f"| `{name}` |" in table
    assert all(field.description for _variable, field in setting_fields())


def test_defaults_read_as_an_operator_writes_them() -> None:
    assert [shown_default(v) for v in ("", None, True, 600.0, 0.5, 8080, "INFO")] == [
        "empty", "unset", "true", "600", "0.5", "8080", "`INFO`"
    ]  # fmt: skip
    assert shown_default(SecretStr("")) == "empty"
    assert shown_default(["a", "b"]) == "`a`, `b`"


def test_rewriting_replaces_only_the_text_between_the_markers() -> None:
    document = f"# Title\n\nbefore\n{START}\n| old |\n{END}\nafter\n"
    rewritten = f"# Title\n\nbefore\n{START}\n| new |\n{END}\nafter\n"
    assert with_table(document, "| new |\n") == rewritten


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings-table:start"):
        table_in("# no table here\n")
