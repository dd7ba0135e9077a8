"""A conversation its client names (a Responses prompt_cache_key) is keyed within its client key."""

from __future__ import annotations

from shared.fleet.affinity import conversation_key, named_conversation
from shared.wire.messages import MessagesRequest

REQUEST = MessagesRequest.model_validate(
    {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
)


def test_two_client_keys_naming_a_conversation_alike_get_different_conversations() -> None:
    assert named_conversation("key_a", "session-1") != named_conversation("key_b", "session-1")


def test_one_client_key_naming_a_conversation_alike_gets_the_same_one() -> None:
    assert named_conversation("key_a", "session-1") == named_conversation("key_a", "session-1")


def test_a_named_conversation_outranks_the_first_message() -> None:
    named = named_conversation("key_a", "session-1")
    assert conversation_key(REQUEST, named) == named
    assert conversation_key(REQUEST, named_conversation("key_a", "")) == conversation_key(REQUEST)
