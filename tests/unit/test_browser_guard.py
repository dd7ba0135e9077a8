"""The Host allow-list and the Origin check of api/browser_guard.py, header by header."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from api.browser_guard import BrowserGuard


async def _unused_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called")


def guard(allowed_hosts: list[str] | None = None, origins: list[str] | None = None) -> BrowserGuard:
    return BrowserGuard(_unused_app, allowed_hosts=allowed_hosts or [], cors_origins=origins or [])


def refused_type(guard: BrowserGuard, **headers: str) -> str | None:
    refusal = guard.refusal(Headers(headers))
    return None if refusal is None else refusal.error_type


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8080", "127.0.0.1:8080", "[::1]:8080", "[::1]"]
)
def test_loopback_names_are_always_allowed(host: str) -> None:
    assert refused_type(guard(), host=host) is None


@pytest.mark.parametrize(
    "host", ["rebound.example", "127.0.0.1.rebound.example", "", "localhost:notaport:1", "[::1"]
)
def test_another_or_a_malformed_host_is_an_invalid_request(host: str) -> None:
    assert refused_type(guard(), host=host) == "invalid_request_error"


def test_a_missing_host_is_an_invalid_request() -> None:
    assert refused_type(guard()) == "invalid_request_error"


def test_allowed_hosts_add_names_and_a_star_allows_any() -> None:
    assert refused_type(guard(["Fleet.Example"]), host="fleet.example:443") is None
    assert refused_type(guard(["fleet.example"]), host="other.example") == "invalid_request_error"
    assert refused_type(guard(["*"]), host="other.example") is None


def test_an_origin_is_allowed_when_it_is_the_front_ends_own_or_configured() -> None:
    configured = guard(["fleet.example"], ["https://console.example/"])
    assert refused_type(configured, host="fleet.example", origin="https://fleet.example") is None
    assert refused_type(configured, host="fleet.example", origin="https://console.example") is None
    for origin in ("https://evil.example", "null", "https://fleet.example.evil", "::"):
        assert refused_type(configured, host="fleet.example", origin=origin) == "permission_error"
