"""The Configuration table (docs/configuration.md), generated from Settings (shared/settings.py),
which owns each setting's name, default and meaning.

`ccfleet settings-table` prints it; `--into docs/configuration.md` rewrites that file's copy, the
lines between START and END. tests/unit/test_settings_table.py fails while the two differ.
"""

from __future__ import annotations

from pydantic import SecretStr

from shared.settings import setting_fields

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


def settings_table() -> str:
    """A Markdown table: each setting's variable, default and meaning, group by group."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, field in setting_fields():
        rows.append(f"| `{variable}` | {shown_default(field.default)} | {field.description} |")
    return "\n".join(rows) + "\n"


def shown_default(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(f"`{item}`" for item in value)
    if value == "":
        return "empty"
    return f"`{value}`" if isinstance(value, str) else str(value)


def table_in(document: str) -> str:
    """A document's copy of the table: the text between its markers."""
    _before, start, rest = document.partition(START + "\n")
    table, end, _after = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the document has no {START} … {END} lines around its table")
    return table


def with_table(document: str, table: str) -> str:
    """`document` with `table` in place of its copy."""
    old = table_in(document)
    head, _, tail = document.partition(START + "\n" + old + END)
    return head + START + "\n" + table + END + tail
