"""The container tests' engine, images and fake upstream, once per session.

Without a Docker engine (not root, no dockerd, it would not start) every test here skips and
says why. The images are made once and cached (tests/containers/engine.py): on a fresh
machine the first session spends ~3 min making them; later ones find them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.containers.engine import (
    EngineUnavailable,
    base_image,
    bridge_gateway,
    ccfleet_image,
    engine,
    redis_image,
)
from tests.fakes.upstream import FakeUpstream


@dataclass(frozen=True)
class Images:
    ccfleet: str
    redis: str


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    try:
        with engine(log):
            yield
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def images(docker_engine: None, claude_bin: str) -> Images:
    try:
        base = base_image()
    except EngineUnavailable as exc:
        pytest.skip(f"no base image: {exc}")
    return Images(ccfleet=ccfleet_image(base, claude_bin), redis=redis_image(base))


@pytest.fixture(scope="session")
def bridge_upstream(docker_engine: None) -> Iterator[FakeUpstream]:
    """The fake upstream on the host, listening on the default bridge's gateway: containers on
    any bridge network reach it there (the host's own address), and nothing outside does."""
    with FakeUpstream(host=bridge_gateway()) as upstream:
        yield upstream


@pytest.fixture
def container_upstream(bridge_upstream: FakeUpstream) -> FakeUpstream:
    bridge_upstream.reset()
    return bridge_upstream
