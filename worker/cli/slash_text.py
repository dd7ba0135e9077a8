"""A client's `/word` is text for the model, never a command for the CLI.

The CLI reads a user turn as a slash command when its last content block (or its string
content) is text starting with `/`: built-ins such as `/heapdump` then run on the worker and
the model is never asked, even with `--disable-slash-commands` (docs/measured-facts.md §7). No
flag or stream-json field turns that off, in the final turn or in replayed earlier ones. The
least change the CLI allows: such a text is split after its slash into two text blocks, `/`
and the rest. The model gets the same characters; a text that does not end the turn, or that
starts with a space, is not touched.
"""

from __future__ import annotations

from typing import Any


def as_plain_text(message: dict[str, Any]) -> dict[str, Any]:
    """A user message the CLI will pass to the model as it is, never run as a command."""
    content = message["content"]
    if isinstance(content, str):
        if not _reads_as_command(content):
            return message
        return {**message, "content": _split({"type": "text", "text": content})}
    if not content or content[-1].get("type") != "text":
        return message
    last = content[-1]
    if not _reads_as_command(last.get("text", "")):
        return message
    return {**message, "content": [*content[:-1], *_split(last)]}


def _reads_as_command(text: str) -> bool:
    return text.startswith("/") and len(text) > 1


def _split(block: dict[str, Any]) -> list[dict[str, Any]]:
    """`/` alone, then the rest with whatever else the block carried (cache_control)."""
    return [{"type": "text", "text": "/"}, {**block, "text": block["text"][1:]}]
