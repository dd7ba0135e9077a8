"""httpx's one-call functions (`get`, `post`, `stream`...) for the tests' plain-HTTP servers on
127.0.0.1, without the TLS context httpx would make for each call.

httpx.get and the like build a client per call, and each client a TLS context that loads the
machine's CA bundle: 27-50 ms of CPU, even for an http:// URL. Four test files alone made 285
such calls, many in polls (a stack's /ready, a batch's counts), and a poll took most of a core
from the processes it waited on: the pytest processes' CPU in a whole run fell from 129 s to
67 s with these (2026-12-07). These pass one context, made once, that loads no CA: a loopback
server here never speaks TLS (the Redis TLS tests make their own contexts).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from functools import cache
from typing import Any

import httpx


@cache
def _no_ca() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def request(method: str, url: str, **options: Any) -> httpx.Response:
    return httpx.request(method, url, verify=_no_ca(), **options)


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, verify=_no_ca(), **options)


def post(url: str, **options: Any) -> httpx.Response:
    return httpx.post(url, verify=_no_ca(), **options)


def options(url: str, **options: Any) -> httpx.Response:
    return httpx.options(url, verify=_no_ca(), **options)


@contextlib.contextmanager
def stream(method: str, url: str, **options: Any) -> Iterator[httpx.Response]:
    with httpx.stream(method, url, verify=_no_ca(), **options) as response:
        yield response
