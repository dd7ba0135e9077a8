"""How a resident turn's upstream request is compared with a replay's: equal once what the CLI
adds of its own is taken out (docs/measured-facts.md "Long conversations and resident CLIs").

`metadata` names the CLI process's session. With a subscription login the CLI also adds
`<system-reminder>` text (environment, date) to user messages, and for the 5.x models a
`system` message with the environment (a client cannot send that role); where a reminder
sits differs between a resident CLI and a fresh one, and the environment names each
process's working directory.
"""

from __future__ import annotations

import json
import re
from typing import Any


def sent_without_session(body: dict[str, Any]) -> str:
    """The upstream request less `metadata` (it names the CLI process's session), in order."""
    return json.dumps({k: v for k, v in body.items() if k != "metadata"})


_REMINDER_BLOCK = re.compile(r"^\s*<system-reminder>")
_APPENDED_REMINDER = re.compile(r"\n\n<system-reminder>\n.*</system-reminder>$", re.DOTALL)


def without_cli_reminders(body: dict[str, Any]) -> str:
    """`sent_without_session` less the reminders, `system` messages and last breakpoint the CLI
    adds; a string content and one text block are the same message once those are gone."""
    messages = []
    for message in body["messages"]:
        if message["role"] == "system":
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        kept = []
        for block in blocks:
            if block.get("type") == "text" and _REMINDER_BLOCK.match(block["text"]):
                continue
            if block.get("type") == "tool_result" and isinstance(block.get("content"), str):
                block = {**block, "content": _APPENDED_REMINDER.sub("", block["content"])}
            kept.append(block)
        messages.append({**message, "content": kept})
    if messages and messages[-1]["content"]:
        *earlier, last = messages[-1]["content"]
        last = {k: v for k, v in last.items() if k != "cache_control"}
        messages[-1] = {**messages[-1], "content": [*earlier, last]}
    return sent_without_session({**body, "messages": messages})
