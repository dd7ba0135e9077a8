"""k8s production runs Redis with Sentinel: three pods, each a Redis and a sentinel, the
password from the Secret, a PodDisruptionBudget, and every client finding the primary
through the sentinels. Its start scripts are run here, with stand-ins for the servers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.settings import Settings
from tests.deploy.manifests import (
    Manifest,
    MountedScript,
    config_map_value,
    env_values,
    mounted_script,
    one,
    pod_spec,
    run_redis_script,
    workloads,
)

pytestmark = pytest.mark.xdist_group("kustomize")

SECRET = {"secretKeyRef": {"name": "ccfleet-redis", "key": "password"}}
HEADLESS = "ccfleet-redis-headless"


@pytest.fixture
def production(built_overlays: dict[str, list[Manifest]]) -> list[Manifest]:
    return built_overlays["production"]


def _redis(production: list[Manifest]) -> Manifest:
    return one(production, "StatefulSet", "ccfleet-redis")


def _container(production: list[Manifest], name: str) -> dict[str, Any]:
    [container] = [c for c in pod_spec(_redis(production))["containers"] if c["name"] == name]
    found: dict[str, Any] = container
    return found


def _script(production: list[Manifest], name: str) -> MountedScript:
    container = _container(production, name)
    args = container["args"]
    assert isinstance(args, list) and args[0] == "sh"
    return mounted_script(production, container, args[1])


def _settings(production: list[Manifest]) -> Settings:
    api = one(production, "Deployment", "ccfleet-api")
    names = ("CCFLEET_REDIS_SENTINELS", "CCFLEET_REDIS_SENTINEL_MASTER")
    values = {name: config_map_value(production, api, name) for name in names}
    grace = config_map_value(production, api, "CCFLEET_REDIS_OUTAGE_GRACE_S")
    return Settings(
        redis_sentinels=values["CCFLEET_REDIS_SENTINELS"],
        redis_sentinel_master=values["CCFLEET_REDIS_SENTINEL_MASTER"],
        redis_outage_grace_s=float(grace or 0),
    )


def test_production_runs_three_redis_pods_each_with_a_sentinel(
    production: list[Manifest],
) -> None:
    redis = _redis(production)
    assert redis["spec"]["replicas"] == 3
    assert redis["spec"]["serviceName"] == HEADLESS
    headless = one(production, "Service", HEADLESS)["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert {c["name"] for c in pod_spec(redis)["containers"]} == {"redis", "sentinel"}
    for name in ("redis", "sentinel"):
        assert env_values(_container(production, name))["REDIS_PASSWORD"] == SECRET


def test_a_drain_takes_one_redis_pod_at_a_time(production: list[Manifest]) -> None:
    pdb = one(production, "PodDisruptionBudget", "ccfleet-redis")["spec"]
    assert pdb["maxUnavailable"] == 1
    labels = _redis(production)["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_every_client_finds_the_primary_through_the_three_sentinels(
    production: list[Manifest],
) -> None:
    settings = _settings(production)
    sentinel_port = next(
        p["port"]
        for p in one(production, "Service", HEADLESS)["spec"]["ports"]
        if p["name"] == "sentinel"
    )
    assert settings.redis.sentinel_addresses() == [
        (f"ccfleet-redis-{i}.{HEADLESS}", sentinel_port) for i in range(3)
    ]
    for workload in workloads(production):  # every front end and worker reads the ConfigMap
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] == "redis":
            continue
        [container] = pod_spec(workload)["containers"]
        assert {"configMapRef": {"name": "ccfleet-config"}} in container["envFrom"]


def test_the_grace_outlasts_a_failover(production: list[Manifest]) -> None:
    settings = _settings(production)
    sentinel = _script(production, "sentinel").text
    master = settings.redis.sentinel_master
    assert f"sentinel monitor {master} $primary 6379 2" in sentinel
    down_after = re.search(rf"down-after-milliseconds {master} (\d+)", sentinel)
    assert down_after
    promotion_s = 2.0  # measured: sentinels elect a leader and promote in about 1 s
    assert settings.redis.outage_grace_s >= int(down_after.group(1)) / 1000 + promotion_s


def test_a_new_group_starts_pod_0_as_the_primary_and_the_others_as_its_replicas(
    production: list[Manifest],
) -> None:
    script = _script(production, "redis")
    first = run_redis_script(script, pod="ccfleet-redis-0")
    assert "--replicaof" not in first
    assert first[first.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert first[first.index("--masterauth") + 1] == "$(REDIS_PASSWORD)"
    second = run_redis_script(script, pod="ccfleet-redis-1")
    assert second[second.index("--replicaof") + 1 :][:2] == [f"ccfleet-redis-0.{HEADLESS}", "6379"]


def test_a_restarted_pod_rejoins_the_primary_the_sentinels_name(
    production: list[Manifest],
) -> None:
    # Pod 0 was the primary, died, and pod 2 was promoted meanwhile: pod 0 must not come
    # back as a second primary.
    promoted = f"ccfleet-redis-2.{HEADLESS}"
    args = run_redis_script(_script(production, "redis"), pod="ccfleet-redis-0", primary=promoted)
    assert args[args.index("--replicaof") + 1 :][:2] == [promoted, "6379"]
    sentinel = run_redis_script(
        _script(production, "sentinel"), pod="ccfleet-redis-0", primary=promoted
    )
    assert f"sentinel monitor ccfleet {promoted} 6379 2" in sentinel
    assert "sentinel auth-pass ccfleet $(REDIS_PASSWORD)" in sentinel
    assert "requirepass $(REDIS_PASSWORD)" in sentinel
