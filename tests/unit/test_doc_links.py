"""Every relative link in the documentation leads somewhere: the file exists and, when the link
names a section, the file has a heading with that anchor (GitHub's rule for making anchors).
The README points to docs/ for reference material, so a moved section must not leave a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "k8s" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors_of(document: Path) -> set[str]:
    """The anchors GitHub gives the headings of `document`: lower case, punctuation dropped,
    spaces as hyphens, and -1, -2… on repeats."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in FENCE.sub("", document.read_text()).splitlines():
        if not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(document: Path) -> list[str]:
    text = FENCE.sub("", document.read_text())
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


def test_the_anchor_rule_matches_githubs() -> None:
    assert anchors_of(ROOT / "README.md") >= {"quickstart", "security-model"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_a_heading(document: Path) -> None:
    assert [link for link in relative_links(document) if not leads_somewhere(document, link)] == []


def leads_somewhere(document: Path, link: str) -> bool:
    target, _, anchor = link.partition("#")
    path = (document.parent / target).resolve() if target else document
    if not path.exists():
        return False
    return not anchor or path.suffix != ".md" or anchor in anchors_of(path)
