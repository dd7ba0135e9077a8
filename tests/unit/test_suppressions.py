"""Every silenced check says why, on its own line (STYLE.md: no `type: ignore` or `noqa`
without a reason): `# type: ignore[code]  # why` or `# noqa: CODE  # why` (or `- why`)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "shared", "ccfleet", "tests", "bench")
SUPPRESSION = re.compile(r"#\s*(type:\s*ignore|noqa)\b")
EXPLAINED = re.compile(
    r"#\s*(type:\s*ignore\[[^]]+\]|noqa: [A-Z]+[0-9]+(, ?[A-Z]+[0-9]+)*)\s*(#|-)\s*\S"
)


def unexplained(text: str) -> list[int]:
    """Numbers of the lines of `text` that silence a check without saying why."""
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if SUPPRESSION.search(line) and not EXPLAINED.search(line)
    ]


def test_a_suppression_without_a_reason_is_found() -> None:
    assert unexplained("x = f()  # type: ignore\n") == [1]
    assert unexplained("x = f()  # type: ignore[misc]\n") == [1]
    assert unexplained("import os  # noqa\nimport re  # noqa: F401\n") == [1, 2]
    assert unexplained("x = f()  # type: ignore[misc]  # redis-py 5 types it sync-or-async\n") == []
    assert unexplained("while x:  # noqa: ASYNC110 - Redis has no wait for it\n") == []


def test_every_suppression_in_the_code_says_why() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path != Path(__file__)  # its examples above are bare on purpose
        for number in unexplained(path.read_text())
    ]
    assert found == [], "add the reason after the code: `# type: ignore[code]  # why`"
