"""The overlays as `kubectl kustomize` builds them, once per session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import K8S, OVERLAYS, Manifest, kustomize


@pytest.fixture(scope="session")
def built_overlays() -> dict[str, list[Manifest]]:
    return {name: kustomize(K8S / "overlays" / name) for name in OVERLAYS}
